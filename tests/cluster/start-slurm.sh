#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine, for testing the Snakemake
# SLURM profile (workflow/profiles/slurm).
#
# Needs root on Debian. Installs Debian's slurm-wlm and munge (and, for job
# accounting so that `sacct` works, slurmdbd and mariadb-server) when absent,
# writes /etc/slurm/slurm.conf (an existing foreign one is backed up once to
# /etc/slurm/slurm.conf.before-deeplinear), and starts the daemons with all
# their state, logs and pid files under the state directory.
#
# Exit codes: 0 cluster up (or already running), 77 cannot run here (skip),
# anything else: a real failure (daemon logs are printed).
#
# Environment:
#   SLURM_TEST_DIR         state directory        [/tmp/deeplinear-slurm]
#   SLURM_TEST_ACCOUNTING  slurmdbd | none        [slurmdbd]
#                          none: no database, `sacct` does not work; run
#                          snakemake with `--slurm-status-command squeue`.
#   SLURM_TEST_DB_PORT     TCP port of the private MariaDB on 127.0.0.1 [3307]
#   SLURM_TEST_TIMEOUT     seconds to wait for each daemon / the node   [60]
#
# Stop everything again with tests/cluster/stop-slurm.sh.
set -euo pipefail

STATE=${SLURM_TEST_DIR:-/tmp/deeplinear-slurm}
ACCOUNTING=${SLURM_TEST_ACCOUNTING:-slurmdbd}
DB_PORT=${SLURM_TEST_DB_PORT:-3307}
TIMEOUT=${SLURM_TEST_TIMEOUT:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MARKER="# deeplinear test cluster: written by tests/cluster/start-slurm.sh"
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
# Talk to exactly the configuration written here, whatever the caller set.
export SLURM_CONF=$CONF

say() { echo "start-slurm: $*"; }
skip() {
    echo "start-slurm: skipped: $*" >&2
    exit 77
}

case $ACCOUNTING in
slurmdbd | none) ;;
*)
    echo "start-slurm: SLURM_TEST_ACCOUNTING must be 'slurmdbd' or 'none', not '$ACCOUNTING'" >&2
    exit 2
    ;;
esac

[[ -f /etc/debian_version ]] || skip "not a Debian system (no /etc/debian_version)"
[[ $(id -u) -eq 0 ]] || skip "must run as root (installs packages, writes $CONF)"
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd -P)

# --- packages ---------------------------------------------------------------
packages=(slurm-wlm munge)
if [[ $ACCOUNTING == slurmdbd ]]; then packages+=(slurmdbd mariadb-server); fi
missing=()
for p in "${packages[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    mkdir -p "$STATE/log"
    say "installing ${missing[*]} (log: $STATE/log/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >"$STATE/log/apt.log" 2>&1; then
        tail -n 5 "$STATE/log/apt.log" >&2 || true
        skip "apt-get could not install ${missing[*]}"
    fi
fi
for c in munged munge unmunge slurmctld slurmd sinfo sbatch setpriv; do
    command -v "$c" >/dev/null || skip "command $c not found after installing packages"
done

# --- helpers ----------------------------------------------------------------
# alive PIDFILE NAME: the pid file names a running (not zombie) process NAME.
alive() {
    local pid stat
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$2" ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}
# wait_for DESCRIPTION COMMAND...: retry COMMAND for up to $TIMEOUT seconds.
wait_for() {
    local what=$1 deadline=$((SECONDS + TIMEOUT))
    shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "start-slurm: timed out after ${TIMEOUT}s waiting for $what" >&2
            return 1
        fi
        sleep 0.5
    done
}
fail() {
    echo "start-slurm: FAILED: $*" >&2
    for f in "$STATE"/log/*.log "$STATE"/munge/munged.log; do
        [[ -f $f && $f != */apt.log ]] || continue
        echo "----- tail of $f" >&2
        tail -n 15 "$f" >&2
    done
    echo "start-slurm: stopping what was started" >&2
    "$HERE/stop-slurm.sh" >&2 || true
    exit 1
}
munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
node_up() {
    local s
    s=$(sinfo -h -N -n localhost -o %T 2>/dev/null) || return 1
    [[ $s =~ ^(idle|mixed|allocated|completing)$ ]]
}
install_conf() { # install_conf SOURCE DEST MODE: back up a foreign DEST once
    if [[ -f $2 ]] && ! grep -qxF "$MARKER" "$2" && [[ ! -e $2.before-deeplinear ]]; then
        cp -p "$2" "$2.before-deeplinear"
        say "backed up the existing $2 to $2.before-deeplinear"
    fi
    install -m "$3" "$1" "$2"
}

# Daemons and their pid files (stop-slurm.sh uses the same list).
PID_MUNGED=$STATE/munge/munged.pid
PID_MARIADB=$STATE/run/mariadbd.pid
PID_SLURMDBD=$STATE/run/slurmdbd.pid
PID_SLURMCTLD=$STATE/run/slurmctld.pid
PID_SLURMD=$STATE/run/slurmd.pid

