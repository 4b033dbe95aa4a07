#!/usr/bin/env bash
# DNS throughput: cairn (agent -dev, catalog in memory) vs Knot DNS serving one zone with the same records,
# measured with dnsperf in the same run, alternating servers round by round.
#
#   bash bench/dns/dnsperf.sh                 # 3 alternating rounds of 10 s per query set, medians printed
#   ROUNDS=5 DURATION=20 bash bench/dns/dnsperf.sh
#
# Query sets: `web.service.consul` A and SRV (3 healthy instances), and `many.service.consul` A and SRV
# (INSTANCES=1000 instances behind one name). dnsperf sends UDP without EDNS, so both servers answer within
# 512 bytes: cairn with udp_answer_limit (3) shuffled answers, Knot with what fits (and TC for the large sets).
#
# Needs: dnsperf, knot, dig, curl, ss (installed with apt-get when run as root) and a release build of cairn
# (cargo build --release; or CAIRN=/path/to/cairn). Ports on 127.0.0.1: CAIRN_HTTP_PORT (18500),
# CAIRN_SERVER_PORT (18300), CAIRN_DNS_PORT (18600), KNOT_PORT (18653). Every process started here is stopped on
# exit, also on error or Ctrl-C; KEEP_LOGS=1 keeps the scratch dir (logs, zone, dnsperf outputs).
set -euo pipefail

# shellcheck source=bench/http/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../http/lib.sh"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CLIENTS="${CLIENTS:-4}"
OUTSTANDING="${OUTSTANDING:-200}"
INSTANCES="${INSTANCES:-1000}"
CAIRN_HTTP_PORT="${CAIRN_HTTP_PORT:-18500}"
CAIRN_SERVER_PORT="${CAIRN_SERVER_PORT:-18300}"
CAIRN_DNS_PORT="${CAIRN_DNS_PORT:-18600}"
KNOT_PORT="${KNOT_PORT:-18653}"
KNOT_WORKERS="${KNOT_WORKERS:-$(nproc)}"

need dnsperf:dnsperf knotd:knot dig:dnsutils curl:curl ss:iproute2
need_cairn
KNOTD="$(command -v knotd || echo /usr/sbin/knotd)"

port_free 127.0.0.1 "$CAIRN_HTTP_PORT"
port_free 127.0.0.1 "$CAIRN_SERVER_PORT"
port_free 127.0.0.1 "$CAIRN_DNS_PORT"
port_free 127.0.0.1 "$KNOT_PORT"

disk_tmpdir WORK
chmod 755 "$WORK"

# --- cairn -dev, and the catalog: web on 3 nodes, many on $INSTANCES nodes ---
start_cairn_dev "$WORK/cairn.log" -dns-port "$CAIRN_DNS_PORT"
ZONE="$WORK/consul.zone"
{
    printf '$ORIGIN consul.\n$TTL 0\n'
    printf '@ IN SOA ns.consul. hostmaster.consul. 1 3600 600 86400 0\n'
    printf '@ IN NS bench.node.dc1.consul.\n'
    printf 'bench.node.dc1 IN A 127.0.0.1\n'
} >"$ZONE"

register() { # NODE ADDRESS SERVICE
    curl_expect 200 -X PUT --data-binary \
        "{\"Node\":\"$1\",\"Address\":\"$2\",\"Service\":{\"Service\":\"$3\",\"Port\":8080},\"Check\":{\"CheckID\":\"c\",\"Name\":\"c\",\"Status\":\"passing\",\"ServiceID\":\"$3\"}}" \
        "http://127.0.0.1:$CAIRN_HTTP_PORT/v1/catalog/register" >/dev/null
    printf '%s.service IN A %s\n%s.service IN SRV 1 1 8080 %s.node.dc1.consul.\n%s.node.dc1 IN A %s\n' \
        "$3" "$2" "$3" "$1" "$1" "$2" >>"$ZONE"
}
log "registering 3 web instances and $INSTANCES many instances"
for i in 1 2 3; do register "web-$i" "10.1.0.$i" web; done
for i in $(seq 0 $((INSTANCES - 1))); do
    register "many-$i" "10.2.$((i / 250)).$((i % 250 + 1))" many
done

