#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by tests/cluster/start-slurm.sh.
#
# Stops exactly the daemons named by the pid files in the state directory
# (SLURM_TEST_DIR, default /tmp/deeplinear-slurm), in reverse start order,
# waits for each to exit and removes its pid file. Jobs still queued or
# running on the test cluster are cancelled first (by job id), so that no
# job step outlives slurmd. Nothing is stopped by process name. The state
# directory (database, logs) and /etc/slurm/slurm.conf are kept, so a later
# start-slurm.sh is quick.
set -euo pipefail

STATE=${SLURM_TEST_DIR:-/tmp/deeplinear-slurm}
WAIT=${SLURM_TEST_TIMEOUT:-60}
MARKER="# deeplinear test cluster: written by tests/cluster/start-slurm.sh"
export SLURM_CONF=/etc/slurm/slurm.conf

say() { echo "stop-slurm: $*"; }

if [[ ! -d $STATE ]]; then
    say "nothing to stop ($STATE does not exist)"
    exit 0
fi

# pid_of PIDFILE NAME: print the pid if the file names a running NAME process.
pid_of() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$2" ]] || return 1
    echo "$pid"
}

# running PID: the process exists and is not a zombie.
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Cancel the test cluster's jobs while its controller still runs.
if pid_of "$STATE/run/slurmctld.pid" slurmctld >/dev/null &&
    grep -qxF "$MARKER" "$SLURM_CONF" 2>/dev/null; then
    mapfile -t jobs < <(squeue -h -o %A 2>/dev/null || true)
    if ((${#jobs[@]})); then
        say "cancelling jobs ${jobs[*]}"
        scancel "${jobs[@]}" 2>/dev/null || true
        deadline=$((SECONDS + 20))
        while [[ -n $(squeue -h -t PD,R,CG,S -o %A 2>/dev/null || true) ]] && ((SECONDS < deadline)); do
            sleep 0.5
        done
    fi
fi

stopped=0
for entry in run/slurmd.pid:slurmd run/slurmctld.pid:slurmctld run/slurmdbd.pid:slurmdbd \
    run/mariadbd.pid:mariadbd munge/munged.pid:munged; do
    file=$STATE/${entry%%:*}
    name=${entry##*:}
    if pid=$(pid_of "$file" "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + WAIT))
        while running "$pid" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if running "$pid"; then
            say "$name (pid $pid) ignored SIGTERM for ${WAIT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
        say "stopped $name (pid $pid)"
        stopped=$((stopped + 1))
    fi
    rm -f "$file"
done
rm -f "$STATE/run/mariadbd.sock"

if ((stopped)); then
    say "stopped $stopped daemon(s); state and logs kept in $STATE"
else
    say "nothing was running (state in $STATE)"
fi
