#!/usr/bin/env bash
# KV PUT latency and throughput: cairn vs etcd (Debian etcd-server, 3.4) in the same run, one server and three
# servers, each with 1 connection (p50/p99 latency) and 256 connections (requests/s). Real fsync: data dirs on a
# real disk (BENCH_TMP, default /var/tmp; refused when it is tmpfs).
#
#   bash bench/http/kv_put.sh               # 3 rounds; each round starts every cluster fresh, cairn then etcd
#   ROUNDS=1 DURATION=5s bash bench/http/kv_put.sh
#
# Needs: wrk, etcd, curl, ss (installed with apt-get when run as root) and a release build of cairn
# (cargo build --release; or CAIRN=/path/to/cairn). Three-server clusters use 127.0.0.1, 127.0.0.2 and 127.0.0.3
# (Linux routes all of 127/8 to lo). Ports on each address: CAIRN_HTTP_PORT (18500), CAIRN_SERVER_PORT (18300),
# ETCD_CLIENT_PORT (12379), ETCD_PEER_PORT (12380). Every process started here is stopped on exit, also on error;
# KEEP_LOGS=1 keeps the scratch dir (server logs, wrk outputs; the data dirs are removed after each cluster).
#
# Load for three servers goes to the leader in both systems, for both connection counts: wrk sends to one
# address, the leader is where every write is decided in both (a follower forwards it: one more hop that
# would measure forwarding, not the commit path), and it is the same choice for cairn and etcd.
set -euo pipefail

# shellcheck source=bench/http/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-256}"
CAIRN_HTTP_PORT="${CAIRN_HTTP_PORT:-18500}"
CAIRN_SERVER_PORT="${CAIRN_SERVER_PORT:-18300}"
CAIRN_SERF_PORT="${CAIRN_SERF_PORT:-18301}"
ETCD_CLIENT_PORT="${ETCD_CLIENT_PORT:-12379}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-12380}"
ETCD_PUT_PATH="${ETCD_PUT_PATH:-/v3/kv/put}"
WARMUP="${WARMUP:-2s}"
export KEYS="${KEYS:-10000}" VALUE_BYTES="${VALUE_BYTES:-128}" ETCD_PUT_PATH

need wrk:wrk etcd:etcd-server curl:curl ss:iproute2
need_cairn
ETCD="$(command -v etcd)"

for ip in 127.0.0.1 127.0.0.2 127.0.0.3; do
    for port in "$CAIRN_HTTP_PORT" "$CAIRN_SERVER_PORT" "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT"; do
        port_free "$ip" "$port"
    done
done

disk_tmpdir WORK
log "data dirs under $WORK ($(stat -f -c %T "$WORK") on $(df --output=source "$WORK" | tail -n 1))"

CLUSTER_PIDS=()
LEADER_URL=""

start_cairn() { # start_cairn N: N = 1 or 3 servers; sets CLUSTER_PIDS and LEADER_URL
    local n="$1" i j ip
    CLUSTER_PIDS=()
    for i in $(seq "$n"); do
        ip="127.0.0.$i"
        mkdir -p "$WORK/cairn-$i"
        local args=(agent -server -data-dir "$WORK/cairn-$i" -node "n$i" -bind "$ip" -client "$ip"
            -http-port "$CAIRN_HTTP_PORT" -server-port "$CAIRN_SERVER_PORT"
            -serf-lan-port "$CAIRN_SERF_PORT" -serf-wan-port -1)
        if [ "$n" = 1 ]; then
            args+=(-bootstrap)
        else
            args+=(-bootstrap-expect "$n")
            for j in $(seq "$n"); do
                [ "$j" = "$i" ] || args+=(-retry-join "127.0.0.$j:$CAIRN_SERF_PORT")
            done
        fi
        "$CAIRN" "${args[@]}" >"$WORK/cairn-$i.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        PIDS+=($!)
    done
    # Leader: every server reports the same non-empty /v1/status/leader.
    local leader="" all deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        for i in $(seq "$n"); do check_alive "${CLUSTER_PIDS[$((i - 1))]}" "cairn n$i" "$WORK/cairn-$i.log"; done
        all=""
        for i in $(seq "$n"); do
            all+="$(curl -s --max-time 1 "http://127.0.0.$i:$CAIRN_HTTP_PORT/v1/status/leader" || true) "
        done
        leader="${all%% *}"
        if [ -n "$leader" ] && [ "$leader" != '""' ] && [ "$(printf '%s\n' $all | sort -u | wc -l)" = 1 ] &&
            [ "$(printf '%s\n' $all | wc -l)" = "$n" ]; then
            break
        fi
        leader=""
        sleep 0.1
    done
    [ -n "$leader" ] || die "cairn ($n servers) has no agreed leader after 30 s: /v1/status/leader answers: $all (logs: $WORK/cairn-*.log)"
    leader="${leader//\"/}"
    LEADER_URL="http://${leader%:*}:$CAIRN_HTTP_PORT"
    log "cairn $n server(s): leader $leader, load to $LEADER_URL"
    local r
    r="$(printf 'x' | curl_expect 200 -X PUT --data-binary @- "$LEADER_URL/v1/kv/bench/probe")"
    [ "$r" = true ] || die "PUT $LEADER_URL/v1/kv/bench/probe answered '$r', expected 'true'"
}

