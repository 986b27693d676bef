/* Batch normalization on oneDNN (NHWC, separate scale and shift), plus the running-statistics
 * update in C because oneDNN does not keep running averages. */
#include "kernels/cpu/cpu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kn_cpu_bn *kn_cpu_bn_create(kn_cpu_ctx *ctx, const kn_bn_shape *s) {
    char what[KN_WHAT_LEN];
    snprintf(what, sizeof what, "batchnorm on NHWC %dx%dx%dx%d", s->n, s->h, s->w, s->c);
    if (s->n <= 0 || s->c <= 0 || s->h <= 0 || s->w <= 0) {
        kn_fail(ctx, what, "sizes must be positive");
        return NULL;
    }
    if (!(s->eps > 0)) {
        kn_fail(ctx, what, "eps must be > 0");
        return NULL;
    }
    kn_cpu_bn *p = kn_plan_new(ctx, sizeof *p, what);
    if (!p) return NULL;
    p->ctx = ctx;
    p->s = *s;
    memcpy(p->what, what, sizeof what);
    const unsigned ss = dnnl_use_scale | dnnl_use_shift;
    dnnl_memory_desc_t data, vec;
    dnnl_batch_normalization_desc_t td, id, bd;
    if (kn_md_nhwc(ctx, &data, s->n, s->c, s->h, s->w, what) || kn_md_1d(ctx, &vec, s->c, what) ||
        kn_check(ctx,
                 dnnl_batch_normalization_forward_desc_init(&td, dnnl_forward_training, &data,
                                                            s->eps, ss),
                 what, "training descriptor") ||
        kn_prim_create(ctx, &p->train, &td, NULL, what) ||
        kn_check(ctx,
                 dnnl_batch_normalization_forward_desc_init(&id, dnnl_forward_inference, &data,
                                                            s->eps, ss | dnnl_use_global_stats),
                 what, "inference descriptor") ||
        kn_prim_create(ctx, &p->infer, &id, NULL, what) ||
        kn_check(ctx,
                 dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &data, &data,
                                                             s->eps, ss),
                 what, "backward descriptor") ||
        kn_prim_create(ctx, &p->bwd, &bd, p->train.pd, what))
        goto fail;
    /* Plain NHWC data and C-vectors everywhere, so one memory object per role suffices. */
    dnnl_memory_t *vecs[] = {&p->m_mean,  &p->m_var,    &p->m_scale,
                             &p->m_shift, &p->m_dscale, &p->m_dshift};
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++)
        if (kn_mem_create(ctx, vecs[i], &vec, what)) goto fail;
    if (kn_mem_create(ctx, &p->m_src, &data, what) || kn_mem_create(ctx, &p->m_dst, &data, what) ||
        kn_mem_create(ctx, &p->m_dsrc, &data, what))
        goto fail;
    p->dgamma_sink = kn_plan_alloc(ctx, (size_t)s->c * sizeof(float), what);
    p->dbeta_sink = kn_plan_alloc(ctx, (size_t)s->c * sizeof(float), what);
    p->zero_shift = kn_plan_alloc(ctx, (size_t)s->c * sizeof(float), what);
    if (!p->dgamma_sink || !p->dbeta_sink || !p->zero_shift) goto fail;
    memset(p->zero_shift, 0, (size_t)s->c * sizeof(float));
    return p;
fail:
    kn_cpu_bn_destroy(p);
    return NULL;
}

int kn_cpu_bn_forward_train(kn_cpu_bn *p,
                            float *out,          // (N, H, W, C)
                            float *save_mean,    // (C)
                            float *save_var,     // (C)
                            float *running_mean, // (C), updated in place
                            float *running_var,  // (C), updated in place
                            const float *inp,    // (N, H, W, C)
                            const float *gamma,  // (C)
                            const float *beta) { // (C)
    const size_t count = (size_t)p->s.n * p->s.h * p->s.w;
    if (count < 2) return kn_fail(p->ctx, p->what, "training needs more than 1 value per channel");
    if (!running_mean || !running_var) return kn_fail(p->ctx, p->what, "NULL running statistics");
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->m_src},     {DNNL_ARG_DST, p->m_dst},
                              {DNNL_ARG_MEAN, p->m_mean},   {DNNL_ARG_VARIANCE, p->m_var},
                              {DNNL_ARG_SCALE, p->m_scale}, {DNNL_ARG_SHIFT, p->m_shift}};
    const void *ptrs[] = {inp, out, save_mean, save_var, gamma, beta};
    if (kn_prim_bind_exec(p->ctx, &p->train, 6, args, ptrs, p->what)) return -1;
    for (int c = 0; c < p->s.c; c++)
        kn_cpu_bn_running_update(&running_mean[c], &running_var[c], save_mean[c], save_var[c],
                                 (double)count, p->s.momentum);
    return 0;
}