# --- already running? -------------------------------------------------------
if alive "$PID_SLURMCTLD" slurmctld && alive "$PID_SLURMD" slurmd &&
    { [[ $ACCOUNTING == none ]] || { alive "$PID_SLURMDBD" slurmdbd && alive "$PID_MARIADB" mariadbd; }; } &&
    munge_works && node_up; then
    say "already running (state in $STATE): $(sinfo -h -N -n localhost -o '%N %T %c CPUs %m MB')"
    exit 0
fi

start_time=$SECONDS
mkdir -p "$STATE"/{run,log,state,spool,munge}

# --- configuration ----------------------------------------------------------
cpus=$(nproc)
mem_total_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
margin_mb=$((mem_total_mb / 10 > 1024 ? mem_total_mb / 10 : 1024))
real_mem_mb=$((mem_total_mb - margin_mb))
((real_mem_mb >= 256)) || skip "too little memory (${mem_total_mb} MB)"

if [[ $ACCOUNTING == slurmdbd ]]; then
    accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none"
else
    accounting="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt"
fi

cat >"$STATE/slurm.conf" <<EOF
$MARKER
# State directory: $STATE
ClusterName=deeplinear
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
# No cgroups: plain process tracking, no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
$accounting
SchedulerType=sched/backfill
# Allocate single CPUs and memory, so that several jobs share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
# Finished jobs stay visible to squeue for 5 minutes.
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$PID_SLURMCTLD
SlurmdPidFile=$PID_SLURMD
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$real_mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p /etc/slurm
install_conf "$STATE/slurm.conf" "$CONF" 0644

# --- munge ------------------------------------------------------------------
if munge_works; then
    alive "$PID_MUNGED" munged || say "using the munged already serving the default socket"
else
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0600 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    chown munge:munge "$STATE/munge"
    chmod 0700 "$STATE/munge"
    setpriv --reuid=munge --regid=munge --init-groups \
        munged --pid-file="$PID_MUNGED" --log-file="$STATE/munge/munged.log" \
        --seed-file="$STATE/munge/munged.seed" </dev/null >>"$STATE/log/daemons.log" 2>&1 ||
        fail "munged did not start"
    wait_for "munged" munge_works || fail "munged does not answer"
fi

# --- accounting database and slurmdbd ---------------------------------------
if [[ $ACCOUNTING == slurmdbd ]]; then
    DB_DIR=$STATE/mysql
    DB_SOCK=$STATE/run/mariadbd.sock
    db() { mariadb --no-defaults --socket="$DB_SOCK" -uroot "$@"; }
    if ! alive "$PID_MARIADB" mariadbd; then
        if [[ ! -d $DB_DIR/mysql ]]; then
            rm -rf "$DB_DIR"
            mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR" \
                --auth-root-authentication-method=socket --skip-test-db \
                >"$STATE/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed"
        fi
        rm -f "$PID_MARIADB"
        setsid mariadbd --no-defaults --user=root --datadir="$DB_DIR" \
            --socket="$DB_SOCK" --pid-file="$PID_MARIADB" \
            --bind-address=127.0.0.1 --port="$DB_PORT" \
            --log-error="$STATE/log/mariadbd.log" \
            --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
            </dev/null >>"$STATE/log/daemons.log" 2>&1 &
        wait_for "mariadbd" db -e 'SELECT 1' || fail "mariadbd does not answer"
    fi
    db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
           CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" ||
        fail "could not create the database user"

    cat >"$STATE/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$PID_SLURMDBD
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    install_conf "$STATE/slurmdbd.conf" "$DBD_CONF" 0600
    chmod 0600 "$STATE/slurmdbd.conf"
    if ! alive "$PID_SLURMDBD" slurmdbd; then
        slurmdbd </dev/null >>"$STATE/log/daemons.log" 2>&1 || fail "slurmdbd did not start"
    fi
    wait_for "slurmdbd" sacctmgr -n list cluster || fail "slurmdbd does not answer"
fi

# --- slurmctld and slurmd ---------------------------------------------------
if ! alive "$PID_SLURMCTLD" slurmctld; then
    slurmctld </dev/null >>"$STATE/log/daemons.log" 2>&1 || fail "slurmctld did not start"
fi
wait_for "slurmctld" scontrol ping || fail "slurmctld does not answer"
if ! alive "$PID_SLURMD" slurmd; then
    slurmd -N localhost </dev/null >>"$STATE/log/daemons.log" 2>&1 || fail "slurmd did not start"
fi
if ! wait_for "node localhost to become idle" node_up; then
    # A node left DOWN or DRAINED by an earlier run: resume it once.
    scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
    wait_for "node localhost to become idle" node_up || fail "node localhost is not up: $(sinfo -h -N -o '%T %E' || true)"
fi
if [[ $ACCOUNTING == slurmdbd ]]; then
    wait_for "sacct" sacct -n -X || fail "sacct does not work"
fi

say "up in $((SECONDS - start_time))s: $(sinfo -h -N -n localhost -o '%N %T, %c CPUs, %m MB'), partition $(sinfo -h -o %P | head -n1), accounting: $ACCOUNTING"
say "config $CONF, state/logs/pids in $STATE"
say "stop with: ${SLURM_TEST_DIR:+SLURM_TEST_DIR=$STATE }$HERE/stop-slurm.sh"
