#!/usr/bin/env bash
# make bench: every part of tests/bench/*.sh, each printing ours against PyTorch side by side.
set -uo pipefail
cd "$(dirname "$0")/../.."
status=0
for part in tests/bench/*.sh; do
  [ "$part" = tests/bench/run.sh ] && continue
  echo "== $part"
  bash "$part" || status=1
done
exit $status
