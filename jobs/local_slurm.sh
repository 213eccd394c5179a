#!/usr/bin/env bash
# A single-node Slurm on this machine, for hpoq's Slurm tests and for trying `srun`/`sbatch` on a laptop.
#
#   bash jobs/local_slurm.sh up      # install (apt, as root) if missing, configure, start; returns once idle
#   bash jobs/local_slurm.sh down    # stop exactly the daemons `up` started (by pid)
#   bash jobs/local_slurm.sh status  # exit 0 when the local Slurm answers and its node is usable
#
# What `up` does (measured on Debian 12, slurm-wlm 22.05: about 12 s to install, about 1 s to start):
#  - Debian's slurm-wlm and munge via apt-get when missing (root only; otherwise it prints the command);
#  - a munge key (1024 random bytes, owner munge, mode 400) when /etc/munge/munge.key is missing, and
#    munged unless one already answers;
#  - a one-node slurm.conf in $HPOQ_SLURM_DIR (default /tmp/hpoq-slurm): no cgroups, no systemd, no
#    accounting (proctrack/linuxproc, task/none), SlurmUser=root, MpiDefault=pmi2 (the PyPI mpich wheel
#    speaks PMI2), partition `cpu` with CPUs=$HPOQ_SLURM_CPUS (default 8) declared whatever the machine has
#    (SlurmdParameters=config_overrides), so 4-5 mostly-polling MPI ranks fit on 2 cores, and RealMemory=
#    the machine's MemTotal (HPOQ_SLURM_MEM_MB), so `--mem` requests up to it are accepted (memory is not
#    a consumable resource: CR_CPU);
#  - /etc/slurm/slurm.conf -> that file when /etc/slurm/slurm.conf is absent, so plain `srun` finds it
#    (otherwise export SLURM_CONF=$HPOQ_SLURM_DIR/slurm.conf, as `up` prints);
#  - slurmctld -D and slurmd -D in the background; their pids go to $HPOQ_SLURM_DIR/pids/.
# Idempotent: a second `up` with the daemons alive only waits for the node. Needs root to start daemons
# (slurmd launches job steps as the submitting user).
set -euo pipefail

