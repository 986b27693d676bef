# tlsweep: build, test, demo, bench.
#   make            build bin/tlsweep and the tests
#   make test       install missing packages, build, run every test
#   make bench      ours against PyTorch on the same work
#   make deps       install missing Debian packages (tools/install-deps.sh)
#   make test-gpu   the CUDA op tests (say "skipped" without a GPU)
#   make gpu-standalone  the CUDA op test and benchmark without oneDNN/MPI (tools/gpu-check.sh)
#   make test-gpu-build  gpu-standalone where the CUDA backend is built, else says skipped
#   CUDA=0|1        force the CUDA backend off or on (default: on when nvcc + cuDNN are found)
#   CUDA_ARCH=...   nvcc -gencode flags (default sm_90 code + compute_90 PTX)
#   CUDNN_HOME=DIR  cuDNN outside CUDA_HOME (DIR/include, DIR/lib), e.g. the Python package
#   CUBLAS_HOME=DIR cuBLAS (and cudart) outside CUDA_HOME, e.g. the nvidia/cu13 Python package
#   NCCL_HOME=DIR   NCCL outside CUDA_HOME, e.g. the nvidia/nccl Python package
#   WERROR=1        warnings are errors (the default when CI=true)

# `make` alone builds bin/tlsweep and the tests (rules below come before `all`)
.DEFAULT_GOAL := all

CC       ?= gcc
PYTHON   ?= /usr/bin/python3
BUILD    ?= build
CUDA_HOME ?= /usr/local/cuda

ifeq ($(CI),true)
WERROR ?= 1
endif

CFLAGS  ?= -O2 -g
OPT_CFLAGS := $(CFLAGS)
# -ffp-contract=off: no multiply and add fused into an FMA. gcc fuses none in ISO C mode, but
# clang does by default, and both do in GNU modes, wherever the target has FMA (-march=native):
# the image transform's float blends must round each operation as Pillow and the CUDA kernels
# do, so that every backend gives the loader's bits (kernels/image_ops.h).
FP_CFLAGS := -ffp-contract=off
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra $(FP_CFLAGS) -fopenmp -I.
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif
LDLIBS  := -fopenmp -lm

# ---- dependency detection: every library is looked up and reported ----------------------
pc_found = $(shell pkg-config --exists $(1) 2>/dev/null && echo yes || echo no)

HAVE_DNNL  := $(if $(wildcard /usr/include/oneapi/dnnl/dnnl.h),yes,no)
HAVE_MPI   := $(call pc_found,ompi-c)
HAVE_HDF5  := $(call pc_found,hdf5-serial)
HAVE_YAML  := $(call pc_found,yaml-0.1)
HAVE_MATIO := $(call pc_found,matio)
HAVE_TJPEG := $(call pc_found,libturbojpeg)
HAVE_ZIP   := $(call pc_found,libzip)
HAVE_NVCC  := $(if $(wildcard $(CUDA_HOME)/bin/nvcc),yes,no)
CUDNN_HOME ?=
HAVE_CUDNN := $(if $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h $(CUDNN_HOME)/include/cudnn.h),yes,no)
NCCL_HOME  ?=
HAVE_NCCL  := $(if $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h \
	$(if $(NCCL_HOME),$(NCCL_HOME)/include/nccl.h)),yes,no)

ifeq ($(CUDA),)
CUDA := $(if $(filter yes,$(HAVE_NVCC)),$(if $(filter yes,$(HAVE_CUDNN)),1,0),0)
endif

REQUIRED := DNNL MPI HDF5 YAML MATIO TJPEG ZIP
MISSING  := $(foreach lib,$(REQUIRED),$(if $(filter no,$(HAVE_$(lib))),$(lib)))

PKGS   := ompi-c hdf5-serial yaml-0.1 matio libturbojpeg libzip
CFLAGS += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += -ldnnl $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPU_LDLIBS := $(LDLIBS)

# ---- CUDA backend: kernels/cuda/*.c (host code, gcc) and kernels/cuda/*.cu (nvcc) ------
# The rpath lets binaries find the CUDA libraries without LD_LIBRARY_PATH; without a GPU they
# still run, and only creating a CUDA context fails (with the reason).
comma     := ,
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
CUBLAS_HOME ?=
CUDA_INC  := -I$(CUDA_HOME)/include $(if $(CUDNN_HOME),-I$(CUDNN_HOME)/include) \
	$(if $(CUBLAS_HOME),-I$(CUBLAS_HOME)/include) $(if $(NCCL_HOME),-I$(NCCL_HOME)/include)
CUDA_LIBDIRS := $(CUDA_HOME)/lib64 $(if $(CUDNN_HOME),$(CUDNN_HOME)/lib) \
	$(if $(CUBLAS_HOME),$(CUBLAS_HOME)/lib) $(if $(NCCL_HOME),$(NCCL_HOME)/lib)
