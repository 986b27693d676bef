/* CPU backend: context (oneDNN engine + stream, threads, errors), host memory, and the small
 * oneDNN helpers the op files share.
 *
 * Contracts of this backend beyond kernels.h:
 * - A context and its plans are used by one thread at a time: the scratchpad and the
 *   activation staging buffers live in the context and are shared by every plan.
 * - kn_cpu_conv_backward_data reuses the weights the plan's last forward reordered when it gets
 *   the same weight pointer and no kn_cpu_adam_step / kn_cpu_copy_to_device / kn_cpu_zero ran
 * since; code that rewrites parameters by other means must run the forward again first.
 * - TLSWEEP_CPU_WINOGRAD=0 in the environment (read at kn_cpu_ctx_create) keeps every
 *   convolution direct, e.g. to compare against a direct-convolution run. */
#include "kernels/cpu/cpu_internal.h"

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

#define KN_ALIGN 64
#define KN_MAX_ARGS 16

int kn_fail(kn_cpu_ctx *ctx, const char *what, const char *fmt, ...) {
    int len = snprintf(ctx->err, sizeof ctx->err, "%s: ", what);
    if (len < 0 || (size_t)len >= sizeof ctx->err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err + len, sizeof ctx->err - (size_t)len, fmt, ap);
    va_end(ap);
    return -1;
}

int kn_check(kn_cpu_ctx *ctx, dnnl_status_t st, const char *what, const char *step) {
    if (st == dnnl_success) return 0;
    return kn_fail(ctx, what, "%s failed: oneDNN %s", step, dnnl_status2str(st));
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41:
        return "sse41";
    case dnnl_cpu_isa_avx:
        return "avx";
    case dnnl_cpu_isa_avx2:
        return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
        return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
        return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
        return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
        return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
        return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
        return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
        return "avx512_core_amx";
    default:
        return "all";
    }
}

/* bf16 plans need the AVX512-BF16 instructions: oneDNN's bf16 kernels for older CPUs emulate
 * them and run slower than fp32, which a user asking for speed must not get silently. The
 * effective ISA honours ONEDNN_MAX_CPU_ISA, so the refusal can be tested on any machine. */
int kn_cpu_bf16_supported(kn_cpu_ctx *ctx, char *why, size_t whylen) {
    (void)ctx;
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) return 1;
    if (whylen)
        snprintf(why, whylen,
                 "this CPU has no AVX512-BF16 instructions (oneDNN runs %s there), so bf16 "
                 "would be an emulation slower than fp32",
                 isa_name(isa));
    return 0;
}

int kn_dtype_check(kn_cpu_ctx *ctx, kn_dtype dtype, dnnl_data_type_t *dt, const char *what) {
    char why[KN_WHAT_LEN];
    if (dtype == KN_F32) {
        *dt = dnnl_f32;
        return 0;
    }
    if (dtype != KN_BF16) return kn_fail(ctx, what, "unknown dtype %d", (int)dtype);
    if (!kn_cpu_bf16_supported(ctx, why, sizeof why)) return kn_fail(ctx, what, "bf16: %s", why);
    *dt = dnnl_bf16;
    return 0;
}

static void set_create_error(char *err, size_t errlen, const char *msg, dnnl_status_t st) {
    if (errlen == 0 || !err) return;
    if (st == dnnl_success)
        snprintf(err, errlen, "cpu backend: %s", msg);
    else
        snprintf(err, errlen, "cpu backend: %s: oneDNN %s", msg, dnnl_status2str(st));
}