# --- Knot: the same records in one zone ---
mkdir -p "$WORK/knot"
cat >"$WORK/knot.conf" <<CONF
server:
    listen: 127.0.0.1@$KNOT_PORT
    rundir: "$WORK/knot"
    udp-workers: $KNOT_WORKERS
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$WORK/knot"
zone:
  - domain: consul.
    file: "$ZONE"
    zonefile-load: whole
    journal-content: none
CONF
log "starting knotd ($KNOT_WORKERS UDP workers) on 127.0.0.1:$KNOT_PORT"
"$KNOTD" -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
KNOT_PID=$!
PIDS+=("$KNOT_PID")
deadline=$((SECONDS + 10))
until dig +short +time=1 +tries=1 @127.0.0.1 -p "$KNOT_PORT" web.service.consul A | grep -q 10.1.0; do
    check_alive "$KNOT_PID" knotd "$WORK/knot.log"
    [ "$SECONDS" -lt "$deadline" ] || die "knotd does not answer (log: $WORK/knot.log)"
    sleep 0.2
done

# Both answer the same names.
for q in "web.service.consul A" "web.service.consul SRV" "many.service.consul A" "many.service.consul SRV"; do
    for port in "$CAIRN_DNS_PORT" "$KNOT_PORT"; do
        # shellcheck disable=SC2086
        n="$(dig +short +tcp @127.0.0.1 -p "$port" $q | wc -l)"
        [ "$n" -gt 0 ] || die "no answer to '$q' on port $port"
    done
done

# run_dnsperf OUT PORT QUERYFILE: run dnsperf, fail loudly when it completed nothing.
run_dnsperf() {
    local out="$1" port="$2" queries="$3"
    dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING" >"$out" 2>&1 ||
        { cat "$out" >&2; die "dnsperf against port $port failed"; }
    grep -q 'Queries per second:' "$out" || { cat "$out" >&2; die "no 'Queries per second' in dnsperf output"; }
}
dnsperf_qps() { awk '/Queries per second:/ {printf "%.0f\n", $4}' "$1"; }
dnsperf_lost() { awk '/Queries lost:/ {print $3}' "$1"; }

echo
echo "dnsperf -c$CLIENTS -q$OUTSTANDING -l$DURATION (UDP, no EDNS), $(nproc) CPUs, $ROUNDS alternating rounds; Knot $KNOT_WORKERS UDP workers"
printf '%-26s %-8s %-26s %12s %8s\n' "query" server "q/s per round" "median q/s" "lost"
for set in "web A" "web SRV" "many A" "many SRV"; do
    name="${set% *}.service.consul"; type="${set#* }"
    qfile="$WORK/q-${set// /-}"
    printf '%s %s\n' "$name" "$type" >"$qfile"
    cairn_qps=() knot_qps=() cairn_lost=0 knot_lost=0
    for r in $(seq "$ROUNDS"); do
        run_dnsperf "$WORK/perf-cairn-${set// /-}-$r" "$CAIRN_DNS_PORT" "$qfile"
        check_alive "$CAIRN_PID" cairn "$WORK/cairn.log"
        cairn_qps+=("$(dnsperf_qps "$WORK/perf-cairn-${set// /-}-$r")")
        cairn_lost=$((cairn_lost + $(dnsperf_lost "$WORK/perf-cairn-${set// /-}-$r")))
        run_dnsperf "$WORK/perf-knot-${set// /-}-$r" "$KNOT_PORT" "$qfile"
        check_alive "$KNOT_PID" knotd "$WORK/knot.log"
        knot_qps+=("$(dnsperf_qps "$WORK/perf-knot-${set// /-}-$r")")
        knot_lost=$((knot_lost + $(dnsperf_lost "$WORK/perf-knot-${set// /-}-$r")))
    done
    c="$(median "${cairn_qps[@]}")"; k="$(median "${knot_qps[@]}")"
    printf '%-26s %-8s %-26s %12s %8s\n' "$name $type" cairn "${cairn_qps[*]}" "$c" "$cairn_lost"
    printf '%-26s %-8s %-26s %12s %8s\n' "" knot "${knot_qps[*]}" "$k" "$knot_lost"
    echo "  ratio cairn/knot: $(ratio "$c" "$k")   (target >= 0.8, loss no more than Knot's)"
done
