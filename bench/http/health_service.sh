#!/usr/bin/env bash
# Service discovery read throughput: GET /v1/health/service/<name>?passing on cairn (agent -dev) with 10 000
# instances registered across 100 services (100 nodes, each running one instance of every service with a
# passing check), so each answer lists 100 instances with their node and checks.
#
#   bash bench/http/health_service.sh          # 3 rounds of 10 s, median printed
#   ROUNDS=5 DURATION=20s bash bench/http/health_service.sh
#
# Needs: wrk, curl, python3, ss (installed with apt-get when run as root) and a release build of cairn
# (cargo build --release; or CAIRN=/path/to/cairn). Ports: CAIRN_HTTP_PORT (18500), CAIRN_SERVER_PORT (18300).
# Every process started here is stopped on exit; KEEP_LOGS=1 keeps the scratch dir. Target (issue 5): at least
# 2 000 req/s with 64 connections.
set -euo pipefail

# shellcheck source=bench/http/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-64}"
NODES="${NODES:-100}"
SERVICES="${SERVICES:-100}"
CAIRN_HTTP_PORT="${CAIRN_HTTP_PORT:-18500}"
CAIRN_SERVER_PORT="${CAIRN_SERVER_PORT:-18300}"

need wrk:wrk curl:curl python3:python3 ss:iproute2
need_cairn
port_free 127.0.0.1 "$CAIRN_HTTP_PORT"
port_free 127.0.0.1 "$CAIRN_SERVER_PORT"
disk_tmpdir WORK

start_cairn_dev "$WORK/cairn.log" -log-level=warn

log "registering $((NODES * SERVICES)) instances ($NODES nodes x $SERVICES services) through /v1/catalog/register"
python3 - "$CAIRN_HTTP_PORT" "$NODES" "$SERVICES" <<'PY'
import http.client, json, sys
port, nodes, services = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for n in range(nodes):
    node = f"node-{n:03}"
    address = f"10.0.{n // 250}.{n % 250 + 1}"
    for s in range(services):
        body = {
            "Node": node, "Address": address,
            "Service": {"ID": f"svc-{s:03}", "Service": f"svc-{s:03}", "Port": 8000 + s,
                        "Tags": ["v1", "bench"], "Meta": {"team": "bench"}},
            "Check": {"CheckID": f"svc-{s:03}-alive", "Name": "alive", "Status": "passing",
                      "ServiceID": f"svc-{s:03}"},
        }
        conn.request("PUT", "/v1/catalog/register", json.dumps(body))
        r = conn.getresponse()
        text = r.read()
        if r.status != 200 or text.strip() != b"true":
            sys.exit(f"register {node}/svc-{s:03}: HTTP {r.status} {text[:200]!r}")
PY

URL="http://127.0.0.1:$CAIRN_HTTP_PORT/v1/health/service/svc-042?passing"
count="$(curl_expect 200 "$URL" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
[ "$count" = "$NODES" ] || die "GET $URL listed $count instances, expected $NODES"
bytes="$(curl -s "$URL" | wc -c)"
log "one answer: $count instances, $bytes bytes"

rps=()
for round in $(seq 1 "$ROUNDS"); do
    run_wrk "$WORK/wrk-$round.txt" -t"$THREADS" -c"$CONNS" -d"${DURATION:-10s}" --latency "$URL"
    rps+=("$(wrk_rps "$WORK/wrk-$round.txt")")
    log "round $round: $(wrk_rps "$WORK/wrk-$round.txt") req/s, p50 $(wrk_pct "$WORK/wrk-$round.txt" 50) us, p99 $(wrk_pct "$WORK/wrk-$round.txt" 99) us"
done
med="$(median "${rps[@]}")"
echo
echo "GET /v1/health/service/<name>?passing, $((NODES * SERVICES)) instances across $SERVICES services ($count per answer, $bytes bytes), wrk -t$THREADS -c$CONNS, $(nproc) CPUs"
echo "req/s per round: ${rps[*]}; median $(fmt "$med") req/s (target >= 2000)"
