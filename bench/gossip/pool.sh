#!/usr/bin/env bash
# Gossip pool (issue 6): N cairn client agents and N serf agents run the same experiment in the same run, on
# loopback, each agent on its own address (cairn on CAIRN_NET.1.., serf on SERF_NET.1..), LAN timing (the
# defaults of both), for each N in SIZES:
#   1. join -> seen by all: agent 1 starts alone; agents 2..N start together, joining agent 1; time from the
#      last agent's start until every agent lists N alive members;
#   2. user event -> all: one user event fired on agent 1; time until every agent has received it;
#   3. idle RSS: after the pool has been idle IDLE seconds, VmRSS (/proc/<pid>/status) of every agent, mean and
#      max, and the mean RssAnon (the private part: VmRSS also counts the binary's pages, shared between agents);
#   4. kill -> all mark failed: SIGKILL agent N; time until every other agent lists it failed.
# Times are what an observer polling every TICK_MS (50 ms) sees, so they are quantised to about one tick.
# The observer (poll.py) keeps one connection per agent (HTTP keep-alive to cairn, a serf RPC session to serf)
# and sends one request per agent per tick; a serf agent's user events come through its RPC event stream,
# checked at the same ticks. Each round runs cairn, then serf (the order alternates round by round); the
# table shows medians over ROUNDS rounds, the per-round figures after them, and the ratio cairn/serf.
#
#   bash bench/gossip/pool.sh                       # SIZES="5 10 20" ROUNDS=3
#   SIZES=20 ROUNDS=1 bash bench/gossip/pool.sh
#
# Targets (issue 6): cairn's join, event and failure times no worse than serf's (ratio <= 1); idle cairn client
# RSS at most 1/3 of serf's (ratio <= 0.33).
# Knobs: SIZES, ROUNDS, STEP_TIMEOUT (60 s per step: a step that does not finish is reported as a failure and
# the script exits 1 after the tables), SETTLE (2 s between join and event), IDLE (8 s), TICK_MS (50),
# CAIRN_NET (127.0.1), SERF_NET (127.0.2), CAIRN_HTTP_PORT (18500), CAIRN_SERF_PORT (18301), SERF_PORT (18401),
# SERF_RPC_PORT (18473), LOG_LEVEL (info, both), SERF_TAGS (consul: serf agents carry the 8 tags a cairn client
# agent gossips, with values of the same sizes, so alive messages are as large in both pools; none: no tags).
# KEEP_LOGS=1 keeps the scratch dir (every agent's log).
# Needs: serf (Debian's `serf`), python3, ss (installed with apt-get when run as root) and a release build of
# cairn (cargo build --release; or CAIRN=/path/to/cairn). Every process started here is stopped on exit, also on
# error or Ctrl-C.
set -euo pipefail

# shellcheck source=bench/http/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../http/lib.sh"
POLL="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/poll.py"

SIZES="${SIZES:-5 10 20}"
ROUNDS="${ROUNDS:-3}"
export STEP_TIMEOUT="${STEP_TIMEOUT:-60}"
export TICK_MS="${TICK_MS:-50}"
SETTLE="${SETTLE:-2}"
IDLE="${IDLE:-8}"
CAIRN_NET="${CAIRN_NET:-127.0.1}"
SERF_NET="${SERF_NET:-127.0.2}"
CAIRN_HTTP_PORT="${CAIRN_HTTP_PORT:-18500}"
CAIRN_SERF_PORT="${CAIRN_SERF_PORT:-18301}"
SERF_PORT="${SERF_PORT:-18401}"
SERF_RPC_PORT="${SERF_RPC_PORT:-18473}"
LOG_LEVEL="${LOG_LEVEL:-info}"
SERF_TAGS="${SERF_TAGS:-consul}"

need serf:serf python3:python3 ss:iproute2
need_cairn
max_n=0
for n in $SIZES; do
    [ "$n" -ge 2 ] && [ "$n" -le 254 ] || die "SIZES: every N must be within 2..254 (got $n)"
    [ "$n" -gt "$max_n" ] && max_n=$n
done
for i in $(seq "$max_n"); do
    port_free "$CAIRN_NET.$i" "$CAIRN_HTTP_PORT"
    port_free "$CAIRN_NET.$i" "$CAIRN_SERF_PORT"
    port_free "$SERF_NET.$i" "$SERF_PORT"
    port_free "$SERF_NET.$i" "$SERF_RPC_PORT"
done
disk_tmpdir WORK

FAILED=0
POOL_PIDS=()

