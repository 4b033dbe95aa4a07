# Shared helpers for the wrk load scripts in bench/http/. Sourced, not run.
# shellcheck shell=bash

HTTP_BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$HTTP_BENCH_DIR/../.." && pwd)"
CAIRN="${CAIRN:-$REPO_DIR/target/release/cairn}"
DURATION="${DURATION:-10s}"

PIDS=()
TMP_DIRS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Kill every process this script started (by pid), wait for it, remove temp dirs.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    local d
    for d in "${TMP_DIRS[@]}"; do
        if [ "${KEEP_LOGS:-0}" = 1 ]; then log "kept logs and wrk outputs in $d"; else rm -rf "$d"; fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stop the given pids (and drop them from PIDS), waiting for each to exit.
stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid did not stop within 10 s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    local keep=() p q drop
    for p in "${PIDS[@]}"; do
        drop=0
        for q in "$@"; do [ "$p" = "$q" ] && drop=1; done
        [ $drop = 1 ] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

# need CMD PACKAGE...: install missing Debian packages as root, otherwise say what is missing.
need() {
    local missing=() pkgs=() pair cmd pkg
    for pair in "$@"; do
        cmd="${pair%%:*}"; pkg="${pair##*:}"
        if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
            missing+=("$cmd"); pkgs+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ]; then
        log "installing ${pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}" >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}" >&2; } ||
            die "apt-get install ${pkgs[*]} failed"
    else
        die "missing commands: ${missing[*]}. Install them as root: apt-get install -y ${pkgs[*]}"
    fi
}

need_cairn() {
    [ -x "$CAIRN" ] || die "no cairn binary at $CAIRN: run 'cargo build --release' in $REPO_DIR, or set CAIRN=/path/to/cairn"
}

# disk_tmpdir VAR: a scratch dir on a real disk (not tmpfs), so fsync costs what it costs in production.
# Sets VAR (no command substitution: the dir must be recorded in this shell for the cleanup).
disk_tmpdir() {
    local base="${BENCH_TMP:-/var/tmp}" fs d
    fs="$(stat -f -c %T "$base")"
    case "$fs" in
        tmpfs | ramfs) die "$base is $fs; set BENCH_TMP to a directory on a real disk" ;;
    esac
    d="$(mktemp -d "$base/cairn-bench.XXXXXX")"
    TMP_DIRS+=("$d")
    printf -v "$1" '%s' "$d"
}

# Fail when something already listens on ip:port (glommio sets SO_REUSEPORT, so a clash could go unnoticed).
port_free() {
    local ip="$1" port="$2"
    if ss -Hltn "sport = :$port" | awk '{print $4}' | grep -Eq "^($ip|0\.0\.0\.0|\*|\[::\]):$port\$"; then
        die "something already listens on $ip:$port (ss -ltnp 'sport = :$port'); set the port variables to free ports"
    fi
}

# check_alive PID NAME LOGFILE: die with the log tail when the process has exited.
check_alive() {
    if ! kill -0 "$1" 2>/dev/null; then
        log "$2 (pid $1) exited; last lines of $3:"
        tail -n 30 "$3" >&2 || true
        die "$2 exited unexpectedly"
    fi
}

# curl_expect STATUS CURL-ARGS...: run curl, print the body, fail loudly on another status.
curl_expect() {
    local want="$1"; shift
    local out code
    out="$(curl -sS -w '\n%{http_code}' --max-time 10 "$@")" || die "curl $* failed"
    code="${out##*$'\n'}"
    out="${out%$'\n'*}"
    [ "$code" = "$want" ] || die "curl $* answered HTTP $code (expected $want): $out"
    printf '%s' "$out"
}

# run_wrk LOGFILE WRK-ARGS...: run wrk, keep its output, fail loudly on any non-2xx or socket error.
run_wrk() {
    local out="$1"; shift
    log "wrk $*"
    wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk $* failed"; }
    if grep -q 'Non-2xx or 3xx responses' "$out"; then
        cat "$out" >&2; die "wrk saw unexpected HTTP statuses: wrk $*"
    fi
    if grep -q 'Socket errors' "$out"; then
        cat "$out" >&2; die "wrk saw socket errors: wrk $*"
    fi
    grep -q '^Requests/sec:' "$out" || { cat "$out" >&2; die "no Requests/sec in wrk output"; }
    local n
    n="$(awk '/requests in/ {print $1}' "$out")"
    [ "${n:-0}" -gt 0 ] || { cat "$out" >&2; die "wrk completed no requests"; }
}

wrk_rps() { awk '/^Requests\/sec:/ {printf "%.0f\n", $2}' "$1"; }

# wrk_pct FILE PCT: the latency percentile (50, 99...) from --latency output, in microseconds.
wrk_pct() {
    awk -v p="$2%" '
        $1 == p && NF == 2 {
            v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
            if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000; else if (u == "m") f = 60000000; else f = -1
            printf "%.0f\n", v * f; found = 1; exit
        }
        END { if (!found) exit 1 }' "$1" || die "no $2% latency line in $1"
}

# median of the numbers given as arguments (the mean of the two middle ones for an even count).
median() {
    printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

# Thousands separators for the tables.
fmt() { printf "%'d" "$1" 2>/dev/null || printf '%s' "$1"; }

# start_cairn_dev LOG [EXTRA_FLAGS...]: start `cairn agent -dev` on 127.0.0.1 with CAIRN_HTTP_PORT and
# CAIRN_SERVER_PORT, logging to LOG; sets CAIRN_PID and returns once it answers with a leader (10 s at most).
start_cairn_dev() {
    local logfile="$1"; shift
    log "starting cairn agent -dev on 127.0.0.1:$CAIRN_HTTP_PORT"
    "$CAIRN" agent -dev -node bench -bind 127.0.0.1 -client 127.0.0.1 "$@" \
        -http-port "$CAIRN_HTTP_PORT" -server-port "$CAIRN_SERVER_PORT" >"$logfile" 2>&1 &
    CAIRN_PID=$!
    PIDS+=("$CAIRN_PID")
    local leader="" deadline=$((SECONDS + 10))
    while [ "$SECONDS" -lt "$deadline" ]; do
        check_alive "$CAIRN_PID" cairn "$logfile"
        leader="$(curl -s --max-time 1 "http://127.0.0.1:$CAIRN_HTTP_PORT/v1/status/leader" || true)"
        [ -n "$leader" ] && [ "$leader" != '""' ] && return 0
        sleep 0.1
    done
    die "cairn has no leader after 10 s (log: $logfile)"
}
