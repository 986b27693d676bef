# shellcheck shell=bash
# A throwaway one-node Slurm cluster for the tests (sourced by test_slurm.sh): munged, slurmctld
# and slurmd run as root from a private directory with their own key, sockets, ports, state and
# logs, so they touch nothing of a system Slurm or MUNGE. Every daemon is stopped by its pid.
#
#   slurm_cluster_start DIR   writes DIR/slurm.conf, starts the daemons, waits for the node to be
#                             idle, exports SLURM_CONF; 0 ok, 1 with one line saying what failed
#   slurm_cluster_stop        stops what slurm_cluster_start started (by pid), idempotent
#
# What the daemons need in a container without systemd or cgroups: proctrack/linuxproc and
# task/none (no cgroup plugins), jobacct_gather/none, no accounting storage, a RealMemory below
# what the machine has, SlurmdParameters=config_overrides (the node declares at least 4 CPUs),
# the node's own short host name, and AuthInfo pointing at our munged's socket; cred_expire is
# short because a requeued job waits that long before it starts again.

slurm_cluster_pids=()

# slurm_free_port BASE: the first TCP port from BASE that nothing listens on.
slurm_free_port() {
  local port=$1
  while ss -Htln "sport = :$port" 2>/dev/null | grep -q . ||
    ss -Htln "sport = :$((port + 1))" 2>/dev/null | grep -q .; do
    port=$((port + 2))
  done
  echo "$port"
}

# slurm_wait_pidfile FILE SECONDS: the daemon wrote its pid file.
slurm_wait_pidfile() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

slurm_cluster_start() {
  local dir=$1 host cpus port
  host=$(hostname -s)
  # at least 4 CPUs, so a 3-rank job and a few array tasks fit on a 2-core machine
  cpus=$(nproc)
  [ "$cpus" -ge 4 ] || cpus=4
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/log"
  chmod 0700 "$dir" "$dir/munge"
  # MUNGE: a fresh key readable by its owner only (munged refuses anything looser)
  if ! dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none ||
    ! chmod 0400 "$dir/munge/munge.key"; then
    echo "slurm cluster: cannot write the MUNGE key $dir/munge/munge.key"
    return 1
  fi
  # --force: munged warns about running as root and about /tmp above the socket directory
  if ! munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" 2>"$dir/log/munged.stderr"; then
    echo "slurm cluster: munged did not start: $(cat "$dir/log/munged.stderr") (log $dir/log/munged.log)"
    return 1
  fi
  if ! slurm_wait_pidfile "$dir/munge/munged.pid" 10; then
    echo "slurm cluster: munged wrote no pid file; see $dir/log/munged.log"
    return 1
  fi
  slurm_cluster_pids+=("$(cat "$dir/munge/munged.pid")")
  # unusual ports, so a system Slurm on 6817/6818 (or another test run) does not collide
  port=$(slurm_free_port $((26817 + ($$ % 500) * 2)))
  cat >"$dir/slurm.conf" <<EOF
# one-node test cluster written by tests/integration/slurm_cluster.sh
ClusterName=tlsweeptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
# the node may declare more CPUs than it has (see above) without being drained as invalid
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MinJobAge=600
KillWait=10
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=512 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  export SLURM_CONF=$dir/slurm.conf
  # -i: ignore state a previous cluster might have left; the daemons fork and write pid files
  if ! slurmctld -i -f "$SLURM_CONF" 2>"$dir/log/slurmctld.stderr" ||
    ! slurm_wait_pidfile "$dir/slurmctld.pid" 20; then
    echo "slurm cluster: slurmctld did not start: $(cat "$dir/log/slurmctld.stderr"); see $dir/log/slurmctld.log"
    return 1
  fi
  slurm_cluster_pids+=("$(cat "$dir/slurmctld.pid")")
  if ! slurmd -f "$SLURM_CONF" -N "$host" 2>"$dir/log/slurmd.stderr" ||
    ! slurm_wait_pidfile "$dir/slurmd.pid" 20; then
    echo "slurm cluster: slurmd did not start: $(cat "$dir/log/slurmd.stderr"); see $dir/log/slurmd.log"
    return 1
  fi
  slurm_cluster_pids+=("$(cat "$dir/slurmd.pid")")
  local i state=""
  for ((i = 0; i < 300; i++)); do
    state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null)
    [ "$state" = idle ] && return 0
    sleep 0.1
  done
  echo "slurm cluster: node $host is '${state:-unknown}', not idle, after 30 s; see $dir/log/slurmctld.log and $dir/log/slurmd.log"
  return 1
}

slurm_cluster_stop() {
  local pid i reversed=()
  # slurmd first, munged last: the Slurm daemons still talk to munged while they shut down
  for pid in "${slurm_cluster_pids[@]}"; do reversed=("$pid" "${reversed[@]}"); done
  for pid in "${reversed[@]}"; do
    kill "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
  done
  slurm_cluster_pids=()
}
