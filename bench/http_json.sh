#!/usr/bin/env bash
# http_json.sh: HTTP throughput and latency of GET /json, our examples/hello_json
# against a bare libevent evhttp server (bench/http_raw), measured in the same run.
#
#   http_json.sh [RAW [OURS [DOC]]]   run from the build directory
#     RAW   baseline binary  (or $BENCH_RAW;  default ./bench/http_raw)
#     OURS  our server       (or $BENCH_OURS; default ./examples/hello_json)
#     DOC   the gzip figure's server (or $BENCH_DOC; default ./bench/http_doc)
#   env: BENCH_THREADS (server threads, 1)  BENCH_CONNS (64)  BENCH_SECONDS (5)
#        BENCH_ROUNDS (2)
#
# Both servers run with the same threads on 127.0.0.1 (started as
# `BIN --port P --threads T --access-log=off`) and are checked once with curl
# (200 and the exact body). Each gets a 1 s wrk warm-up, then runs of
# `wrk -t1 -cCONNS -dSECONDSs --latency` alternate raw, ours, raw, ours, ...
# Figures: the best requests/s of each, and the MEDIAN over the rounds of the
# p50 and of the p99 latency (in microseconds). Ends with:
#   BENCH http_json_rps ours=<req/s> base=<req/s> unit=req/s ratio=<ours/base>
#   BENCH http_json_p50 ours=<us> base=<us> unit=us ratio=<ours/base>
#   BENCH http_json_p99 ours=<us> base=<us> unit=us ratio=<ours/base>
# and the cost of gzip: GET /doc, a 20 KB JSON document, from DOC with gzip on
# (ours) and off (base), both asked with Accept-Encoding: gzip, in the same
# alternating rounds (the bytes each answer carries are printed beside it):
#   BENCH http_json_gzip_20k ours=<req/s> base=<req/s> unit=req/s ratio=<ours/base>
# and GET /json over TLS (keep-alive): OURS with --threads 2 beside nginx
# (nginx-light, 2 workers, `return 200` of the same body, access log off,
# keepalive_requests high enough that no connection is handshaken twice), the
# same certificate and key (P-256), TLS 1.3, the same cipher (checked), wrk -t2:
#   BENCH http_json_tls_vs_nginx ours=<req/s> base=<req/s> unit=req/s ratio=<ours/base>
#
# SPDX-License-Identifier: MIT
set -euo pipefail

raw=${1:-${BENCH_RAW:-./bench/http_raw}}
ours=${2:-${BENCH_OURS:-./examples/hello_json}}
doc=${3:-${BENCH_DOC:-./bench/http_doc}}
threads=${BENCH_THREADS:-1}
conns=${BENCH_CONNS:-64}
seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-2}
want='{"message":"Hello, World!"}'

die() { echo "http_json: $*" >&2; exit 1; }
for tool in wrk curl ss awk openssl; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
[ -n "$nginx" ] || die "nginx is not installed (Debian package nginx-light)"
for bin in "$raw" "$ours" "$doc"; do
    [ -x "$bin" ] || die "$bin is not an executable"
done

# shellcheck source=bench/wrk.sh
. "$(dirname "$0")/wrk.sh"

# start NAME BIN: BIN on a free port, serving GET /json.
start() {
    local p
    p=$(free_port)
    serve "$1" "$p" "http://127.0.0.1:$p/json" "$want" "$2" --port "$p" --threads "$threads" --access-log=off
}

# start_doc NAME [--gzip]: DOC on a free port, serving GET /doc.
start_doc() {
    local name=$1 p
    shift
    p=$(free_port)
    serve "$name" "$p" "http://127.0.0.1:$p/doc" "" "$doc" --port "$p" --threads "$threads" "$@"
}

echo "http_json: $threads server thread(s), wrk -t1 -c$conns -d${seconds}s, $rounds rounds;" \
    "best req/s, median p50/p99"
