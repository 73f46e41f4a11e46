#!/usr/bin/env bash
# Bring up a real one-node Slurm (slurmctld + slurmd + munge) on this machine, for CI and for
# tests/test_slurm.py. Recipe: Debian 12 slurm-wlm 22.05 + munge, no slurmdbd, no systemd.
#
# - idempotent: installs slurm-wlm + munge with apt only when sbatch/munged are missing, reuses
#   daemons that are already up, and never overwrites a slurm.conf it did not write itself
#   (set ADLOC_SLURM_FORCE=1 to overwrite anyway);
# - one node called `localhost` (the hostname of CI machines is not stable), CPUs=$(nproc),
#   RealMemory = MemTotal minus a margin, one fake GPU (gres gpu:1 on /dev/null) so that
#   `--gpus=1` jobs are scheduled and see CUDA_VISIBLE_DEVICES=0;
# - pid files of the daemons it started are listed in $ADLOC_SLURM_STATE/started (default
#   /run/adloc-slurm); .ci/slurm_down.sh stops exactly those.
#
# Exit status: 0 when `sinfo` shows the node idle; non-zero with a message on stderr otherwise.
set -euo pipefail

STATE_DIR="${ADLOC_SLURM_STATE:-/run/adloc-slurm}"
WAIT_S="${ADLOC_SLURM_WAIT_S:-60}"
MARKER="# written by adloc .ci/slurm_up.sh"
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
CTLD_PID=/run/slurm/slurmctld.pid
SLURMD_PID=/run/slurm/slurmd.pid
MUNGE_PID=/run/munge/munged.pid

die() { echo "slurm_up: ERROR: $*" >&2; exit 1; }
log() { echo "slurm_up: $*" >&2; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages and starts daemons)"

# ---- install ----------------------------------------------------------------------------------
if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null \
   || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || die "sbatch/slurmd/munged missing and apt-get unavailable"
  log "installing slurm-wlm and munge with apt"
  t0=$(date +%s)
  apt-get update -qq >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
  log "installed in $(( $(date +%s) - t0 )) s"
fi
for c in sbatch squeue sinfo slurmctld slurmd munged; do
  command -v "$c" >/dev/null || die "$c not found after install"
done

# ---- directories and munge key ----------------------------------------------------------------
mkdir -p /run/munge /var/lib/munge /var/log/munge /var/spool/slurmctld /var/spool/slurmd \
         /var/log/slurm /run/slurm /etc/slurm "$STATE_DIR"
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /run/slurm
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create >/dev/null 2>&1 || die "mungekey --create failed"
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi

# ---- configuration ----------------------------------------------------------------------------
if alive "$CTLD_PID" && alive "$SLURMD_PID" && sinfo -h -o %t 2>/dev/null | grep -qx idle; then
  log "Slurm already up and idle; nothing to do"
  exit 0
fi

if [ -e "$CONF" ] && ! head -n1 "$CONF" | grep -qxF "$MARKER" && [ "${ADLOC_SLURM_FORCE:-0}" != 1 ]; then
  die "$CONF exists and was not written by this script; refusing to overwrite (ADLOC_SLURM_FORCE=1 to force)"
fi

# getconf, not nproc: nproc honours OMP_NUM_THREADS, which a test process may have set to 1,
# and a 1-CPU node can never start a 2-thread job (squeue: PartitionConfig)
ncpu=$(getconf _NPROCESSORS_ONLN)
mem_mib=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
margin=$(( mem_mib / 20 )); [ "$margin" -lt 512 ] && margin=512
real_mem=$(( mem_mib - margin ))
[ "$real_mem" -gt 256 ] || die "too little memory for a Slurm node (MemTotal ${mem_mib} MiB)"

cat >"$CONF" <<EOF
$MARKER
ClusterName=testcluster
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
MpiDefault=none
MailProg=/bin/true
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$real_mem Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
printf '%s\nNodeName=localhost Name=gpu File=/dev/null Count=1\n' "$MARKER" >"$GRES"

# ---- start ------------------------------------------------------------------------------------
started="$STATE_DIR/started"
touch "$started"
record() { grep -qxF "$1" "$started" || echo "$1" >>"$started"; }

if alive "$MUNGE_PID"; then
  log "munged already running (pid $(cat "$MUNGE_PID"))"
else
  runuser -u munge -- /usr/sbin/munged --force || die "munged failed to start (see /var/log/munge/munged.log)"
  record "$MUNGE_PID"
fi
# stale daemons of an earlier, half-failed start: stop them before starting fresh ones
for p in "$SLURMD_PID" "$CTLD_PID"; do
  if alive "$p"; then kill "$(cat "$p")" 2>/dev/null || true; sleep 1; fi
done
slurmctld -c || die "slurmctld failed to start (see /var/log/slurm/slurmctld.log)"
record "$CTLD_PID"
slurmd -N localhost || die "slurmd failed to start (see /var/log/slurm/slurmd.log)"
record "$SLURMD_PID"

# ---- wait for an idle node --------------------------------------------------------------------
t0=$(date +%s)
state=""
while :; do
  state=$(sinfo -h -o %t 2>/dev/null | head -n1 || true)
  [ "$state" = idle ] && break
  if [ $(( $(date +%s) - t0 )) -ge "$WAIT_S" ]; then
    sinfo -R >&2 2>/dev/null || true
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 2>/dev/null || true
    die "node not idle after ${WAIT_S} s (state: '${state:-no answer}'); logs in /var/log/slurm"
  fi
  sleep 1
done
log "up: node localhost idle, CPUs=$ncpu RealMemory=${real_mem}MiB gpu:1 (pid files in $started)"