# (-lstdc++: nvcc's host code for the .cu files uses the C++ runtime)
# The Python packages ship only versioned sonames (libcudnn.so.9, libcublas.so.13), without
# the unversioned link that -lNAME needs: link those by file name.
cuda_lib = $(if $(wildcard $(addsuffix /lib$(1).so,$(CUDA_LIBDIRS))),-l$(1),-l:lib$(1).so.$(2))
CUDNN_LIB ?= $(call cuda_lib,cudnn,9)
CUBLAS_LIB ?= $(call cuda_lib,cublas,13)
CUDART_LIB ?= $(call cuda_lib,cudart,13)
# NCCL (a data-parallel trial's GPUs, kernels/cuda/comm.c) when its header is found; without
# it the backend says so when a group on GPUs asks for a communicator.
NCCL_LIB ?= $(if $(filter yes,$(HAVE_NCCL)),$(call cuda_lib,nccl,2))
NCCL_DEF := $(if $(filter yes,$(HAVE_NCCL)),-DKN_WITH_NCCL)
CUDA_LDLIBS := $(foreach d,$(CUDA_LIBDIRS),-L$(d) -Wl,-rpath,$(d)) $(CUDNN_LIB) $(CUBLAS_LIB) \
	$(CUDART_LIB) $(NCCL_LIB) -lstdc++
NVCCFLAGS := -O3 -std=c++17 $(CUDA_ARCH) -I. $(CUDA_INC) \
	-Xcompiler -Wall,-Wextra$(if $(filter 1,$(WERROR)),$(comma)-Werror)
