/* Output sizes and shape checks shared by the backends (PyTorch's rules). */
#include "kernels/shape.h"

#include <stdio.h>

void kn_conv_output_hw(const kn_conv_shape *s, int *h_out, int *w_out) {
    int ekh = (s->kh - 1) * s->dilation_h + 1, ekw = (s->kw - 1) * s->dilation_w + 1;
    *h_out = s->stride_h > 0 ? (s->h_in + 2 * s->pad_h - ekh) / s->stride_h + 1 : 0;
    *w_out = s->stride_w > 0 ? (s->w_in + 2 * s->pad_w - ekw) / s->stride_w + 1 : 0;
    if (s->h_in + 2 * s->pad_h < ekh) *h_out = 0; /* C division truncates towards zero */
    if (s->w_in + 2 * s->pad_w < ekw) *w_out = 0;
}

/* PyTorch's output size; with ceil_mode the last window must start inside the input or
 * its left padding. */
static int pool_out_size(int in, int k, int stride, int pad, int ceil_mode) {
    int span = in + 2 * pad - k;
    if (span < 0) return 0;
    int out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

void kn_pool_output_hw(const kn_pool_shape *s, int *h_out, int *w_out) {
    *h_out =
        s->stride_h > 0 ? pool_out_size(s->h_in, s->kh, s->stride_h, s->pad_h, s->ceil_mode) : 0;
    *w_out =
        s->stride_w > 0 ? pool_out_size(s->w_in, s->kw, s->stride_w, s->pad_w, s->ceil_mode) : 0;
}

static int refuse(char *msg, size_t len, const char *text) {
    snprintf(msg, len, "%s", text);
    return -1;
}

int kn_conv_shape_check(const kn_conv_shape *s, char *msg, size_t len) {
    if (s->n <= 0 || s->c_in <= 0 || s->h_in <= 0 || s->w_in <= 0 || s->c_out <= 0 || s->kh <= 0 ||
        s->kw <= 0)
        return refuse(msg, len, "sizes must be positive");
    if (s->stride_h <= 0 || s->stride_w <= 0 || s->dilation_h <= 0 || s->dilation_w <= 0)
        return refuse(msg, len, "stride and dilation must be >= 1");
    if (s->pad_h < 0 || s->pad_w < 0) return refuse(msg, len, "padding must be >= 0");
    if (s->groups <= 0 || s->c_in % s->groups || s->c_out % s->groups) {
        snprintf(msg, len, "groups %d must divide C_in %d and C_out %d", s->groups, s->c_in,
                 s->c_out);
        return -1;
    }
    int ho, wo;
    kn_conv_output_hw(s, &ho, &wo);
    if (ho <= 0 || wo <= 0) {
        snprintf(msg, len, "kernel larger than the padded input (output %dx%d)", ho, wo);
        return -1;
    }
    return 0;
}

int kn_pool_shape_check(const kn_pool_shape *s, char *msg, size_t len) {
    if (s->kind != KN_POOL_MAX && s->kind != KN_POOL_AVG)
        return refuse(msg, len, "unknown pooling kind");
    if (s->n <= 0 || s->c <= 0 || s->h_in <= 0 || s->w_in <= 0 || s->kh <= 0 || s->kw <= 0)
        return refuse(msg, len, "sizes must be positive");
    if (s->stride_h <= 0 || s->stride_w <= 0) return refuse(msg, len, "stride must be >= 1");
    /* PyTorch's own limit; it also keeps every window overlapping the input. */
    if (s->pad_h < 0 || s->pad_w < 0 || 2 * s->pad_h > s->kh || 2 * s->pad_w > s->kw)
        return refuse(msg, len, "padding must be between 0 and half the kernel");
    int ho, wo;
    kn_pool_output_hw(s, &ho, &wo);
    if (ho <= 0 || wo <= 0) {
        snprintf(msg, len, "kernel larger than the padded input (output %dx%d)", ho, wo);
        return -1;
    }
    return 0;
}