# start_agent KIND N I DIR: start agent I of a pool of N (agents after the first join agent 1).
start_agent() {
    local kind="$1" i="$3" dir="$4" pid
    if [ "$kind" = cairn ]; then
        local ip="$CAIRN_NET.$i" join=()
        [ "$i" -gt 1 ] && join=(-retry-join="$CAIRN_NET.1:$CAIRN_SERF_PORT" -retry-interval=1s)
        mkdir -p "$dir/data-$i"
        "$CAIRN" agent -node="cairn-$i" -bind="$ip" -client="$ip" -data-dir="$dir/data-$i" \
            -http-port="$CAIRN_HTTP_PORT" -dns-port=-1 -serf-lan-port="$CAIRN_SERF_PORT" -serf-wan-port=-1 \
            -log-level="$LOG_LEVEL" "${join[@]}" >"$dir/agent-$i.log" 2>&1 &
        pid=$!
    else
        local ip="$SERF_NET.$i" join=() tags=()
        [ "$i" -gt 1 ] && join=(-join="$SERF_NET.1:$SERF_PORT")
        if [ "$SERF_TAGS" = consul ]; then
            # The tags a Consul (and cairn) client agent gossips, same keys and value sizes, so every alive
            # message carries as many bytes in both pools.
            tags=(-tag build=0.1.0:cairn -tag dc=dc1 -tag "id=$(cat /proc/sys/kernel/random/uuid)" -tag role=node
                -tag segment= -tag vsn=2 -tag vsn_max=3 -tag vsn_min=2)
        fi
        serf agent -node="serf-$i" -bind="$ip:$SERF_PORT" -rpc-addr="$ip:$SERF_RPC_PORT" \
            -log-level="$LOG_LEVEL" "${tags[@]}" "${join[@]}" >"$dir/agent-$i.log" 2>&1 &
        pid=$!
    fi
    PIDS+=("$pid")
    POOL_PIDS+=("$pid")
}

# addrs KIND FROM TO: the observer's addresses of agents FROM..TO, comma-separated.
addrs() {
    local kind="$1" i out=()
    for i in $(seq "$2" "$3"); do
        if [ "$kind" = cairn ]; then out+=("$CAIRN_NET.$i:$CAIRN_HTTP_PORT"); else out+=("$SERF_NET.$i:$SERF_RPC_PORT"); fi
    done
    local IFS=,
    printf '%s' "${out[*]}"
}

# check_pool KIND DIR: die when an agent of the pool (still expected to run) has exited.
check_pool() {
    local i=1 pid
    for pid in "${POOL_PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null && grep -q 'Caught signal: terminated' "$2/agent-$i.log"; then
            die "$1 agent $i (pid $pid) was stopped by a SIGTERM this script did not send (another process on the machine killing cairn processes by name?); log: $2/agent-$i.log"
        fi
        check_alive "$pid" "$1 agent $i" "$2/agent-$i.log"
        i=$((i + 1))
    done
}

# figure OUTPUT: "ms" of poll.py's answer, or the timeout text.
figure() {
    case "$1" in
        timeout*) printf 'timeout(%s)' "${1#timeout }" ;;
        *) printf '%s' "${1%% *}" ;;
    esac
}

# run_pool KIND N ROUND: one experiment; sets R_JOIN R_EVENT R_FAIL (ms or timeout(k/n)), R_RSS_MEAN R_RSS_MAX
# R_RSS_ANON (KiB).
run_pool() {
    local kind="$1" n="$2" round="$3" dir="$WORK/$1-$2-$3" out t0 i pid all
    mkdir -p "$dir"
    POOL_PIDS=()
    all="$(addrs "$kind" 1 "$n")"

    start_agent "$kind" "$n" 1 "$dir"
    out="$(python3 "$POLL" "$kind" "$(addrs "$kind" 1 1)" join "$EPOCHREALTIME" 1)"
    check_pool "$kind" "$dir"
    case "$out" in timeout*) die "$kind agent 1 did not come up within ${STEP_TIMEOUT}s (log: $dir/agent-1.log)" ;; esac

    for i in $(seq 2 "$n"); do
        [ "$i" = "$n" ] && t0="$EPOCHREALTIME"
        start_agent "$kind" "$n" "$i" "$dir"
    done
    out="$(python3 "$POLL" "$kind" "$all" join "$t0" "$n")"
    check_pool "$kind" "$dir"
    R_JOIN="$(figure "$out")"
    log "$kind N=$n round $round: join -> seen by all: $out (ms: all, median agent)"

    sleep "$SETTLE"
    out="$(python3 "$POLL" "$kind" "$all" event "bench-$kind-$n-$round")"
    check_pool "$kind" "$dir"
    R_EVENT="$(figure "$out")"
    log "$kind N=$n round $round: user event -> all: $out"

    sleep "$IDLE"
    check_pool "$kind" "$dir"
    local sum=0 max=0 anon=0 rss threads=0
    for pid in "${POOL_PIDS[@]}"; do
        rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
        anon=$((anon + $(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")))
        threads="$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")"
        sum=$((sum + rss))
        [ "$rss" -gt "$max" ] && max=$rss
    done
    R_RSS_MEAN=$((sum / n))
    R_RSS_MAX=$max
    R_RSS_ANON=$((anon / n))
    log "$kind N=$n round $round: idle RSS mean $R_RSS_MEAN KiB, max $R_RSS_MAX KiB, RssAnon mean $R_RSS_ANON KiB ($threads threads per agent)"

    local victim="${POOL_PIDS[$((n - 1))]}" victim_name="$kind-$n"
    out="$(python3 "$POLL" "$kind" "$(addrs "$kind" 1 $((n - 1)))" fail "$victim" "$victim_name")"
    wait "$victim" 2>/dev/null || true
    unset "POOL_PIDS[$((n - 1))]"
    check_pool "$kind" "$dir"
    R_FAIL="$(figure "$out")"
    log "$kind N=$n round $round: kill -> all mark failed: $out"

    stop_pids "${POOL_PIDS[@]}" "$victim"
    POOL_PIDS=()
    case "$R_JOIN$R_EVENT$R_FAIL" in *timeout*) FAILED=1 ;; esac
}