CUDA_C_SRC := $(wildcard kernels/cuda/*.c)
CUDA_CU_SRC := $(wildcard kernels/cuda/*.cu)

# ---- sources: each folder's .c files; tests are tests/*/test_*.c ------------------------
MAIN_SRC   := orchestrator/main.c
CPU_LIB_SRC := $(filter-out $(MAIN_SRC),$(wildcard orchestrator/*.c worker/*.c worker/*/*.c kernels/*.c kernels/cpu/*.c))
LIB_SRC    := $(CPU_LIB_SRC)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
TESTLIB    := $(BUILD)/tests/testlib.o $(BUILD)/tests/image_batch_check.o $(BUILD)/tests/model_load.o
TEST_SRC   := $(wildcard tests/unit/test_*.c tests/conformance/test_*.c tests/bench/bench_*.c)
ifeq ($(CUDA),1)
LIB_SRC    += $(CUDA_C_SRC)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CUDA_CU_SRC:%.cu=$(BUILD)/%.o)
TEST_SRC   += $(wildcard tests/gpu/test_*.c)
LDLIBS     += $(CUDA_LDLIBS)
$(BUILD)/kernels/dispatch.o: CFLAGS += -DKN_WITH_CUDA $(NCCL_DEF)
$(BUILD)/kernels/cuda/%.o $(BUILD)/tests/gpu/%: CFLAGS += $(CUDA_INC)
$(BUILD)/kernels/cuda/comm.o: CFLAGS += $(NCCL_DEF)
BACKENDS   := the CPU and CUDA backends ($(words $(CUDA_C_SRC) $(CUDA_CU_SRC)) CUDA sources, $(CUDA_ARCH))
else
BACKENDS   := the CPU backend only
endif
# dispatch.o is compiled for one CUDA setting: rebuild it when CUDA changes
CUDA_STAMP := $(BUILD)/cuda-$(CUDA).stamp
$(BUILD)/kernels/dispatch.o: $(CUDA_STAMP)
$(CUDA_STAMP):
	@mkdir -p $(dir $@) && rm -f $(BUILD)/cuda-*.stamp && touch $@
TEST_BIN   := $(TEST_SRC:%.c=$(BUILD)/%)
LIB        := $(BUILD)/libtlsweep.a

.PHONY: all banner deps test bench demo clean format fuzz fuzz-ci fuzz-build test-asan test-gpu gpu-standalone test-gpu-build
all: banner bin/tlsweep $(TEST_BIN)

banner:
	@echo "tlsweep build: oneDNN $(HAVE_DNNL) | Open MPI $(HAVE_MPI) | HDF5 $(HAVE_HDF5) | libyaml $(HAVE_YAML) | matio $(HAVE_MATIO) | libjpeg-turbo $(HAVE_TJPEG) | libzip $(HAVE_ZIP)"
	@echo "tlsweep build: CUDA $(HAVE_NVCC) | cuDNN $(HAVE_CUDNN) | NCCL $(HAVE_NCCL) -> CUDA=$(CUDA): building $(BACKENDS)"
ifneq ($(strip $(MISSING)),)
	@echo "tlsweep build: missing required: $(MISSING); run 'make deps'" >&2; exit 1
endif

deps:
	tools/install-deps.sh

# Provenance written into every results file: the git revision and the flags it was built with.
GIT_REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
$(BUILD)/orchestrator/provenance.o: CFLAGS += -DTLSWEEP_GIT_REVISION='"$(GIT_REVISION)"' \
	-DTLSWEEP_CFLAGS='"$(CC) $(OPT_CFLAGS) -std=c11 $(FP_CFLAGS) -fopenmp$(if $(filter 1,$(WERROR)), -Werror)"'

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

bin/tlsweep: $(BUILD)/$(MAIN_SRC:.c=.o) $(LIB)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TESTLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(TESTLIB) $(LIB) $(LDLIBS)

test: deps
	$(MAKE) all
	$(MAKE) test-gpu-build
	PYTHON=$(PYTHON) BUILD=$(BUILD) tests/run.sh

# The README's first command: transfer learning end to end on generated data. A resnet18 is
# pretrained on a synthetic source task (16 classes), its weights saved as a downloaded
# checkpoint would be, then a real sweep under mpirun trains a new head for 10 other classes
# from them (and from scratch, to compare), and draws the figures. Builds only the binary.
DEMO_RANKS ?= 3
MPIRUN_ROOT := $(if $(filter 0,$(shell id -u)),--allow-run-as-root,)
demo: deps
	$(MAKE) banner bin/tlsweep
	@test -f data/demo-source/setid.mat || bin/tlsweep synth-flowers data/demo-source --classes 16 --per-class 64 --width 64 --height 56 --seed 7 --trnid 4 --valid 4
	@test -f data/demo/setid.mat || bin/tlsweep synth-flowers data/demo --classes 10 --per-class 40 --width 64 --height 56 --trnid 5 --valid 5
	@test -f runs/demo-pretrained.safetensors || { bin/tlsweep train --sweep sweeps/demo-source.yaml --trial 0 --out runs/demo-source && cp runs/demo-source/best.safetensors runs/demo-pretrained.safetensors; }
	mpirun $(MPIRUN_ROOT) --oversubscribe -np $(DEMO_RANKS) bin/tlsweep run sweeps/demo.yaml
	bin/tlsweep status runs/demo.h5
	bin/tlsweep plot runs/demo.h5
	@echo "notebook: results/compare.ipynb; run it with: jupyter nbconvert --to notebook --execute results/compare.ipynb --output-dir runs"

bench: all
	PYTHON=$(PYTHON) BUILD=$(BUILD) tests/bench/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

clean:
	rm -rf $(BUILD) bin $(FUZZ_BUILD) $(ASAN_BUILD) $(GPU_BUILD)

# the test helpers' objects would be intermediate (deleted, so every test relinked next time)
.SECONDARY: $(TESTLIB)
-include $(LIB_OBJ:.o=.d) $(TESTLIB:.o=.d) $(TEST_BIN:=.d)

# ---- GPU tests ---------------------------------------------------------------------------
# test-gpu: the CUDA op tests against PyTorch references (tests/gpu/export_cuda_ref.py) in
# the normal build. gpu-standalone: the same test and the step benchmark built from only the
# CUDA backend, the dispatcher (no CPU backend: KN_NO_CPU) and the test harness, for a GPU
# machine without oneDNN, MPI or HDF5 (tools/gpu-check.sh; needs nothing but nvcc, cc and
# cuDNN, e.g. CUDNN_HOME=<the nvidia.cudnn Python package>).
test-gpu: banner $(BUILD)/tests/gpu/test_cuda_ops
	$(PYTHON) tests/gpu/export_cuda_ref.py $(BUILD)/testdata
	TLSWEEP_TESTDATA=$(BUILD)/testdata $(BUILD)/tests/gpu/test_cuda_ops

GPU_BUILD  ?= build-gpu
GPU_CFLAGS := -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra $(FP_CFLAGS) \
	$(if $(filter 1,$(WERROR)),-Werror) -I. $(CUDA_INC) -DKN_WITH_CUDA -DKN_NO_CPU $(NCCL_DEF)
# (the loader's transform is the reference of the image batch op's test)
GPU_LIB_OBJ := $(patsubst %.c,$(GPU_BUILD)/%.o,$(wildcard kernels/*.c) $(CUDA_C_SRC) \
	tests/testlib.c tests/image_batch_check.c worker/data/transform.c worker/data/augment.c \
	worker/rng.c) $(CUDA_CU_SRC:%.cu=$(GPU_BUILD)/%.o)
GPU_BINS   := $(GPU_BUILD)/test_cuda_ops $(GPU_BUILD)/bench_cuda_step

$(GPU_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(GPU_CFLAGS) -MMD -MP -c $< -o $@

$(GPU_BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(GPU_BUILD)/%: $(GPU_BUILD)/tests/gpu/%.o $(GPU_LIB_OBJ)
	$(CC) -o $@ $^ $(CUDA_LDLIBS) -lm

gpu-standalone: $(GPU_BINS)

# CI has nvcc, cuDNN and NCCL but no GPU: building the device check's programs there makes a
# break in them show in CI, not first on a lent GPU machine. Skipped, saying so, without them.
test-gpu-build:
ifeq ($(CUDA),1)
	$(MAKE) gpu-standalone
else
	@echo "test-gpu-build: skipped: no CUDA backend here (nvcc $(HAVE_NVCC), cuDNN $(HAVE_CUDNN), CUDA=$(CUDA)); gpu-standalone not built"
endif

# the objects are intermediate files to make; keep them so a second build rebuilds nothing
.SECONDARY: $(GPU_LIB_OBJ) $(GPU_BINS:$(GPU_BUILD)/%=$(GPU_BUILD)/tests/gpu/%.o)

-include $(GPU_LIB_OBJ:.o=.d) $(GPU_BINS:$(GPU_BUILD)/%=$(GPU_BUILD)/tests/gpu/%.d)

# ---- fuzzing and sanitizers (issue 9) ---------------------------------------------------
#   make fuzz [FUZZ_SECONDS=N]   every libFuzzer target for N seconds (default 300) each
#   make fuzz-ci                 every target about 60 s from libFuzzer seed 1 (a finding in CI
#                                reproduces with the same seed); fails on any crash, leak or report
#   make test-asan               library, tests and binary with ASan + UBSan (gcc), in
#                                $(ASAN_BUILD); unit + conformance tests and mpirun sweeps
# The fuzz targets (tests/fuzz/fuzz_*.c) are built with clang against their own copy of the
# library in $(FUZZ_BUILD), compiled with -fsanitize=address,undefined,fuzzer-no-link; the
# gcc build in $(BUILD) is not touched.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_CI_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
# Warnings are the gcc build's business (WERROR); here clang would only add its own about
# gcc-only attributes and sanitizer-blocked vectorisation.
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Wall -Wextra $(FP_CFLAGS) \
	-Wno-unknown-attributes -Wno-pass-failed -fopenmp -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(FUZZ_SAN)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS := $(filter-out fuzz_util,$(FUZZ_TARGETS))
FUZZ_LIB_OBJ := $(CPU_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_LIB     := $(FUZZ_BUILD)/libtlsweep.a
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/tests/fuzz/fuzz_util.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(CPU_LDLIBS)

# the targets' objects are intermediate files; keep them so a second make rebuilds nothing
.PRECIOUS: $(FUZZ_BUILD)/tests/fuzz/%.o

fuzz-build: banner $(FUZZ_BINS)

# Seed corpora: generated (small valid files of every kind), never committed.
$(FUZZ_BUILD)/seeds/.done: tests/fuzz/make-seeds.sh bin/tlsweep
	tests/fuzz/make-seeds.sh $(FUZZ_BUILD)/seeds bin/tlsweep
	@touch $@

fuzz: fuzz-build $(FUZZ_BUILD)/seeds/.done
	FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-ci: fuzz-build $(FUZZ_BUILD)/seeds/.done
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SEED=1 tests/fuzz/run.sh $(FUZZ_CI_SECONDS) $(FUZZ_TARGETS)

ASAN_BUILD  ?= build-asan
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

# The sanitized binary lives in its own build folder, beside its tests, not in bin/.
$(BUILD)/bin/tlsweep: $(BUILD)/$(MAIN_SRC:.c=.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# CUDA=0: ASan and the CUDA runtime do not mix. WERROR=0: warnings are the plain build's business; -O1 with sanitizers makes gcc's flow
# analysis report false positives (-Wformat-truncation) that the -O2 build does not.
test-asan: banner
	CFLAGS="$(ASAN_CFLAGS)" $(MAKE) BUILD=$(ASAN_BUILD) WERROR=0 CUDA=0 $(ASAN_BUILD)/bin/tlsweep \
		$(filter-out $(ASAN_BUILD)/tests/bench/% $(ASAN_BUILD)/tests/gpu/%,$(TEST_BIN:$(BUILD)/%=$(ASAN_BUILD)/%))
	PYTHON=$(PYTHON) ASAN_BUILD=$(ASAN_BUILD) tests/fuzz/test-asan.sh

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/tests/fuzz/%.d) $(FUZZ_BUILD)/tests/fuzz/fuzz_util.d
