#!/usr/bin/env bash
# Stop the daemons that .ci/slurm_up.sh started, by the pid files it listed in
# $ADLOC_SLURM_STATE/started (default /run/adloc-slurm). Daemons it did not start are left alone.
# Exit status: 0 when every listed daemon is gone (or none was listed); non-zero otherwise.
set -euo pipefail

STATE_DIR="${ADLOC_SLURM_STATE:-/run/adloc-slurm}"
started="$STATE_DIR/started"

die() { echo "slurm_down: ERROR: $*" >&2; exit 1; }
log() { echo "slurm_down: $*" >&2; }

if [ ! -s "$started" ]; then
  log "nothing to stop (no $started)"
  exit 0
fi

# slurmd first, then slurmctld, munged last: reverse order of start
mapfile -t pidfiles < <(tac "$started")
failed=()
for pf in "${pidfiles[@]}"; do
  [ -n "$pf" ] || continue
  if [ ! -s "$pf" ]; then log "$pf missing: daemon already gone"; continue; fi
  pid=$(cat "$pf")
  if ! kill -0 "$pid" 2>/dev/null; then log "pid $pid ($pf) not running"; continue; fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ($pf) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  if kill -0 "$pid" 2>/dev/null; then failed+=("$pid ($pf)"); else log "stopped pid $pid ($pf)"; fi
done

[ "${#failed[@]}" -eq 0 ] || die "could not stop: ${failed[*]}"
rm -f "$started"
