#!/usr/bin/env bash
# The README's first steps in a fresh clone of this checkout's HEAD: the CPU quick start, as
# written (its commands are taken from the README itself, the sh block after "**CPU, one
# machine.**", so the test breaks when they do; as root, mpirun gets the two flags the README
# says root needs), then `make demo`, which must show transfer learning: the pretrained
# trials far above chance after feature extraction, fine-tuning improving on that, and the
# same network from scratch well below them.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT

commands=$(awk '/^\*\*CPU, one machine\.\*\*/ {found = 1; next}
                found && /^```sh/ {inside = 1; next}
                inside && /^```/ {exit}
                inside {print}' README.md)
check "the README has a CPU quick start with mpirun and status" \
  bash -c "grep -q '^mpirun ' <<<'$commands' && grep -q 'tlsweep status' <<<'$commands'"
[ "$(id -u)" -eq 0 ] && commands=$(sed 's/^mpirun /mpirun --allow-run-as-root --oversubscribe /' <<<"$commands")

check "a fresh clone" git clone -q . "$tmp/clone"
(
  cd "$tmp/clone" || exit 1
  set -e
  while IFS= read -r line; do
    echo "\$ $line"
    bash -c "$line" </dev/null >"$tmp/out.log" 2>&1 || { cat "$tmp/out.log"; exit 1; }
    cat "$tmp/out.log"
  done <<<"$commands"
) >"$tmp/quickstart.log" 2>&1
status=$?
check "every quick-start command exits 0" test $status -eq 0 || cat "$tmp/quickstart.log"
check "plain make built bin/tlsweep" test -x "$tmp/clone/bin/tlsweep"
check "the sweep finished: status shows 4 done" \
  grep -q 'runs/smoke.h5: 4 trials: 4 done' "$tmp/quickstart.log"
(cd "$tmp/clone" && timeout 600 make demo) >"$tmp/demo.log" 2>&1
check "make demo exits 0" test $? -eq 0 || tail -n 30 "$tmp/demo.log"
check "make demo drew the five figures" \
  bash -c "ls '$tmp'/clone/runs/demo-figures/{curves,fe_vs_ft,heatmap,lr,throughput}.png >/dev/null"
check "make demo transfers: phase 1 far above chance, phase 2 better, scratch far below" $py -c "
import h5py, sys
t = h5py.File('$tmp/clone/runs/demo.h5', 'r')['trials'][:]
ok = len(t) == 4
for schedule in (b'linear-decay', b'exp-decay-3'):
    pre = [r for r in t if r['schedule'] == schedule and b'pretrained' in r['name']]
    new = [r for r in t if r['schedule'] == schedule and b'weights=none' in r['name']]
    if len(pre) != 1 or len(new) != 1:
        ok = False
        continue
    fe, best, scratch = pre[0]['val_acc_end_of_feature_extraction'], pre[0]['best_val_acc'], new[0]['best_val_acc']
    print(schedule.decode(), 'pretrained: end of phase 1', fe, 'best', best, '; from scratch: best', scratch)
    ok &= fe >= 0.5 and best > fe and scratch < fe - 0.2  # 10 classes: chance is 0.1
sys.exit(0 if ok else 1)"
finish
