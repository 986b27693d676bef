# tlsweep: build, test, demo, bench.
#   make            build bin/tlsweep and the tests
#   make test       install missing packages, build, run every test
#   make bench      ours against PyTorch on the same work
#   make deps       install missing Debian packages (tools/install-deps.sh)
#   CUDA=0|1        force the CUDA backend off or on (default: on when nvcc + cuDNN are found)
#   WERROR=1        warnings are errors (the default when CI=true)

CC       ?= gcc
PYTHON   ?= /usr/bin/python3
BUILD    ?= build
CUDA_HOME ?= /usr/local/cuda

ifeq ($(CI),true)
WERROR ?= 1
endif

CFLAGS  ?= -O2 -g
OPT_CFLAGS := $(CFLAGS)
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -fopenmp -I.
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
HAVE_CUDNN := $(if $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h),yes,no)
HAVE_NCCL  := $(if $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h),yes,no)

ifeq ($(CUDA),)
CUDA := $(if $(filter yes,$(HAVE_NVCC)),$(if $(filter yes,$(HAVE_CUDNN)),1,0),0)
endif

REQUIRED := DNNL MPI HDF5 YAML MATIO TJPEG ZIP
MISSING  := $(foreach lib,$(REQUIRED),$(if $(filter no,$(HAVE_$(lib))),$(lib)))

PKGS   := ompi-c hdf5-serial yaml-0.1 matio libturbojpeg libzip
CFLAGS += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += -ldnnl $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# ---- sources: each folder's .c files; tests are tests/*/test_*.c ------------------------
MAIN_SRC   := orchestrator/main.c
LIB_SRC    := $(filter-out $(MAIN_SRC),$(wildcard orchestrator/*.c worker/*.c worker/*/*.c kernels/cpu/*.c))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
TESTLIB    := $(BUILD)/tests/testlib.o
TEST_SRC   := $(wildcard tests/unit/test_*.c tests/conformance/test_*.c tests/bench/bench_*.c)
TEST_BIN   := $(TEST_SRC:%.c=$(BUILD)/%)
LIB        := $(BUILD)/libtlsweep.a

.PHONY: all banner deps test bench demo clean format fuzz fuzz-ci fuzz-build test-asan
all: banner bin/tlsweep $(TEST_BIN)

banner:
	@echo "tlsweep build: oneDNN $(HAVE_DNNL) | Open MPI $(HAVE_MPI) | HDF5 $(HAVE_HDF5) | libyaml $(HAVE_YAML) | matio $(HAVE_MATIO) | libjpeg-turbo $(HAVE_TJPEG) | libzip $(HAVE_ZIP)"
	@echo "tlsweep build: CUDA $(HAVE_NVCC) | cuDNN $(HAVE_CUDNN) | NCCL $(HAVE_NCCL) -> CUDA=$(CUDA) (no CUDA backend sources yet: building the CPU backend)"
ifneq ($(strip $(MISSING)),)
	@echo "tlsweep build: missing required: $(MISSING); run 'make deps'" >&2; exit 1
endif

deps:
	tools/install-deps.sh

# Provenance written into every results file: the git revision and the flags it was built with.
GIT_REVISION := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
$(BUILD)/orchestrator/provenance.o: CFLAGS += -DTLSWEEP_GIT_REVISION='"$(GIT_REVISION)"' \
	-DTLSWEEP_CFLAGS='"$(CC) $(OPT_CFLAGS) -std=c11 -fopenmp$(if $(filter 1,$(WERROR)), -Werror)"'

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

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
	PYTHON=$(PYTHON) BUILD=$(BUILD) tests/run.sh

# The README's first command: a real small sweep under mpirun on a generated dataset, then the
# figures. Builds only the binary (the tests are not needed to run a sweep).
DEMO_DATA ?= data/smoke
DEMO_RANKS ?= 3
MPIRUN_ROOT := $(if $(filter 0,$(shell id -u)),--allow-run-as-root,)
demo: deps
	$(MAKE) banner bin/tlsweep
	@test -f $(DEMO_DATA)/setid.mat || bin/tlsweep synth-flowers $(DEMO_DATA) --classes 8 --per-class 24 --width 64 --height 56
	mpirun $(MPIRUN_ROOT) --oversubscribe -np $(DEMO_RANKS) bin/tlsweep run sweeps/smoke.yaml
	bin/tlsweep status runs/smoke.h5
	bin/tlsweep plot runs/smoke.h5 -o runs/smoke-figures
	@echo
	@echo "results: runs/smoke.h5 (best weights under runs/smoke.h5.d/), figures: runs/smoke-figures/"
	@echo "in Python (also while a sweep runs):"
	@echo "  import h5py, pandas; pandas.DataFrame(h5py.File('runs/smoke.h5', 'r', libver='latest', swmr=True)['trials'][:])"
	@echo "notebook: results/compare.ipynb; run it with: jupyter nbconvert --to notebook --execute results/compare.ipynb --output-dir runs"

bench: all
	PYTHON=$(PYTHON) BUILD=$(BUILD) tests/bench/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) bin $(FUZZ_BUILD) $(ASAN_BUILD)

-include $(LIB_OBJ:.o=.d) $(TESTLIB:.o=.d) $(TEST_BIN:=.d)

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
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Wall -Wextra \
	-Wno-unknown-attributes -Wno-pass-failed -fopenmp -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(FUZZ_SAN)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS := $(filter-out fuzz_util,$(FUZZ_TARGETS))
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_LIB     := $(FUZZ_BUILD)/libtlsweep.a
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/tests/fuzz/fuzz_util.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

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

# WERROR=0: warnings are the plain build's business; -O1 with sanitizers makes gcc's flow
# analysis report false positives (-Wformat-truncation) that the -O2 build does not.
test-asan: banner
	CFLAGS="$(ASAN_CFLAGS)" $(MAKE) BUILD=$(ASAN_BUILD) WERROR=0 $(ASAN_BUILD)/bin/tlsweep \
		$(filter-out $(ASAN_BUILD)/tests/bench/%,$(TEST_BIN:$(BUILD)/%=$(ASAN_BUILD)/%))
	PYTHON=$(PYTHON) ASAN_BUILD=$(ASAN_BUILD) tests/fuzz/test-asan.sh

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/tests/fuzz/%.d) $(FUZZ_BUILD)/tests/fuzz/fuzz_util.d
