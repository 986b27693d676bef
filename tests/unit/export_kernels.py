#!/usr/bin/env python3
"""Reference tensors for tests/unit/test_kernels.c, computed with PyTorch.

Usage: export_kernels.py OUTDIR  -> OUTDIR/kernels/NAME.bin (+ NAME.shape)

References are computed in float64 and stored as float32, so they carry no float32 rounding of
their own. Activations are written NHWC (the kernels' layout); parameters keep PyTorch's
layouts. The case tables must match the ones in test_kernels.c.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tensor_file import nhwc, write  # noqa: E402

OUT = None


def save(name, t, dtype=torch.float32):
    write(os.path.join(OUT, name), t, dtype)


def rand(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=torch.float64) * (hi - lo) + lo)


# name, n, c_in, h, w, c_out, k, stride, pad, dilation, groups, bias
CONV_CASES = [
    ("conv_3x3_s1_p1", 2, 8, 10, 10, 16, 3, 1, 1, 1, 1, False),
    ("conv_7x7_s2_p3", 2, 3, 32, 32, 16, 7, 2, 3, 1, 1, False),
    ("conv_1x1_s2", 2, 16, 14, 14, 32, 1, 2, 0, 1, 1, False),
    ("conv_bias", 2, 8, 9, 9, 12, 3, 1, 1, 1, 1, True),
    ("conv_groups2", 2, 8, 10, 10, 16, 3, 1, 1, 1, 2, True),
    ("conv_odd_13x11", 3, 5, 13, 11, 7, 3, 2, 1, 1, 1, True),
    ("conv_dilated", 2, 4, 12, 12, 8, 3, 1, 2, 2, 1, False),
    ("conv_3x3_wino", 2, 16, 12, 12, 32, 3, 1, 1, 1, 1, True),
]


def save_layer(name, x, w, b, y, dy, layout=lambda t: t):
    """A conv or linear case after y.backward(dy): activations (x, y, dy, dx) in the kernel's
    layout, the weight and bias and their gradients as PyTorch holds them; b may be None."""
    save(name + "_x", layout(x))
    save(name + "_w", w)
    save(name + "_y", layout(y))
    save(name + "_dy", layout(dy))
    save(name + "_dx", layout(x.grad))
    save(name + "_dw", w.grad)
    if b is not None:
        save(name + "_b", b)
        save(name + "_db", b.grad)


def export_conv():
    for name, n, ci, h, w, co, k, s, p, d, g, bias in CONV_CASES:
        x = rand(n, ci, h, w).requires_grad_()
        wt = rand(co, ci // g, k, k, lo=-0.5, hi=0.5).requires_grad_()
        b = rand(co).requires_grad_() if bias else None
        y = F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=g)
        dy = rand(*y.shape)
        y.backward(dy)
        save_layer(name, x, wt, b, y, dy, nhwc)


# name, n, c, h, w: C=6 takes oneDNN's generic NHWC kernel, C=32 its JIT one (resnet-like)
BN_CASES = [("bn", 4, 6, 5, 5), ("bn_c32", 2, 32, 6, 6)]


# Synchronized batch norm: the whole batch's nn.BatchNorm2d in train mode, which the C test
# computes shard by shard (N split 3 + 2 + 3, as three ranks would hold it); must match
# test_kernels.c's BN_SYNC_* constants.
BN_SYNC_CASE = ("bn_sync", 8, 5, 3, 4)


def export_bn():
    for case in BN_CASES:
        export_bn_case(*case)


def export_bn_case(name, n, c, h, w):
    x = (rand(n, c, h, w) * 2 + 0.5).requires_grad_()
    bn = torch.nn.BatchNorm2d(c, eps=1e-5, momentum=0.1).double()
    with torch.no_grad():
        bn.weight.copy_(rand(c, lo=0.5, hi=1.5))
        bn.bias.copy_(rand(c))
        bn.running_mean.copy_(rand(c))
        bn.running_var.copy_(rand(c, lo=0.5, hi=2.0))
    save(name + "_x", nhwc(x))
    save(name + "_gamma", bn.weight)
    save(name + "_beta", bn.bias)
    save(name + "_rmean0", bn.running_mean)
    save(name + "_rvar0", bn.running_var)
    bn.train()
    y = bn(x)
    dy = rand(*y.shape)
    y.backward(dy)
    save(name + "_y", nhwc(y))
    save(name + "_save_mean", x.mean(dim=(0, 2, 3)))
    save(name + "_save_var", x.var(dim=(0, 2, 3), unbiased=False))
    save(name + "_rmean1", bn.running_mean)
    save(name + "_rvar1", bn.running_var)
    save(name + "_dy", nhwc(dy))
    save(name + "_dx", nhwc(x.grad))
    save(name + "_dgamma", bn.weight.grad)
    save(name + "_dbeta", bn.bias.grad)
    bn.eval()
    with torch.no_grad():
        save(name + "_y_infer", nhwc(bn(x)))


# name, kind, n, c, h, w, k, stride, pad, ceil_mode, count_include_pad
POOL_CASES = [
    ("maxpool_3x3_s2_p1", "max", 2, 8, 13, 13, 3, 2, 1, False, True),
    ("maxpool_2x2_s2", "max", 2, 4, 8, 8, 2, 2, 0, False, True),
    ("avgpool_3x3_s2_p1", "avg", 2, 8, 13, 13, 3, 2, 1, False, True),
    ("avgpool_3x3_s2_p1_excl", "avg", 2, 8, 13, 13, 3, 2, 1, False, False),
    ("avgpool_2x2_s2_ceil", "avg", 2, 4, 7, 7, 2, 2, 0, True, False),
]


def export_pool():
    for name, kind, n, c, h, w, k, s, p, ceil, incl in POOL_CASES:
        x = rand(n, c, h, w).requires_grad_()
        if kind == "max":
            y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        else:
            y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=incl)
        dy = rand(*y.shape)
        y.backward(dy)
        save(name + "_x", nhwc(x))
        save(name + "_y", nhwc(y))
        save(name + "_dy", nhwc(dy))
        save(name + "_dx", nhwc(x.grad))


ADAPTIVE_CASES = [(hw, o) for hw in (1, 3, 14) for o in (1, 7)]


def export_adaptive():
    n, c = 2, 5
    for hw, o in ADAPTIVE_CASES:
        name = "adaptive_%d_to_%d" % (hw, o)
        x = rand(n, c, hw, hw).requires_grad_()
        y = F.adaptive_avg_pool2d(x, o)
        dy = rand(*y.shape)
        y.backward(dy)
        save(name + "_x", nhwc(x))
        save(name + "_y", nhwc(y))
        save(name + "_dy", nhwc(dy))
        save(name + "_dx", nhwc(x.grad))


def export_relu():
    x = rand(1000).requires_grad_()
    y = F.relu(x)
    dy = rand(1000)
    y.backward(dy)
    save("relu_x", x)
    save("relu_y", y)
    save("relu_dy", dy)
    save("relu_dx", x.grad)


# name, n, in, out, bias
LINEAR_CASES = [("linear_bias", 4, 20, 7, True), ("linear_nobias", 3, 33, 5, False)]


def export_linear():
    for name, n, fin, fout, bias in LINEAR_CASES:
        x = rand(n, fin).requires_grad_()
        lin = torch.nn.Linear(fin, fout, bias=bias).double()
        y = lin(x)
        dy = rand(n, fout)
        y.backward(dy)
        save_layer(name, x, lin.weight, lin.bias, y, dy)


def export_cross_entropy():
    n, c = 8, 10
    logits = rand(n, c) * 5
    labels = torch.randint(0, c, (n,))
    # row 0: a tie for the maximum, label at the first one (argmax takes the first)
    logits[0, 2] = logits[0, 5] = 9.0
    labels[0] = 2
    # row 1: the same tie, label at the second one: not correct
    logits[1, 3] = logits[1, 4] = 9.0
    labels[1] = 4
    # row 2: huge logits that overflow a naive exp
    logits[2] += 1000.0
    logits = logits.float().double().requires_grad_()  # representable in float32 exactly
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    correct = (logits.argmax(dim=1) == labels).sum()
    save("ce_logits", logits)
    save("ce_labels", labels, torch.int32)
    save("ce_loss", loss.reshape(1))
    save("ce_dlogits", logits.grad)
    save("ce_correct", correct.reshape(1), torch.int32)


def export_adam():
    sizes, lrs, wd = (50, 30), (1e-3, 1e-2), 1e-4
    # float32 like the kernel, so the comparison sees only operation-order rounding
    params = [rand(s).float().requires_grad_() for s in sizes]
    save("adam_p0", torch.cat([p.detach() for p in params]))
    opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)],
                           betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    for step in range(1, 4):
        grads = [rand(s).float() * (0.1 * step) for s in sizes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        save("adam_g%d" % step, torch.cat(grads))
        save("adam_p%d" % step, torch.cat([p.detach() for p in params]))
    save("adam_m3", torch.cat([opt.state[p]["exp_avg"] for p in params]))
    save("adam_v3", torch.cat([opt.state[p]["exp_avg_sq"] for p in params]))


def export_layout():
    x = rand(2, 3, 4, 5)
    save("layout_nchw", x)
    save("layout_nhwc", nhwc(x))


def bf16_exact(*shape, lo=-1.0, hi=1.0):
    """Random values that bf16 holds exactly: casting them is no rounding on either side."""
    return rand(*shape, lo=lo, hi=hi).to(torch.bfloat16).float()


# bf16 cases: the fp32 cases' shapes under torch.autocast("cpu", dtype=torch.bfloat16), which
# rounds inputs and weights to bf16 and returns bf16 outputs (fp32 accumulation inside);
# gradients come back to the fp32 leaves. Inputs and output gradients are bf16-exact (the
# kernel's callers hold bf16 activations); weights are fp32 masters, rounded by both sides.
def export_conv_bf16():
    for name, n, ci, h, w, co, k, s, p, d, g, bias in CONV_CASES:
        name += "_bf16"
        x = bf16_exact(n, ci, h, w).requires_grad_()
        wt = rand(co, ci // g, k, k, lo=-0.5, hi=0.5).float().requires_grad_()
        b = rand(co).float().requires_grad_() if bias else None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=g)
        assert y.dtype == torch.bfloat16
        dy = bf16_exact(*y.shape)
        y.backward(dy.to(torch.bfloat16))
        save_layer(name, x, wt, b, y.float(), dy, nhwc)


def export_linear_bf16():
    for name, n, fin, fout, bias in LINEAR_CASES:
        name += "_bf16"
        x = bf16_exact(n, fin).requires_grad_()
        lin = torch.nn.Linear(fin, fout, bias=bias)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = lin(x)
        assert y.dtype == torch.bfloat16
        dy = bf16_exact(n, fout)
        y.backward(dy.to(torch.bfloat16))
        save_layer(name, x, lin.weight, lin.bias, y.float(), dy)


def export_bf16_cast():
    """fp32 -> bf16 rounding as PyTorch does it: ties to even, overflow to inf, subnormals."""
    one = 1.0 + 2.0 ** -8  # halfway between 1 and the next bf16: even is 1
    three = 1.0 + 3 * 2.0 ** -8  # halfway again: even is 1 + 2^-6
    x = torch.tensor([0.0, -0.0, 1.0, one, three, -three, 3.0e38, -3.4e38, 1e-40, -1e-39,
                      float("inf"), float("-inf")] + rand(500, lo=-1e3, hi=1e3).tolist(),
                     dtype=torch.float32)
    save("bf16_cast_x", x)
    save("bf16_cast_y", x.to(torch.bfloat16).float())


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit("usage: export_kernels.py OUTDIR")
    OUT = os.path.join(sys.argv[1], "kernels")
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    export_conv()
    export_bn()
    export_pool()
    export_adaptive()
    export_relu()
    export_linear()
    export_cross_entropy()
    export_adam()
    export_layout()
    export_conv_bf16()
    export_linear_bf16()
    export_bf16_cast()
    export_bn_case(*BN_SYNC_CASE)  # last: the cases above keep the random draws they had
    print("export_kernels: wrote %d files to %s" % (len(os.listdir(OUT)), OUT))


if __name__ == "__main__":
    main()
