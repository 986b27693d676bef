#!/usr/bin/env python3
"""PyTorch references for tests/gpu/test_cuda_ops.c (the CUDA backend's op tests).

Usage: export_cuda_ref.py OUTDIR  -> OUTDIR/cuda/NAME.bin (+ NAME.shape) and OUTDIR/cuda/*.txt

Runs on the CPU in float64 (no GPU needed, so the same references serve CI and the GPU
machine) from float32-representable inputs, and stores float32. Activations are written NHWC,
parameters in PyTorch's layouts. The case lists (*.txt, one case per line) drive the C test,
so cases are added here only. Shapes are ResNet/VGG-like but small enough to export in
seconds on two cores.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tensor_file import nhwc, write  # noqa: E402

OUT = None
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def save(name, t, dtype=torch.float32):
    write(os.path.join(OUT, name), t, dtype)


def manifest(name, rows):
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        for row in rows:
            f.write(" ".join(str(int(v)) if isinstance(v, bool) else str(v) for v in row) + "\n")


def rand(*shape, lo=-1.0, hi=1.0):
    """Uniform in [lo, hi), rounded to float32 so the C side reads exactly these values."""
    return (torch.rand(*shape, dtype=torch.float64) * (hi - lo) + lo).float().double()


# name, n, c_in, h, w, c_out, k, stride, pad, dilation, groups, bias
CONV_CASES = [
    ("conv_7x7_s2_stem", 2, 3, 56, 56, 64, 7, 2, 3, 1, 1, False),
    ("conv_3x3_s1_64", 2, 64, 28, 28, 64, 3, 1, 1, 1, 1, False),
    ("conv_3x3_s2_128", 2, 64, 28, 28, 128, 3, 2, 1, 1, 1, False),
    ("conv_1x1_s2_down", 2, 64, 28, 28, 128, 1, 2, 0, 1, 1, False),
    ("conv_1x1_s1_bottleneck", 2, 128, 14, 14, 32, 1, 1, 0, 1, 1, False),
    ("conv_vgg_3x3_bias", 2, 32, 16, 16, 64, 3, 1, 1, 1, 1, True),
    ("conv_groups2_bias", 2, 16, 10, 10, 32, 3, 1, 1, 1, 2, True),
    ("conv_odd_13x11_s2", 3, 5, 13, 11, 7, 3, 2, 1, 1, 1, True),
    ("conv_dilated", 2, 8, 12, 12, 8, 3, 1, 2, 2, 1, False),
]


def export_conv(bf16=False):
    """Every conv case: inputs, weights, outputs and gradients. bf16: the operands a bf16 plan
    sees (inputs and output gradients bf16 values, weights and bias the fp32 masters rounded to
    bf16), with exact (float64) products: the C test allows 1e-2 of the largest value for the
    bf16 rounding of the outputs (2^-9 each) and of cuDNN's weight gradient, and fp32 sums."""
    act, operand, suffix = (bf16_exact, as_bf16, "_bf16") if bf16 else (rand, lambda t: t, "")
    for name, n, ci, h, w, co, k, s, p, d, g, bias in CONV_CASES:
        name += suffix
        x = act(n, ci, h, w).requires_grad_()
        wt = rand(co, ci // g, k, k, lo=-0.5, hi=0.5)
        wr = operand(wt).requires_grad_()
        b = rand(co) if bias else None
        br = operand(b).requires_grad_() if bias else None
        y = F.conv2d(x, wr, br, stride=s, padding=p, dilation=d, groups=g)
        dy = act(*y.shape)
        y.backward(dy)
        for part, t in (("x", nhwc(x)), ("w", wt), ("y", nhwc(y)), ("dy", nhwc(dy)),
                        ("dx", nhwc(x.grad)), ("dw", wr.grad)):
            save(name + "_" + part, t)
        if bias:
            save(name + "_b", b)
            save(name + "_db", br.grad)
    manifest("conv" + suffix, [(row[0] + suffix,) + tuple(row[1:]) for row in CONV_CASES])


def random_bn(c, momentum):
    """A float64 BatchNorm2d with random affine parameters and running statistics."""
    bn = torch.nn.BatchNorm2d(c, eps=1e-5, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(rand(c, lo=0.5, hi=1.5))
        bn.bias.copy_(rand(c))
        bn.running_mean.copy_(rand(c))
        bn.running_var.copy_(rand(c, lo=0.5, hi=2.0))
    return bn


# name, n, c, h, w, momentum
BN_CASES = [("bn_c6", 4, 6, 5, 5, 0.1), ("bn_c64_resnet", 4, 64, 14, 14, 0.1),
            ("bn_c256_m03", 2, 256, 7, 7, 0.3)]


def export_bn():
    for name, n, c, h, w, momentum in BN_CASES:
        x = (rand(n, c, h, w) * 2 + 0.5).requires_grad_()
        bn = random_bn(c, momentum)
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
        save(name + "_rvar1", bn.running_var)  # PyTorch: unbiased batch variance
        save(name + "_dy", nhwc(dy))
        save(name + "_dx", nhwc(x.grad))
        save(name + "_dgamma", bn.weight.grad)
        save(name + "_dbeta", bn.bias.grad)
        bn.eval()
        with torch.no_grad():
            save(name + "_y_infer", nhwc(bn(x)))
    manifest("bn", BN_CASES)


# name, c, h, w, momentum, mean offset, shard sizes (their sum is the batch's n)
SYNC_BN_CASES = [("sync_bn_c5", 5, 3, 4, 0.1, 0.5, (3, 2, 3)),
                 ("sync_bn_c64", 64, 8, 8, 0.3, 20.0, (4, 4))]


def export_sync_bn():
    """One BatchNorm2d training step over the whole batch: the C test runs it shard by shard
    with the synchronized calls and must match. The offset puts the mean far from 0 against
    the spread, where statistics from sums of squares would lose digits."""
    for name, c, h, w, momentum, offset, shards in SYNC_BN_CASES:
        x = (rand(sum(shards), c, h, w) + offset).requires_grad_()
        bn = random_bn(c, momentum)
        save(name + "_gamma", bn.weight)
        save(name + "_beta", bn.bias)
        save(name + "_rmean0", bn.running_mean)
        save(name + "_rvar0", bn.running_var)
        bn.train()
        y = bn(x)
        dy = rand(*y.shape)
        y.backward(dy)
        for suffix, t in (("x", nhwc(x)), ("y", nhwc(y)), ("dy", nhwc(dy)), ("dx", nhwc(x.grad)),
                          ("save_mean", x.mean(dim=(0, 2, 3))),
                          ("save_var", x.var(dim=(0, 2, 3), unbiased=False)),
                          ("rmean1", bn.running_mean), ("rvar1", bn.running_var),
                          ("dgamma", bn.weight.grad), ("dbeta", bn.bias.grad)):
            save(name + "_" + suffix, t)
    manifest("sync_bn", [(name, c, h, w, m, len(sh)) + tuple(sh)
                         for name, c, h, w, m, _, sh in SYNC_BN_CASES])


# name, max(1)/avg(0), n, c, h, w, k, stride, pad, ceil_mode, count_include_pad
POOL_CASES = [
    ("maxpool_3x3_s2_p1_resnet", 1, 2, 64, 28, 28, 3, 2, 1, False, True),
    ("maxpool_2x2_s2_vgg", 1, 2, 32, 16, 16, 2, 2, 0, False, True),
    ("maxpool_3x3_s2_ceil", 1, 2, 8, 14, 14, 3, 2, 0, True, True),
    ("maxpool_3x3_s2_p1_ceil", 1, 2, 8, 12, 12, 3, 2, 1, True, True),
    ("avgpool_3x3_s2_p1_incl", 0, 2, 8, 13, 13, 3, 2, 1, False, True),
    ("avgpool_3x3_s2_p1_excl", 0, 2, 8, 13, 13, 3, 2, 1, False, False),
    ("avgpool_2x2_s2_ceil_excl", 0, 2, 4, 7, 7, 2, 2, 0, True, False),
    ("avgpool_3x3_s2_p1_ceil_incl", 0, 2, 4, 12, 12, 3, 2, 1, True, True),
]


def export_pool():
    for name, is_max, n, c, h, w, k, s, p, ceil, incl in POOL_CASES:
        x = rand(n, c, h, w).requires_grad_()
        if is_max:
            y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        else:
            y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=incl)
        dy = rand(*y.shape)
        y.backward(dy)
        save(name + "_x", nhwc(x))
        save(name + "_y", nhwc(y))
        save(name + "_dy", nhwc(dy))
        save(name + "_dx", nhwc(x.grad))
    manifest("pool", POOL_CASES)


# name, n, c, h, w, h_out, w_out
ADAPTIVE_CASES = [("adaptive_7_to_1", 4, 512, 7, 7, 1, 1), ("adaptive_14_to_7", 2, 16, 14, 14, 7, 7),
                  ("adaptive_3_to_7", 2, 5, 3, 3, 7, 7), ("adaptive_13x10_to_5x3", 2, 6, 13, 10, 5, 3)]


def export_adaptive():
    for name, n, c, h, w, ho, wo in ADAPTIVE_CASES:
        x = rand(n, c, h, w).requires_grad_()
        y = F.adaptive_avg_pool2d(x, (ho, wo))
        dy = rand(*y.shape)
        y.backward(dy)
        save(name + "_x", nhwc(x))
        save(name + "_y", nhwc(y))
        save(name + "_dy", nhwc(dy))
        save(name + "_dx", nhwc(x.grad))
    manifest("adaptive", ADAPTIVE_CASES)


# name, n, in, out, bias
LINEAR_CASES = [("linear_resnet_fc", 8, 512, 102, True), ("linear_nobias", 3, 33, 5, False),
                ("linear_vgg_hidden", 4, 1024, 256, True)]


def export_linear(bf16=False):
    """Every linear case, as export_conv (bf16: the operands a bf16 plan sees)."""
    act, operand, suffix = (bf16_exact, as_bf16, "_bf16") if bf16 else (rand, lambda t: t, "")
    for name, n, fin, fout, bias in LINEAR_CASES:
        name += suffix
        x = act(n, fin).requires_grad_()
        wt = rand(fout, fin, lo=-0.1, hi=0.1)
        wr = operand(wt).requires_grad_()
        b = rand(fout) if bias else None
        br = operand(b).requires_grad_() if bias else None
        y = F.linear(x, wr, br)
        dy = act(n, fout)
        y.backward(dy)
        for part, t in (("x", x), ("w", wt), ("y", y), ("dy", dy), ("dx", x.grad),
                        ("dw", wr.grad)):
            save(name + "_" + part, t)
        if bias:
            save(name + "_b", b)
            save(name + "_db", br.grad)
    manifest("linear" + suffix, [(row[0] + suffix,) + tuple(row[1:]) for row in LINEAR_CASES])


def export_relu():
    x = rand(100003)
    x[:7] = 0.0  # relu'(0) = 0 in PyTorch
    x.requires_grad_()
    y = F.relu(x)
    dy = rand(100003)
    y.backward(dy)
    save("relu_x", x)
    save("relu_y", y)
    save("relu_dy", dy)
    save("relu_dx", x.grad)


def export_cross_entropy():
    for name, n, c in (("ce_small", 8, 10), ("ce_flowers", 64, 102)):
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
        logits = logits.float().double().requires_grad_()
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        correct = (logits.argmax(dim=1) == labels).sum()
        save(name + "_logits", logits)
        save(name + "_labels", labels, torch.int32)
        save(name + "_loss", loss.reshape(1))
        save(name + "_dlogits", logits.grad)
        save(name + "_correct", correct.reshape(1), torch.int32)
    manifest("ce", [("ce_small", 8, 10), ("ce_flowers", 64, 102)])


def export_adam():
    # float32 like the kernel, so the comparison sees only operation-order rounding; a big
    # tensor spans many blocks, small ones (BN-like) share the launch
    sizes, lrs, wd = (50, 30, 70001, 64, 1), (1e-3, 1e-2, 1e-4, 3e-3, 0.1), 1e-4
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
    manifest("adam", [(s, lr) for s, lr in zip(sizes, lrs)])


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def export_dropout():
    """The mask rule of kernels/dropout_mask.h, written again here from its definition, so
    the test checks the kernel bit for bit against an independent implementation."""
    count, p, seed, offset = 20011, 0.3, 12345, 1 << 33
    # (uint64_t)((double)p * 2^24) with p the float32 the C side holds
    threshold = int(float(torch.tensor(p, dtype=torch.float32)) * 16777216.0)
    key = mix64(seed ^ GOLDEN)
    keep = [mix64((key + ((offset + i) * GOLDEN & MASK64)) & MASK64) >> 40 >= threshold
            for i in range(count)]
    mask = torch.tensor(keep, dtype=torch.int32)
    x = rand(count)
    scale = 1.0 / (1.0 - float(torch.tensor(p, dtype=torch.float32)))
    save("dropout_x", x)
    save("dropout_mask", mask, torch.int32)
    save("dropout_y", x * mask.double() * scale)
    manifest("dropout", [(count, p, seed, offset)])


def export_layout():
    for name, shape in (("layout_small", (2, 3, 4, 5)), ("layout_resnet", (4, 64, 7, 7))):
        x = rand(*shape)
        save(name + "_nchw", x)
        save(name + "_nhwc", nhwc(x))
    manifest("layout", [("layout_small", 2, 3, 4, 5), ("layout_resnet", 4, 64, 7, 7)])


def bf16_exact(*shape, lo=-1.0, hi=1.0):
    """Random values that bf16 holds exactly (activations and output gradients of bf16 plans:
    the C side casts them to bf16 without rounding)."""
    return rand(*shape, lo=lo, hi=hi).to(torch.bfloat16).double()


def as_bf16(t):
    """fp32 master values as a bf16 op reads them: rounded to nearest even, then float64."""
    return t.to(torch.bfloat16).double()


# bf16 cases: the fp32 cases' shapes computed as torch.autocast(dtype=torch.bfloat16) rounds
def export_bf16_cast():
    """fp32 -> bf16 rounding as PyTorch does it: ties to even, overflow to inf, subnormals."""
    one = 1.0 + 2.0 ** -8  # halfway between 1 and the next bf16: even is 1
    three = 1.0 + 3 * 2.0 ** -8  # halfway again: even is 1 + 2^-6
    x = torch.tensor([0.0, -0.0, 1.0, one, three, -three, 3.0e38, -3.4e38, 1e-40, -1e-39,
                      float("inf"), float("-inf")] + rand(5000, lo=-1e3, hi=1e3).tolist(),
                     dtype=torch.float32)
    save("bf16_cast_x", x)
    save("bf16_cast_y", x.to(torch.bfloat16).float())


def main():
    global OUT
    if len(sys.argv) != 2:
        sys.exit("usage: export_cuda_ref.py OUTDIR")
    OUT = os.path.join(sys.argv[1], "cuda")
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    export_conv()
    export_bn()
    export_sync_bn()
    export_pool()
    export_adaptive()
    export_linear()
    export_relu()
    export_cross_entropy()
    export_adam()
    export_dropout()
    export_layout()
    export_conv(bf16=True)  # after the fp32 cases, which keep the random draws they had
    export_linear(bf16=True)
    export_bf16_cast()
    print("export_cuda_ref: wrote %d files to %s (torch %s)" % (len(os.listdir(OUT)), OUT,
                                                                torch.__version__))


if __name__ == "__main__":
    main()