start_etcd() { # start_etcd N
    local n="$1" i ip cluster="" token="bench-$$-$RANDOM"
    CLUSTER_PIDS=()
    for i in $(seq "$n"); do cluster+="${cluster:+,}e$i=http://127.0.0.$i:$ETCD_PEER_PORT"; done
    for i in $(seq "$n"); do
        ip="127.0.0.$i"
        "$ETCD" --name "e$i" --data-dir "$WORK/etcd-$i" \
            --listen-client-urls "http://$ip:$ETCD_CLIENT_PORT" --advertise-client-urls "http://$ip:$ETCD_CLIENT_PORT" \
            --listen-peer-urls "http://$ip:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$ip:$ETCD_PEER_PORT" \
            --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token" \
            >"$WORK/etcd-$i.log" 2>&1 &
        CLUSTER_PIDS+=($!)
        PIDS+=($!)
    done
    # Leader: the member whose member_id equals the leader id in /v3/maintenance/status.
    local st id lead url="" deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        for i in $(seq "$n"); do check_alive "${CLUSTER_PIDS[$((i - 1))]}" "etcd e$i" "$WORK/etcd-$i.log"; done
        for i in $(seq "$n"); do
            st="$(curl -s --max-time 1 -X POST -d '{}' "http://127.0.0.$i:$ETCD_CLIENT_PORT/v3/maintenance/status" || true)"
            id="$(printf '%s' "$st" | sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p')"
            lead="$(printf '%s' "$st" | sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p')"
            if [ -n "$id" ] && [ "$id" = "$lead" ]; then url="http://127.0.0.$i:$ETCD_CLIENT_PORT"; fi
        done
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || die "etcd ($n members) has no leader after 30 s (logs: $WORK/etcd-*.log)"
    LEADER_URL="$url"
    log "etcd $n member(s): load to leader $LEADER_URL"
    local r
    r="$(curl_expect 200 -X POST -d '{"key":"YmVuY2gvcHJvYmU=","value":"eA=="}' "$LEADER_URL$ETCD_PUT_PATH")"
    case "$r" in *'"revision"'*) ;; *) die "etcd PUT $LEADER_URL$ETCD_PUT_PATH answered '$r'" ;; esac
}

stop_cluster() {
    stop_pids "${CLUSTER_PIDS[@]}"
    CLUSTER_PIDS=()
    rm -rf "$WORK"/cairn-[0-9] "$WORK"/etcd-[0-9]
}

declare -A P50 P99 RPS # key "system/servers" -> space-separated per-round figures

measure() { # measure SYSTEM SERVERS ROUND
    local sys="$1" n="$2" r="$3" script out i
    script="$HTTP_BENCH_DIR/put_$sys.lua"
    "start_$sys" "$n"
    out="$WORK/wrk-$sys-$n-$r"
    run_wrk "$out-warmup" -t2 -c16 "-d$WARMUP" -s "$script" "$LEADER_URL"
    run_wrk "$out-c1" -t1 -c1 "-d$DURATION" --latency -s "$script" "$LEADER_URL"
    run_wrk "$out-c$CONNS" -t2 "-c$CONNS" "-d$DURATION" --timeout 5s --latency -s "$script" "$LEADER_URL"
    for i in $(seq "$n"); do check_alive "${CLUSTER_PIDS[$((i - 1))]}" "$sys server $i" "$WORK/$sys-$i.log"; done
    P50["$sys/$n"]+="$(wrk_pct "$out-c1" 50) "
    P99["$sys/$n"]+="$(wrk_pct "$out-c1" 99) "
    RPS["$sys/$n"]+="$(wrk_rps "$out-c$CONNS") "
    log "$sys $n server(s) round $r: 1 conn p50 $(wrk_pct "$out-c1" 50) us p99 $(wrk_pct "$out-c1" 99) us;" \
        "$CONNS conns $(wrk_rps "$out-c$CONNS") req/s (p99 $(wrk_pct "$out-c$CONNS" 99) us)"
    stop_cluster
    mkdir -p "$WORK/logs-$sys-$n-$r"
    mv "$WORK/$sys"-[0-9].log "$WORK/logs-$sys-$n-$r/"
}

for r in $(seq "$ROUNDS"); do
    for n in 1 3; do
        measure cairn "$n" "$r"
        measure etcd "$n" "$r"
    done
done

med() { # med ARRAY-NAME KEY
    local -n arr="$1"
    # shellcheck disable=SC2086
    median ${arr[$2]}
}

echo
echo "KV PUT, ${VALUE_BYTES}-byte values over $KEYS keys, $DURATION per measurement, $ROUNDS round(s), medians;" \
    "$(nproc) CPUs; disk $(df --output=source "$WORK" | tail -n 1) ($(stat -f -c %T "$WORK"))"
echo "cairn $("$CAIRN" version 2>/dev/null | head -n 1); $("$ETCD" --version | head -n 1)"
printf '%-34s %12s %12s %10s   %s\n' case cairn etcd cairn/etcd "per round: cairn | etcd"
for n in 1 3; do
    name="$n server$([ "$n" = 1 ] || echo s)"
    for m in P50 P99 RPS; do
        case $m in
            P50) label="$name, 1 conn, p50 us" ;;
            P99) label="$name, 1 conn, p99 us" ;;
            RPS) label="$name, $CONNS conns, req/s" ;;
        esac
        c="$(med "$m" "cairn/$n")"
        e="$(med "$m" "etcd/$n")"
        declare -n ref="$m"
        printf '%-34s %12s %12s %10s   %s| %s\n' "$label" "$c" "$e" "$(ratio "$c" "$e")" "${ref[cairn/$n]}" "${ref[etcd/$n]}"
        unset -n ref
    done
done
echo
echo "cairn 1-server 1-conn p50 / etcd 1-server p50: $(ratio "$(med P50 cairn/1)" "$(med P50 etcd/1)")   (target <= 0.5)"
echo "cairn 3-server $CONNS-conn req/s / etcd 3-node req/s: $(ratio "$(med RPS cairn/3)" "$(med RPS etcd/3)")   (target >= 2)"