kn_cpu_ctx *kn_cpu_ctx_create(const kn_ctx_options *opt, char *err, size_t errlen) {
    if (opt && opt->threads < 0) {
        set_create_error(err, errlen, "threads must be >= 0", dnnl_success);
        return NULL;
    }
    kn_cpu_ctx *ctx = calloc(1, sizeof *ctx);
    kn_relu_entry *cache = calloc(KN_RELU_CACHE, sizeof *cache);
    if (!ctx || !cache) {
        free(ctx);
        free(cache);
        set_create_error(err, errlen, "out of memory for the context", dnnl_success);
        return NULL;
    }
    ctx->relu_cache = cache;
    ctx->threads = opt && opt->threads > 0 ? opt->threads : omp_get_num_procs();
    const char *wino = getenv("TLSWEEP_CPU_WINOGRAD");
    ctx->winograd = !(wino && strcmp(wino, "0") == 0);
    /* oneDNN's OpenMP runtime takes its team size from this thread's ICV. */
    omp_set_num_threads(ctx->threads);

    dnnl_status_t st = dnnl_engine_create(&ctx->engine, dnnl_cpu, 0);
    if (st != dnnl_success) {
        set_create_error(err, errlen, "cannot create the oneDNN CPU engine", st);
        kn_cpu_ctx_destroy(ctx);
        return NULL;
    }
    st = dnnl_stream_create(&ctx->stream, ctx->engine, dnnl_stream_default_flags);
    if (st == dnnl_success) st = dnnl_primitive_attr_create(&ctx->attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(ctx->attr, dnnl_scratchpad_mode_user);
    if (st != dnnl_success) {
        set_create_error(err, errlen, "cannot create the oneDNN stream/attributes", st);
        kn_cpu_ctx_destroy(ctx);
        return NULL;
    }
    const dnnl_version_t *v = dnnl_version();
    snprintf(ctx->describe, sizeof ctx->describe, "cpu: oneDNN %d.%d.%d (ISA %s), %d threads%s",
             v->major, v->minor, v->patch, isa_name(dnnl_get_effective_cpu_isa()), ctx->threads,
             ctx->winograd ? "" : ", Winograd off");
    return ctx;
}

void kn_cpu_ctx_destroy(kn_cpu_ctx *ctx) {
    if (!ctx) return;
    if (ctx->relu_cache) {
        for (int i = 0; i < KN_RELU_CACHE; i++) {
            kn_relu_entry *e = &ctx->relu_cache[i];
            kn_prim_destroy(&e->fwd);
            kn_prim_destroy(&e->bwd);
            kn_mem_destroy(e->data);
            kn_mem_destroy(e->diff_data);
            kn_mem_destroy(e->out);
        }
        free(ctx->relu_cache);
    }
    if (ctx->attr) dnnl_primitive_attr_destroy(ctx->attr);
    if (ctx->stream) dnnl_stream_destroy(ctx->stream);
    if (ctx->engine) dnnl_engine_destroy(ctx->engine);
    free(ctx->scratch);
    free(ctx->stage[0]);
    free(ctx->stage[1]);
    free(ctx);
}

const char *kn_cpu_error(const kn_cpu_ctx *ctx) {
    return ctx ? ctx->err : "no context";
}
const char *kn_cpu_describe(const kn_cpu_ctx *ctx) {
    return ctx ? ctx->describe : "no context";
}
void kn_cpu_set_error(kn_cpu_ctx *ctx, const char *msg) {
    snprintf(ctx->err, sizeof ctx->err, "%s", msg);
}

/* ---- memory ---------------------------------------------------------------------------- */

static void *aligned_bytes(size_t bytes) {
    size_t rounded = (bytes + KN_ALIGN - 1) / KN_ALIGN * KN_ALIGN;
    return aligned_alloc(KN_ALIGN, rounded ? rounded : KN_ALIGN);
}

void *kn_cpu_malloc(kn_cpu_ctx *ctx, size_t bytes) {
    void *p = aligned_bytes(bytes);
    if (!p) kn_fail(ctx, "kn_cpu_malloc", "cannot allocate %zu bytes", bytes);
    return p;
}

void kn_cpu_free(kn_cpu_ctx *ctx, void *ptr) {
    (void)ctx;
    free(ptr);
}

void kn_cpu_note_write(kn_cpu_ctx *ctx, const void *ptr, size_t bytes) {
    ctx->weights_epoch++;
    ctx->write_log[ctx->weights_epoch % KN_WRITE_LOG].lo = ptr;
    ctx->write_log[ctx->weights_epoch % KN_WRITE_LOG].hi = (const char *)ptr + bytes;
}

int kn_cpu_unchanged(const kn_cpu_ctx *ctx, uint64_t since, const void *ptr, size_t bytes) {
    if (ctx->weights_epoch - since >= KN_WRITE_LOG) return 0;
    const char *lo = ptr, *hi = lo + bytes;
    for (uint64_t e = since + 1; e <= ctx->weights_epoch; e++)
        if (ctx->write_log[e % KN_WRITE_LOG].lo < hi && lo < ctx->write_log[e % KN_WRITE_LOG].hi)
            return 0;
    return 1;
}

int kn_cpu_copy_to_device(kn_cpu_ctx *ctx, void *dst, const void *host_src, size_t bytes) {
    if (bytes && (!dst || !host_src)) return kn_fail(ctx, "kn_cpu_copy_to_device", "NULL pointer");
    if (bytes) memmove(dst, host_src, bytes);
    kn_cpu_note_write(ctx, dst, bytes); /* may have overwritten parameters */
    return 0;
}

int kn_cpu_copy_to_host(kn_cpu_ctx *ctx, void *host_dst, const void *src, size_t bytes) {
    if (bytes && (!host_dst || !src)) return kn_fail(ctx, "kn_cpu_copy_to_host", "NULL pointer");
    if (bytes) memmove(host_dst, src, bytes);
    return 0;
}

int kn_cpu_zero(kn_cpu_ctx *ctx, float *ptr, size_t count) {
    if (count && !ptr) return kn_fail(ctx, "kn_cpu_zero", "NULL pointer");
    if (count) memset(ptr, 0, count * sizeof *ptr);
    kn_cpu_note_write(ctx, ptr, count * sizeof *ptr);
    return 0;
}

int kn_cpu_sync(kn_cpu_ctx *ctx) {
    return kn_check(ctx, dnnl_stream_wait(ctx->stream), "kn_cpu_sync", "stream wait");
}

void *kn_plan_new(kn_cpu_ctx *ctx, size_t bytes, const char *what) {
    void *p = calloc(1, bytes);
    if (!p) kn_fail(ctx, what, "out of memory");
    return p;
}

void *kn_plan_alloc(kn_cpu_ctx *ctx, size_t bytes, const char *what) {
    void *p = aligned_bytes(bytes);
    if (!p) kn_fail(ctx, what, "cannot allocate %zu bytes of plan memory", bytes);
    return p;
}

/* ---- oneDNN helpers -------------------------------------------------------------------- */

static int grow_scratch(kn_cpu_ctx *ctx, size_t bytes, const char *what) {
    if (bytes <= ctx->scratch_bytes) return 0;
    void *p = aligned_bytes(bytes);
    if (!p) return kn_fail(ctx, what, "cannot allocate %zu bytes of scratchpad", bytes);
    free(ctx->scratch);
    ctx->scratch = p;
    ctx->scratch_bytes = bytes;
    return 0;
}

static int finish_prim(kn_cpu_ctx *ctx, kn_prim *p, const char *what) {
    if (kn_check(ctx, dnnl_primitive_create(&p->prim, p->pd), what, "primitive create")) return -1;
    const dnnl_memory_desc_t *smd =
        dnnl_primitive_desc_query_md(p->pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (bytes == 0) return 0;
    if (grow_scratch(ctx, bytes, what)) return -1;
    return kn_mem_create(ctx, &p->scratch, smd, what);
}

int kn_stage_reserve(kn_cpu_ctx *ctx, int slot, size_t bytes, const char *what) {
    if (bytes <= ctx->stage_bytes[slot]) return 0;
    void *p = aligned_bytes(bytes);
    if (!p) return kn_fail(ctx, what, "cannot allocate %zu bytes of activation staging", bytes);
    free(ctx->stage[slot]);
    ctx->stage[slot] = p;
    ctx->stage_bytes[slot] = bytes;
    return 0;
}

int kn_prim_create(kn_cpu_ctx *ctx, kn_prim *p, const_dnnl_op_desc_t op,
                   const_dnnl_primitive_desc_t hint, const char *what) {
    memset(p, 0, sizeof *p);
    if (kn_check(ctx, dnnl_primitive_desc_create(&p->pd, op, ctx->attr, ctx->engine, hint), what,
                 "primitive descriptor create"))
        return -1;
    return finish_prim(ctx, p, what);
}

int kn_prim_create_reorder(kn_cpu_ctx *ctx, kn_prim *p, const dnnl_memory_desc_t *src,
                           const dnnl_memory_desc_t *dst, const char *what) {
    memset(p, 0, sizeof *p);
    if (kn_check(ctx,
                 dnnl_reorder_primitive_desc_create(&p->pd, src, ctx->engine, dst, ctx->engine,
                                                    ctx->attr),
                 what, "reorder descriptor create"))
        return -1;
    return finish_prim(ctx, p, what);
}

int kn_prim_exec(kn_cpu_ctx *ctx, kn_prim *p, int nargs, const dnnl_exec_arg_t *args,
                 const char *what) {
    dnnl_exec_arg_t all[KN_MAX_ARGS + 1];
    /* oneDNN sizes its OpenMP team from the calling thread's ICV, which is per thread and may
     * have been changed by other code since kn_cpu_ctx_create. */
    if (omp_get_max_threads() != ctx->threads) omp_set_num_threads(ctx->threads);
    if (nargs > KN_MAX_ARGS) return kn_fail(ctx, what, "too many primitive arguments (%d)", nargs);
    memcpy(all, args, (size_t)nargs * sizeof *args);
    if (p->scratch) {
        if (kn_bind(ctx, p->scratch, ctx->scratch, what)) return -1;
        all[nargs].arg = DNNL_ARG_SCRATCHPAD;
        all[nargs].memory = p->scratch;
        nargs++;
    }
    return kn_check(ctx, dnnl_primitive_execute(p->prim, ctx->stream, nargs, all), what, "execute");
}

int kn_bind_args(kn_cpu_ctx *ctx, const dnnl_exec_arg_t *args, const void *const *ptrs, int nargs,
                 const char *what) {
    for (int i = 0; i < nargs; i++)
        if (!ptrs[i]) return kn_fail(ctx, what, "NULL tensor argument");
    for (int i = 0; i < nargs; i++)
        if (kn_bind(ctx, args[i].memory, ptrs[i], what)) return -1;
    return 0;
}

int kn_prim_bind_exec(kn_cpu_ctx *ctx, kn_prim *p, int nargs, const dnnl_exec_arg_t *args,
                      const void *const *ptrs, const char *what) {
    if (kn_bind_args(ctx, args, ptrs, nargs, what)) return -1;
    return kn_prim_exec(ctx, p, nargs, args, what);
}

void kn_prim_destroy(kn_prim *p) {
    if (p->scratch) dnnl_memory_destroy(p->scratch);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    memset(p, 0, sizeof *p);
}

const dnnl_memory_desc_t *kn_prim_md(const kn_prim *p, dnnl_query_t query, int index) {
    return dnnl_primitive_desc_query_md(p->pd, query, index);
}

int kn_mem_create(kn_cpu_ctx *ctx, dnnl_memory_t *mem, const dnnl_memory_desc_t *md,
                  const char *what) {
    if (!md) return kn_fail(ctx, what, "primitive reported no memory descriptor");
    return kn_check(ctx, dnnl_memory_create(mem, md, ctx->engine, DNNL_MEMORY_NONE), what,
                    "memory create");
}

int kn_bind(kn_cpu_ctx *ctx, dnnl_memory_t mem, const void *ptr, const char *what) {
    return kn_check(ctx, dnnl_memory_set_data_handle(mem, (void *)ptr), what, "set data handle");
}

void kn_mem_destroy(dnnl_memory_t mem) {
    if (mem) dnnl_memory_destroy(mem);
}

int kn_md_nhwc(kn_cpu_ctx *ctx, dnnl_memory_desc_t *md, int n, int c, int h, int w,
               const char *what) {
    dnnl_dims_t dims = {n, c, h, w}; /* oneDNN's logical order is always N, C, H, W */
    return kn_check(ctx, dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_nhwc), what,
                    "NHWC descriptor");
}

int kn_md_2d(kn_cpu_ctx *ctx, dnnl_memory_desc_t *md, int rows, int cols, const char *what) {
    dnnl_dims_t dims = {rows, cols};
    return kn_check(ctx, dnnl_memory_desc_init_by_tag(md, 2, dims, dnnl_f32, dnnl_ab), what,
                    "2-D descriptor");
}

int kn_md_1d(kn_cpu_ctx *ctx, dnnl_memory_desc_t *md, int64_t count, const char *what) {
    dnnl_dims_t dims = {count};
    return kn_check(ctx, dnnl_memory_desc_init_by_tag(md, 1, dims, dnnl_f32, dnnl_a), what,
                    "1-D descriptor");
}