void kn_cpu_bn_running_update(float *running_mean, float *running_var, double batch_mean,
                              double batch_var, double count, double momentum) {
    /* PyTorch: running stats take the unbiased variance; normalization used the biased one. */
    /* in double, as PyTorch's CPU kernel accumulates these */
    const double unbias = count / (count - 1.0);
    *running_mean = (float)((1.0 - momentum) * *running_mean + momentum * batch_mean);
    *running_var = (float)((1.0 - momentum) * *running_var + momentum * batch_var * unbias);
}

int kn_cpu_bn_forward_infer(kn_cpu_bn *p,
                            float *out,                 // (N, H, W, C)
                            const float *inp,           // (N, H, W, C)
                            const float *gamma,         // (C)
                            const float *beta,          // (C)
                            const float *running_mean,  // (C)
                            const float *running_var) { // (C)
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->m_src},     {DNNL_ARG_DST, p->m_dst},
                              {DNNL_ARG_MEAN, p->m_mean},   {DNNL_ARG_VARIANCE, p->m_var},
                              {DNNL_ARG_SCALE, p->m_scale}, {DNNL_ARG_SHIFT, p->m_shift}};
    const void *ptrs[] = {inp, out, running_mean, running_var, gamma, beta};
    return kn_prim_bind_exec(p->ctx, &p->infer, 6, args, ptrs, p->what);
}

int kn_cpu_bn_backward(kn_cpu_bn *p,
                       float *dinp,            // (N, H, W, C)
                       float *dgamma,          // (C) or NULL
                       float *dbeta,           // (C) or NULL
                       const float *dout,      // (N, H, W, C)
                       const float *inp,       // (N, H, W, C)
                       const float *save_mean, // (C)
                       const float *save_var,  // (C)
                       const float *gamma) {   // (C)
    /* Frozen BN parameters still need dinp; the full backward computes their gradients into
     * plan-owned sinks, which costs a C-length write. */
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, p->m_src},          {DNNL_ARG_DIFF_DST, p->m_dst},
                              {DNNL_ARG_MEAN, p->m_mean},        {DNNL_ARG_VARIANCE, p->m_var},
                              {DNNL_ARG_SCALE, p->m_scale},      {DNNL_ARG_SHIFT, p->m_shift},
                              {DNNL_ARG_DIFF_SRC, p->m_dsrc},    {DNNL_ARG_DIFF_SCALE, p->m_dscale},
                              {DNNL_ARG_DIFF_SHIFT, p->m_dshift}};
    const void *ptrs[] = {inp,
                          dout,
                          save_mean,
                          save_var,
                          gamma,
                          p->zero_shift,
                          dinp,
                          dgamma ? dgamma : p->dgamma_sink,
                          dbeta ? dbeta : p->dbeta_sink};
    return kn_prim_bind_exec(p->ctx, &p->bwd, 9, args, ptrs, p->what);
}

void kn_cpu_bn_destroy(kn_cpu_bn *p) {
    if (!p) return;
    kn_prim_destroy(&p->train);
    kn_prim_destroy(&p->infer);
    kn_prim_destroy(&p->bwd);
    dnnl_memory_t mems[] = {p->m_src,   p->m_dst,   p->m_dsrc,   p->m_mean,  p->m_var,
                            p->m_scale, p->m_shift, p->m_dscale, p->m_dshift};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        kn_mem_destroy(mems[i]);
    free(p->dgamma_sink);
    free(p->dbeta_sink);
    free(p->zero_shift);
    free(p->partials);
    free(p->coefs);
    free(p);
}
