#!/usr/bin/env bash
# Stop what slurm-up.sh started: cancel all jobs, then stop slurmd,
# slurmctld and munged via their pid files. Idempotent.
set -uo pipefail
RUN_DIR=/run/slurm
MUNGE_RUN=/run/munge
log() { printf '[slurm-down] %s\n' "$*" >&2; }
# live, non-zombie (PID 1 here may reap late; kill -0 succeeds on zombies)
alive() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ]; }

stop_pidfile() {  # name pidfile   (name = the process' comm)
  local name=$1 pf=$2 p
  [ -s "$pf" ] || { log "$name: no pid file"; return 0; }
  p=$(cat "$pf")
  if alive "$p" && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$name" ]; then
    log "stopping $name (pid $p)"
    kill -TERM "$p"
    for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
    if alive "$p"; then log "$name: SIGKILL"; kill -KILL "$p"; fi
  else
    log "$name not running"
  fi
  rm -f "$pf"
}

# 1. cancel every job while the controller still answers, wait until gone
if [ -s "$RUN_DIR/slurmctld.pid" ] && alive "$(cat $RUN_DIR/slurmctld.pid)" \
   && command -v squeue >/dev/null; then
  jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 60); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5
    done
  fi
fi

# 2. daemons, node daemon first
stop_pidfile slurmd    "$RUN_DIR/slurmd.pid"
stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"

# 3. job step daemons orphaned by a job that would not die: these were
#    started by our slurmd, end them by pid
for p in $(pgrep -x slurmstepd 2>/dev/null); do
  alive "$p" || continue   # zombies: nothing to kill
  log "killing leftover slurmstepd pid $p"; kill -KILL "$p" 2>/dev/null || true
done

# 4. munge last (slurm daemons need it to shut down cleanly)
stop_pidfile munged "$MUNGE_RUN/munged.pid"
log "SLURM down"
