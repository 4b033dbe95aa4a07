#!/usr/bin/env bash
# KV GET throughput: cairn (agent -dev, state in memory) vs nginx serving the same response body as a static file.
#
#   bash bench/http/kv_get.sh            # 3 alternating rounds of 10 s each, medians printed
#   ROUNDS=5 DURATION=20s bash bench/http/kv_get.sh
#
# Needs: wrk, nginx, curl, ss (installed with apt-get when run as root) and a release build of cairn
# (cargo build --release; or CAIRN=/path/to/cairn). Ports: CAIRN_HTTP_PORT (18500), CAIRN_SERVER_PORT (18300),
# NGINX_PORT (18080), all on 127.0.0.1. Every process started here is stopped on exit, also on error or Ctrl-C;
# KEEP_LOGS=1 keeps the scratch dir (server logs, wrk outputs).
set -euo pipefail

# shellcheck source=bench/http/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-64}"
CAIRN_HTTP_PORT="${CAIRN_HTTP_PORT:-18500}"
CAIRN_SERVER_PORT="${CAIRN_SERVER_PORT:-18300}"
NGINX_PORT="${NGINX_PORT:-18080}"
VALUE_BYTES="${VALUE_BYTES:-100}"

need wrk:wrk nginx:nginx curl:curl ss:iproute2
need_cairn
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

port_free 127.0.0.1 "$CAIRN_HTTP_PORT"
port_free 127.0.0.1 "$CAIRN_SERVER_PORT"
port_free 127.0.0.1 "$NGINX_PORT"

disk_tmpdir WORK
chmod 755 "$WORK" # nginx workers run as nobody when started by root
mkdir -p "$WORK/www" "$WORK/nginx-tmp"

CAIRN_URL="http://127.0.0.1:$CAIRN_HTTP_PORT/v1/kv/bench/key"
NGINX_URL="http://127.0.0.1:$NGINX_PORT/key"

# --- cairn -dev ---
start_cairn_dev "$WORK/cairn.log"

value="$(head -c "$VALUE_BYTES" /dev/zero | tr '\0' 'v')"
put="$(printf '%s' "$value" | curl_expect 200 -X PUT --data-binary @- "$CAIRN_URL")"
[ "$put" = true ] || die "PUT $CAIRN_URL answered '$put', expected 'true'"

ctype="$(curl -sS -o "$WORK/www/key" -w '%{http_code} %{content_type}' "$CAIRN_URL")"
[ "$ctype" = "200 application/json" ] || die "GET $CAIRN_URL answered '$ctype', expected '200 application/json'"
chmod 644 "$WORK/www/key"
log "cairn GET body: $(wc -c <"$WORK/www/key") bytes"

# --- nginx: 2 workers, access log off, keep-alive on, the same bytes as a static file ---
cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    server_tokens off;
    etag off;
    types { }
    default_type application/json;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        location / { }
    }
}
EOF
log "starting nginx (2 workers) on 127.0.0.1:$NGINX_PORT"
"$NGINX" -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
deadline=$((SECONDS + 10))
while [ "$SECONDS" -lt "$deadline" ]; do
    check_alive "$NGINX_PID" nginx "$WORK/nginx-error.log"
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$NGINX_URL" || true)" = 200 ] && break
    sleep 0.1
done
ctype="$(curl -sS -o "$WORK/nginx-body" -w '%{http_code} %{content_type}' "$NGINX_URL")"
[ "$ctype" = "200 application/json" ] || die "GET $NGINX_URL answered '$ctype', expected '200 application/json'"
cmp -s "$WORK/nginx-body" "$WORK/www/key" || die "nginx body differs from cairn's"

# --- alternate: cairn, nginx, cairn, nginx ... ---
cairn_rps=() nginx_rps=() cairn_p50=() nginx_p50=() cairn_p99=() nginx_p99=()
for r in $(seq "$ROUNDS"); do
    run_wrk "$WORK/wrk-cairn-$r" "-t$THREADS" "-c$CONNS" "-d$DURATION" --latency "$CAIRN_URL"
    check_alive "$CAIRN_PID" cairn "$WORK/cairn.log"
    cairn_rps+=("$(wrk_rps "$WORK/wrk-cairn-$r")")
    cairn_p50+=("$(wrk_pct "$WORK/wrk-cairn-$r" 50)")
    cairn_p99+=("$(wrk_pct "$WORK/wrk-cairn-$r" 99)")
    run_wrk "$WORK/wrk-nginx-$r" "-t$THREADS" "-c$CONNS" "-d$DURATION" --latency "$NGINX_URL"
    check_alive "$NGINX_PID" nginx "$WORK/nginx-error.log"
    nginx_rps+=("$(wrk_rps "$WORK/wrk-nginx-$r")")
    nginx_p50+=("$(wrk_pct "$WORK/wrk-nginx-$r" 50)")
    nginx_p99+=("$(wrk_pct "$WORK/wrk-nginx-$r" 99)")
    log "round $r: cairn ${cairn_rps[-1]} req/s, nginx ${nginx_rps[-1]} req/s"
done

# The body must not have changed under load.
curl -sS -o "$WORK/after" "$CAIRN_URL"
cmp -s "$WORK/after" "$WORK/www/key" || die "cairn's GET body changed during the run"

c="$(median "${cairn_rps[@]}")"
n="$(median "${nginx_rps[@]}")"
echo
echo "KV GET, wrk -t$THREADS -c$CONNS -d$DURATION, $(wc -c <"$WORK/www/key")-byte body, $(nproc) CPUs, $ROUNDS alternating rounds"
printf '%-8s %-28s %12s %10s %10s\n' server "req/s per round" "median req/s" "p50 us" "p99 us"
printf '%-8s %-28s %12s %10s %10s\n' cairn "${cairn_rps[*]}" "$c" "$(median "${cairn_p50[@]}")" "$(median "${cairn_p99[@]}")"
printf '%-8s %-28s %12s %10s %10s\n' nginx "${nginx_rps[*]}" "$n" "$(median "${nginx_p50[@]}")" "$(median "${nginx_p99[@]}")"
echo "ratio cairn/nginx (median req/s): $(ratio "$c" "$n")   (target >= 0.8)"