start raw "$raw"
start ours "$ours"
for name in raw ours; do
    wrk -t1 -c"$conns" -d1s "http://127.0.0.1:${port[$name]}/json" >/dev/null ||
        die "wrk warm-up failed against $name"
done
for _ in $(seq "$rounds"); do
    measure raw
    measure ours
done

report http_json_rps "$(figure ours 1 best)" "$(figure raw 1 best)" req/s
report http_json_p50 "$(figure ours 2 median)" "$(figure raw 2 median)" us
report http_json_p99 "$(figure ours 3 median)" "$(figure raw 3 median)" us

# The cost of gzip on a 20 KB JSON answer.
start_doc doc_id
start_doc doc_gz --gzip
for name in doc_id doc_gz; do
    bytes=$(curl -s -H 'Accept-Encoding: gzip' -o "$tmp/$name.body" -w '%{size_download}' \
        -D "$tmp/$name.head" "http://127.0.0.1:${port[$name]}/doc") || die "curl failed against $name"
    enc=$(tr -d '\r' <"$tmp/$name.head" | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
    echo "  $name: $bytes bytes per answer${enc:+ ($enc)}"
    wrk -t1 -c"$conns" -d1s -H 'Accept-Encoding: gzip' "http://127.0.0.1:${port[$name]}/doc" >/dev/null ||
        die "wrk warm-up failed against $name"
done
grep -qi '^content-encoding: gzip' "$tmp/doc_gz.head" || die "doc_gz did not gzip its answer"
if grep -qi '^content-encoding' "$tmp/doc_id.head"; then die "doc_id encoded its answer"; fi
for _ in $(seq "$rounds"); do
    measure doc_id /doc 'Accept-Encoding: gzip'
    measure doc_gz /doc 'Accept-Encoding: gzip'
done
report http_json_gzip_20k "$(figure doc_gz 1 best)" "$(figure doc_id 1 best)" req/s

# GET /json over TLS: ours and nginx, 2 threads each, one certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
    -out "$tmp/cert.pem" -days 2 -subj /CN=localhost >/dev/null 2>&1 || die "openssl req failed"
p=$(free_port)
serve ours_tls "$p" "https://127.0.0.1:$p/json" "$want" "$ours" --port "$p" --threads 2 --access-log=off \
    --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
p=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/nginx_tls.err;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$p ssl;
        ssl_certificate $tmp/cert.pem;
        ssl_certificate_key $tmp/key.pem;
        ssl_protocols TLSv1.3;
        location = /json {
            default_type application/json;
            return 200 '$want';
        }
    }
}
CONF
serve nginx_tls "$p" "https://127.0.0.1:$p/json" "$want" "$nginx" -p "$tmp/nginx" -c "$tmp/nginx.conf" \
    -g 'daemon off;'
for name in ours_tls nginx_tls; do
    echo | openssl s_client -connect "127.0.0.1:${port[$name]}" 2>/dev/null >"$tmp/$name.tls" || true
    awk '/^New, / { print $2, $NF }' "$tmp/$name.tls" >"$tmp/$name.cipher"
    echo "  $name: $(cat "$tmp/$name.cipher")"
done
cmp -s "$tmp/ours_tls.cipher" "$tmp/nginx_tls.cipher" || die "the two servers chose different ciphers"
grep -q TLSv1.3 "$tmp/ours_tls.cipher" || die "ours did not speak TLS 1.3"
wrk_threads=2
scheme=https
for name in ours_tls nginx_tls; do
    wrk -t2 -c"$conns" -d1s "https://127.0.0.1:${port[$name]}/json" >/dev/null ||
        die "wrk warm-up failed against $name"
done
for _ in $(seq "$rounds"); do
    measure nginx_tls
    measure ours_tls
done
report http_json_tls_vs_nginx "$(figure ours_tls 1 best)" "$(figure nginx_tls 1 best)" req/s