# med VALUES...: the median of the numeric values, or the first failure when one is not a number.
med() {
    local v
    for v in "$@"; do case "$v" in *[!0-9]*) printf '%s' "$v"; return ;; esac; done
    median "$@"
}

# ratio_cell A B: A/B, or n/a when either failed.
ratio_cell() {
    case "$1$2" in *[!0-9]*) printf 'n/a' ;; *) ratio "$1" "$2" ;; esac
}

# verdict RATIO LIMIT
verdict() {
    [ "$1" = n/a ] && { printf 'FAILED'; return; }
    awk -v r="$1" -v l="$2" 'BEGIN { if (r <= l) print "met"; else print "NOT met" }'
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

TABLES=()
log "gossip pool: N in {$SIZES}, $ROUNDS round(s) each; cairn on $CAIRN_NET.x, serf on $SERF_NET.x (SERF_TAGS=$SERF_TAGS); $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
mimalloc_env="$(env | grep '^MIMALLOC_' | tr '\n' ' ' || true)"
[ -z "$mimalloc_env" ] || log "cairn runs with ${mimalloc_env% }"
for n in $SIZES; do
    declare -A V=()
    for r in $(seq "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="cairn serf"; else order="serf cairn"; fi
        for kind in $order; do
            run_pool "$kind" "$n" "$r"
            V[$kind.join]+="$R_JOIN "
            V[$kind.event]+="$R_EVENT "
            V[$kind.fail]+="$R_FAIL "
            V[$kind.rss]+="$R_RSS_MEAN "
            V[$kind.rssmax]+="$R_RSS_MAX "
            V[$kind.anon]+="$R_RSS_ANON "
        done
    done
    table="$(
        printf '\nN = %s (%s round(s); median, per-round values in brackets; load average %s)\n' \
            "$n" "$ROUNDS" "$(cut -d' ' -f1-3 /proc/loadavg)"
        printf '%-30s %-26s %-26s %10s  %s\n' figure cairn serf cairn/serf target
        for f in join event fail; do
            case $f in
                join) label="join -> seen by all (ms)" ;;
                event) label="user event -> all (ms)" ;;
                fail) label="kill -> all mark failed (ms)" ;;
            esac
            # shellcheck disable=SC2086
            c="$(med ${V[cairn.$f]})"; s="$(med ${V[serf.$f]})"; q="$(ratio_cell "$c" "$s")"
            printf '%-30s %-26s %-26s %10s  %s\n' "$label" "$c [${V[cairn.$f]% }]" "$s [${V[serf.$f]% }]" \
                "$q" "<= 1: $(verdict "$q" 1)"
        done
        for f in rss rssmax anon; do
            # shellcheck disable=SC2086
            c="$(med ${V[cairn.$f]})"; s="$(med ${V[serf.$f]})"; q="$(ratio_cell "$c" "$s")"
            if [ $f = rss ]; then label="idle RSS per agent, mean (MiB)"; tgt="<= 0.33: $(verdict "$q" 0.3334)"
            elif [ $f = rssmax ]; then label="idle RSS per agent, max (MiB)"; tgt=""
            else label="  of which RssAnon, mean (MiB)"; tgt="(private; the rest is mostly the shared binary)"; fi
            cr=""; sr=""
            for v in ${V[cairn.$f]}; do cr+="$(mib "$v") "; done
            for v in ${V[serf.$f]}; do sr+="$(mib "$v") "; done
            printf '%-30s %-26s %-26s %10s  %s\n' "$label" "$(mib "$c") [${cr% }]" "$(mib "$s") [${sr% }]" "$q" "$tgt"
        done
    )"
    printf '%s\n' "$table"
    TABLES+=("$table")
    unset V
done

if [ "${#TABLES[@]}" -gt 1 ]; then
    printf '\n===== all sizes =====\n'
    printf '%s\n' "${TABLES[@]}"
fi
[ "$FAILED" = 0 ] || die "at least one step timed out after ${STEP_TIMEOUT}s (see the tables)"
