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

expect_fail "unknown command" 2 "unknown command 'frobnicate'" $tlsweep frobnicate
expect_fail "unknown backbone" 2 "unknown backbone 'resnet51'" $tlsweep models --backbone resnet51
expect_fail "non-numeric width" 2 "--width expects a number, got 'x'" $tlsweep models --width x
expect_fail "impossible width" 2 "impossible model settings" $tlsweep models --width 0
expect_fail "unknown flag" 2 "unrecognized option" $tlsweep models --bogus
finish
