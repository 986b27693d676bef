#!/usr/bin/env bash
# The tlsweep command line: subcommands, the seed's model analysis, bad flags.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
tlsweep=bin/tlsweep

models=$($tlsweep models)
check "models prints vgg16_bn's 134,686,886 parameters" grep -qE '^vgg16_bn +134,686,886 +417,894 ' <<<"$models"
check "models prints resnet50's 23,717,030 parameters" grep -qE '^resnet50 +23,717,030 +208,998 ' <<<"$models"
check "models prints resnet152's 58,352,806 parameters" grep -qE '^resnet152 +58,352,806 ' <<<"$models"
check "models lists all nine backbones" test "$(grep -cE '^(resnet|vgg)' <<<"$models")" -eq 9
check "models --groups shows the exponential-decay walk" \
  bash -c "$tlsweep models --backbone resnet50 --groups | grep -A7 '^resnet50' | awk '{print \$3}' | tr '\n' ' ' | grep -q 'fc layer4 layer3 layer2 layer1 bn1 conv1'"
check "models --tensors names torchvision's tensors" \
  bash -c "$tlsweep models --backbone vgg16_bn --tensors | grep -qE 'classifier.6.weight +\(102, 4096\)'"
check "help lists models" bash -c "$tlsweep --help | grep -q models"

# tlsweep train on one grid point of a sweep file
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
synth=$($tlsweep synth-flowers "$work/splits" --classes 2 --per-class 16 --trnid 3 --valid 0 \
  --width 32 --height 32)
check "synth-flowers takes --trnid and --valid (${synth##*: })" \
  grep -q 'trnid 6, valid 0, tstid 26$' <<<"$synth"
$tlsweep synth-flowers "$work/data" --classes 4 --per-class 12 --width 48 --height 44 >/dev/null
sed "s#root: data/smoke#root: $work/data#" sweeps/smoke.yaml >"$work/smoke.yaml"
check "train --sweep --trial runs that grid point" \
  bash -c "$tlsweep train --sweep $work/smoke.yaml --trial resnet18__linear-decay --out $work/t --threads 1 | grep -q '^resnet18__linear-decay: .* best weights in $work/t/best.safetensors'"
check "train --sweep --trial wrote the best checkpoint" test -s "$work/t/best.safetensors"
expect_fail "train --trial that the sweep lacks" 2 "has no trial 'nope'; its trials: resnet18__linear-decay" \
  $tlsweep train --sweep "$work/smoke.yaml" --trial nope
expect_fail "train without data" 2 "--backbone and --data are required" $tlsweep train --backbone resnet18
expect_fail "train with a missing dataset" 2 "none/imagelabels.mat: missing or unreadable" $tlsweep train --backbone resnet18 --data "$work/none" --weights none --out "$work/x"
# bf16 mixed precision: trains where the CPU has AVX512-BF16, refused (exit 2) where it has not
# (ONEDNN_MAX_CPU_ISA hides the instructions from oneDNN, as an older CPU would)
small="--backbone resnet18 --data $work/data --weights none --width 8 --resize 40 --crop 32 --batch-size 8 --fe-epochs 1 --ft-epochs 1 --threads 1 --device cpu"
if grep -q avx512_bf16 /proc/cpuinfo; then
  check "train --precision bf16 trains on this CPU" \
    bash -c "$tlsweep train $small --precision bf16 --out $work/bf16 | grep -q 'best weights in $work/bf16/best.safetensors'"
fi
expect_fail "train --precision bf16 without AVX512-BF16" 2 "no AVX512-BF16 instructions .* slower than fp32; use fp32" \
  env ONEDNN_MAX_CPU_ISA=AVX512_CORE $tlsweep train $small --precision bf16 --out "$work/bf16-old-cpu"

expect_fail "unknown command" 2 "unknown command 'frobnicate'" $tlsweep frobnicate
expect_fail "unknown backbone" 2 "unknown backbone 'resnet51'" $tlsweep models --backbone resnet51
expect_fail "non-numeric width" 2 "--width expects an integer in 1..4096, got 'x'" $tlsweep models --width x
expect_fail "impossible width" 2 "--width expects an integer in 1..4096, got '0'" $tlsweep models --width 0
expect_fail "image too small for the network" 2 "vgg11_bn: image size 16 is too small" $tlsweep models --backbone vgg11_bn --image-size 16
expect_fail "fractional batch size" 2 "tlsweep train: --batch-size expects an integer in 1..65536, got '1.5'" $tlsweep train --backbone resnet18 --data x --batch-size 1.5
expect_fail "unknown flag" 2 "unrecognized option" $tlsweep models --bogus
finish
