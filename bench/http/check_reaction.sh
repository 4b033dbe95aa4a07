#!/usr/bin/env bash
# How fast a failing HTTP check takes an instance out of `?passing` (issue 5: within its interval + 1 s).
# Starts cairn agent -dev and a small HTTP endpoint (python3) that answers 200 or 503 on demand, registers
# a service on the agent with an HTTP check every INTERVAL, then TRIALS times: flips the endpoint to 503 at
# a random moment of the check's cycle and measures, with a blocking query on
# /v1/health/service/<name>?passing, when the instance leaves the answer; then flips it back and waits
# until it is passing again.
#
#   bash bench/http/check_reaction.sh              # INTERVAL=1s TRIALS=10
#   INTERVAL=5s TRIALS=5 bash bench/http/check_reaction.sh
#
# Needs: curl, python3, ss (installed with apt-get when run as root) and a release build of cairn.
# Ports: CAIRN_HTTP_PORT (18500), CAIRN_SERVER_PORT (18300). KEEP_LOGS=1 keeps the scratch dir.
set -euo pipefail

# shellcheck source=bench/http/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INTERVAL="${INTERVAL:-1s}"
TRIALS="${TRIALS:-10}"
CAIRN_HTTP_PORT="${CAIRN_HTTP_PORT:-18500}"
CAIRN_SERVER_PORT="${CAIRN_SERVER_PORT:-18300}"

need curl:curl python3:python3 ss:iproute2
need_cairn
port_free 127.0.0.1 "$CAIRN_HTTP_PORT"
port_free 127.0.0.1 "$CAIRN_SERVER_PORT"
disk_tmpdir WORK

start_cairn_dev "$WORK/cairn.log" -log-level=warn

log "measuring $TRIALS flips with an HTTP check every $INTERVAL"
python3 - "$CAIRN_HTTP_PORT" "$INTERVAL" "$TRIALS" <<'PY'
import http.client, http.server, json, random, socketserver, statistics, sys, threading, time

port, interval, trials = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
interval_s = float(interval[:-2]) / 1000 if interval.endswith("ms") else float(interval[:-1])
state = {"code": 200}

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(state["code"])
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
target = f"http://127.0.0.1:{server.server_address[1]}/health"

def call(method, path, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data

status, _, body = call("PUT", "/v1/agent/service/register", json.dumps({
    "Name": "flappy", "Port": 80,
    "Check": {"CheckID": "flappy-http", "HTTP": target, "Interval": interval, "Timeout": "1s"}}))
assert status == 200, body

def passing():
    status, headers, body = call("GET", "/v1/health/service/flappy?passing")
    return len(json.loads(body)), int(headers["X-Consul-Index"])

def wait_until(count, deadline_s=30):
    end = time.time() + deadline_s
    while time.time() < end:
        n, index = passing()
        if n == count:
            return index
        call("GET", f"/v1/health/service/flappy?passing&index={index}&wait=2s")
    sys.exit(f"flappy never had {count} passing instances")

delays = []
for trial in range(trials):
    wait_until(1)
    time.sleep(random.uniform(0, interval_s))  # a random point of the check's cycle
    n, index = passing()
    state["code"] = 503
    flipped = time.time()
    while True:
        status, headers, body = call("GET", f"/v1/health/service/flappy?passing&index={index}&wait=30s")
        index = int(headers["X-Consul-Index"])
        if len(json.loads(body)) == 0:
            break
    delays.append(time.time() - flipped)
    print(f"trial {trial + 1}: out of ?passing after {delays[-1] * 1000:.0f} ms", file=sys.stderr)
    state["code"] = 200

limit = interval_s + 1
print()
print(f"HTTP check every {interval}: out of ?passing after min {min(delays) * 1000:.0f} ms, median "
      f"{statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms over {trials} flips "
      f"(target: within interval + 1 s = {limit * 1000:.0f} ms): {'met' if max(delays) <= limit else 'NOT met'}")
PY
