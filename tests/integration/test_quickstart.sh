#!/usr/bin/env bash
# The README's CPU quick start, as written, in a fresh clone of this checkout's HEAD: its
# commands are taken from the README itself (the sh block after "**CPU, one machine.**"), so
# the test breaks when they do. The only change: as root, mpirun gets the two flags the README
# says root needs (--allow-run-as-root --oversubscribe).
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
finish
