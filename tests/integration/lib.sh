# Shared by the integration scripts: named checks, a tally, and the closing line.
passed=0
failed=0
skipped=0

# skip COUNT REASON: COUNT checks that cannot run here; they count in the closing line (and
# tests/run.sh fails on them under CI=true).
skip() {
  echo "skip $1 check(s): $2"
  skipped=$((skipped + $1))
}

# check NAME COMMAND...: runs COMMAND, counts it as passed when it exits 0.
check() {
  local name=$1
  shift
  if "$@"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
  fi
}

# quiet COMMAND...: COMMAND with its standard output dropped (for checks of the exit status).
quiet() { "$@" >/dev/null; }

# expect_fail NAME STATUS PATTERN COMMAND...: COMMAND must exit with STATUS and print PATTERN
# (grep -E) on stderr.
expect_fail() {
  local name=$1 status=$2 pattern=$3 out rc
  shift 3
  out=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq "$status" ] && grep -qE -- "$pattern" <<<"$out"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name: exit $rc (want $status), stderr: $out"
    failed=$((failed + 1))
  fi
}

# setup_run_env: what the `tlsweep run` scripts share: $tlsweep, $py, $mpirun and a fresh
# scratch directory $tmp (each script decides when to remove it).
setup_run_env() {
  tlsweep=${TLSWEEP:-bin/tlsweep}
  py=${PYTHON:-/usr/bin/python3}
  mpirun="mpirun --allow-run-as-root --oversubscribe"
  export TERM=dumb
  tmp=$(mktemp -d)
}

# stopped_cleanly LOG: the root's log says the graceful stop ran to the closed results file
# ("stopped in ... to results closed"), not the heartbeat-timeout path, which also says
# "rerun ... to resume".
stopped_cleanly() {
  grep -qE '^tlsweep run: stopped in [0-9.]+ s \((signal|time limit) to results closed\)' "$1" &&
    grep -q 'rerun the same command to resume' "$1" && ! grep -q 'heartbeat timeout' "$1"
}

finish() {
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
}

# rank_pid MPIRUN_PID RANK: the pid of that rank of the job mpirun started
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && echo "$p" && return
  done
}

# kill_job PID: kill -9 a background job and every process it started (mpirun and its ranks),
# then reap it so that `kill -0 PID` sees it gone.
kill_job() {
  local pids=$1 next=$1 p
  while [ -n "$next" ]; do
    local children=""
    for p in $next; do children="$children $(pgrep -P "$p")"; done
    next=$(echo $children)
    pids="$pids $next"
  done
  kill -9 $pids 2>/dev/null
  wait "$1" 2>/dev/null
}