DIR=${HPOQ_SLURM_DIR:-/tmp/hpoq-slurm}
CONF=$DIR/slurm.conf
PIDS=$DIR/pids
NODE=${HPOQ_SLURM_NODE:-hpoq-node}
CPUS=${HPOQ_SLURM_CPUS:-8}
# the node's memory as Slurm sees it, MiB: the machine's (a declared RealMemory=1 makes `srun --mem=1G` fail)
MEM_MB=${HPOQ_SLURM_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)}
CTLD_PORT=${HPOQ_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${HPOQ_SLURM_SLURMD_PORT:-6818}
PACKAGES="slurm-wlm munge"
MARK="# written by hpoq jobs/local_slurm.sh"
ETC_CONF=/etc/slurm/slurm.conf

say() { echo "local_slurm: $*"; }
die() { echo "local_slurm: error: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }
# the daemon `up` started is alive: its pid file, that pid running, and still that program (pids get reused)
alive() {
  local pid
  pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

install_packages() {
  local missing=()
  for exe in slurmctld slurmd sinfo srun munged; do
    command -v "$exe" >/dev/null 2>&1 || [ -x "/usr/sbin/$exe" ] || missing+=("$exe")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
    die "missing ${missing[*]}; install them with: sudo apt-get install -y $PACKAGES" \
        "(Debian/Ubuntu; the 'slurm' and 'munge' packages elsewhere)"
  fi
  say "installing $PACKAGES with apt-get (about 15 s)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >"$DIR/apt.log" 2>&1 || {
    say "apt-get install failed; retrying after apt-get update"
    apt-get update -qq >>"$DIR/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >>"$DIR/apt.log" 2>&1 \
      || die "apt-get install $PACKAGES failed; see $DIR/apt.log"
  }
}

munge_answers() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if munge_answers; then return 0; fi
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    head -c 1024 /dev/urandom >/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge_answers && break; sleep 0.1; done
  munge_answers || die "munged did not start; see /var/log/munge/munged.log"
  cp /run/munge/munged.pid "$PIDS/munged.pid"
}

write_conf() {
  local host
  host=$(uname -n); host=${host%%.*}
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat >"$CONF.new" <<EOF
$MARK; 'bash jobs/local_slurm.sh down' stops it
ClusterName=hpoq-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmi2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
# job ids must not repeat across restarts (slurmctld -c starts from FirstJobId): MPICH names its shared-memory
# segment after the PMI job id (mpich_shm_<hash of "JOB.STEP">), and a segment left in /dev/shm by an aborted
# step of an earlier incarnation with the same id makes MPI_Init of the new step hang
FirstJobId=$(( ($(date +%s) % 600000) * 100 + 1 ))
KillWait=10
MinJobAge=600
InactiveLimit=0
NodeName=$NODE NodeHostname=$(uname -n) NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.new" "$CONF"
  if is_root && { [ ! -e "$ETC_CONF" ] || [ "$(readlink "$ETC_CONF" 2>/dev/null)" = "$CONF" ]; }; then
    mkdir -p /etc/slurm
    ln -sfn "$CONF" "$ETC_CONF"
  fi
}

start_daemon() {  # name, command...
  local name=$1; shift
  alive "$name" && return 0
  setsid "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

node_state() { { SLURM_CONF=$CONF sinfo -h -n "$NODE" -o %T 2>/dev/null || true; } | head -n 1; }

wait_idle() {
  local state=""
  for _ in $(seq 300); do
    state=$(node_state)
    case "$state" in
      idle|mixed|allocated|completing) return 0 ;;
      down*|drain*) SLURM_CONF=$CONF scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    for name in slurmctld slurmd; do
      [ -f "$PIDS/$name.pid" ] && ! alive "$name" && die "$name exited; see $DIR/log/$name.log and $DIR/log/$name.out"
    done
    sleep 0.1
  done
  die "node $NODE not idle after 30 s (state '${state:-no answer}'); see $DIR/log/"
}

up() {
  mkdir -p "$DIR" "$PIDS"
  install_packages
  is_root || die "starting slurmctld/slurmd needs root (slurmd runs steps as their users): sudo bash $0 up"
  start_munge
  alive slurmctld || write_conf
  start_daemon slurmctld slurmctld -D -c -f "$CONF"
  start_daemon slurmd slurmd -D -f "$CONF" -N "$NODE"
  wait_idle
  say "node $NODE idle ($CPUS CPUs, $MEM_MB MiB, partition cpu, MpiDefault=pmi2); config $CONF"
  [ "$(readlink "$ETC_CONF" 2>/dev/null)" = "$CONF" ] || say "clients need: export SLURM_CONF=$CONF"
}

stop_pid() {  # name: stop the daemon `up` started, only if that pid is still that program
  local name=$1 pid
  [ -f "$PIDS/$name.pid" ] || return 0
  pid=$(cat "$PIDS/$name.pid")
  if alive "$name"; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    say "stopped $name (pid $pid)"
  fi
  rm -f "$PIDS/$name.pid"
}

down() {
  [ -d "$PIDS" ] || { say "nothing started from $DIR"; return 0; }
  stop_pid slurmd
  stop_pid slurmctld
  stop_pid munged
  [ "$(readlink "$ETC_CONF" 2>/dev/null)" = "$CONF" ] && rm -f "$ETC_CONF"
  rm -rf "$DIR/state" "$DIR/spool"
  return 0
}

status() {
  local state
  state=$(node_state)
  say "node $NODE: ${state:-no answer} (config $CONF)"
  case "$state" in idle|mixed|allocated|completing) return 0 ;; *) return 1 ;; esac
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: bash $0 up|down|status" >&2; exit 2 ;;
esac
