#!/usr/bin/env bash
# HTTP throughput of `feedsmith serve` against nginx serving the same feeds exported as static
# files (gzip_static), on loopback, with wrk.
#
# Cases, each against the global feed (/rss.xml) and one tag feed, on both servers:
#   plain  200, no Accept-Encoding            (identity body)
#   gzip   200, Accept-Encoding: gzip         (precomputed .gz body)
#   304    Accept-Encoding: gzip + If-None-Match: <the gzip ETag that server returned>
#
# Usage: bench/serve.sh [options]
#   --corpus N       serve a generated corpus of N posts instead of the sample content/
#   --tags T         tag vocabulary of the generated corpus (default 200)
#   --tag NAME       tag feed to hit (default: the tag feed with the largest rss.xml)
#   --duration S     wrk duration per measurement in seconds (default 10)
#   --warmup S       wrk warm-up per server and URL in seconds (default 2; 0 = none)
#   --threads T      wrk threads (default 2)
#   --connections C  wrk connections (default 64)
#   --runs R         measurements per cell; the table shows the median (default 1)
#   --port P         feedsmith port (default 28480); nginx uses P+1
#   --no-build       do not run `cargo build --release` (use the existing binary)
#   --keep           keep the temp dir (export, configs, logs)
# Environment: CARGO_TARGET_DIR (where the release binary is), WRK, NGINX, CURL.
#
# Everything talks to 127.0.0.1 only. Both servers are stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WRK=${WRK:-wrk}
NGINX=${NGINX:-nginx}
CURL=${CURL:-curl}
GEN="$ROOT/../shared/bench/gen-corpus.py"

corpus=""
tags=200
tag=""
duration=10
warmup=2
threads=2
connections=64
runs=1
port=28480
build=1
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --corpus) corpus=$2; shift 2 ;;
        --tags) tags=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done
nginx_port=$((port + 1))
HOST=127.0.0.1

for tool in "$WRK" "$NGINX" "$CURL" python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done

log() { printf '[serve.sh] %s\n' "$*" >&2; }
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

WORK=$(mktemp -d /tmp/feedsmith-serve-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers may run as an unprivileged user
FS_PID=""
NGINX_PID=""
cleanup() {
    local rc=$?
    set +e
    [[ -n "$FS_PID" ]] && kill "$FS_PID" 2>/dev/null && wait "$FS_PID" 2>/dev/null
    [[ -n "$NGINX_PID" ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    if [[ $keep -eq 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in "$port" "$nginx_port"; do
    if "$CURL" -s -o /dev/null --max-time 1 "http://$HOST:$p/"; then
        echo "port $p on $HOST is already in use (use --port)" >&2
        exit 2
    fi
done

# ---- build ---------------------------------------------------------------------------------
if [[ $build -eq 1 ]]; then
    log "cargo build --release (target dir $TARGET)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet)
fi
BIN="$TARGET/release/feedsmith"
[[ -x "$BIN" ]] || { echo "no binary at $BIN (build first or set CARGO_TARGET_DIR)" >&2; exit 2; }

# ---- content and config --------------------------------------------------------------------
if [[ -n "$corpus" ]]; then
    [[ -f "$GEN" ]] || { echo "missing $GEN" >&2; exit 2; }
    log "generating $corpus posts, $tags tags"
    python3 "$GEN" --posts "$corpus" --tags "$tags" --seed 1 --out "$WORK/corpus" 2>"$WORK/gen.log"
    # The sample config with the content dir pointed at the corpus.
    awk -v dir="$WORK/corpus" '
        /^\[/ { section = $0 }
        section == "[content]" && /^dir *=/ { print "dir = \"" dir "\""; next }
        { print }' "$ROOT/config.toml" >"$WORK/config.toml"
    CONFIG="$WORK/config.toml"
    content_desc="generated corpus: $corpus posts, $tags tags (gen-corpus.py --seed 1)"
else
    CONFIG="$ROOT/config.toml"
    content_desc="sample content/ ($(find "$ROOT/content" -name '*.md' | wc -l) posts)"
fi

EXPORT="$WORK/export"
log "feedsmith export --out $EXPORT"
(cd "$ROOT" && "$BIN" --config "$CONFIG" export --out "$EXPORT") >"$WORK/export.log" 2>&1 || {
    rc=$?
    # Exit code 1 = some posts skipped; still usable.
    [[ $rc -eq 1 ]] || { cat "$WORK/export.log" >&2; exit 2; }
}
tail -n 1 "$WORK/export.log" >&2

# Tag feed: the one given, or the one with the largest rss.xml.
if [[ -n "$tag" ]]; then
    tag_dir="tags/$tag"
else
    tag_dir=$(cd "$EXPORT" && find tags -mindepth 2 -maxdepth 2 -name rss.xml -printf '%s %h\n' 2>/dev/null |
        sort -k1,1nr -k2 | head -n 1 | cut -d' ' -f2-)
fi
[[ -n "$tag_dir" && -f "$EXPORT/$tag_dir/rss.xml" ]] || { echo "no tag feed found (${tag_dir:-none})" >&2; exit 2; }
tag_path=$(python3 -c 'import sys, urllib.parse; print("/" + urllib.parse.quote(sys.argv[1]) + "/rss.xml")' "$tag_dir")
PATHS=("/rss.xml" "$tag_path")

# ---- feedsmith -----------------------------------------------------------------------------
# Polls URL every 0.1 s (at most TRIES times) until it answers; exits with the server's log if
# the server process dies first.
wait_up() { # url pid log tries
    for _ in $(seq 1 "$4"); do
        "$CURL" -s -o /dev/null --max-time 1 "$1" && return 0
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 2; }
        sleep 0.1
    done
}

log "starting feedsmith serve on $HOST:$port"
(cd "$ROOT" && exec env RUST_LOG=info "$BIN" --config "$CONFIG" serve --bind "$HOST:$port") \
    >"$WORK/feedsmith.out" 2>"$WORK/feedsmith.err" &
FS_PID=$!
wait_up "http://$HOST:$port/healthz" "$FS_PID" "$WORK/feedsmith.err" 600
# actix-server logs "starting N workers" (default: one per available CPU).
workers=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/feedsmith.err" | grep -o 'starting [0-9]* workers' | grep -o '[0-9]*' | head -n 1 || true)
workers=${workers:-$(nproc)}
log "feedsmith pid $FS_PID, $workers workers"

# ---- nginx ---------------------------------------------------------------------------------
NG="$WORK/nginx"
mkdir -p "$NG/tmp"
cache_control=$(sed -n 's/^cache_control *= *"\(.*\)"/\1/p' "$CONFIG" | head -n 1)
cache_control=${cache_control:-public, max-age=300, stale-while-revalidate=3600}
cat >"$NG/nginx.conf" <<EOF
# Written by bench/serve.sh; same worker count as feedsmith (actix: one per CPU).
worker_processes $workers;
daemon off;
master_process on;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    # feedsmith (actix) does not cap requests per connection; nginx's default is 1000.
    keepalive_requests 1000000;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    server_tokens off;
    etag on;
    gzip off;
    gzip_static on;
    gzip_vary on;
    server {
        listen $HOST:$nginx_port;
        root $EXPORT;
        index index.html;
        # Same Cache-Control as feedsmith sends.
        add_header Cache-Control "$cache_control";
        location ~ /rss\.xml\$ { types { } default_type "application/rss+xml; charset=utf-8"; }
        location ~ /atom\.xml\$ { types { } default_type "application/atom+xml; charset=utf-8"; }
        location ~ \.json\$ { types { } default_type "application/feed+json; charset=utf-8"; }
        location ~ \.opml\$ { types { } default_type "text/x-opml; charset=utf-8"; }
        location / { types { text/html html; } default_type "text/html; charset=utf-8"; }
    }
}
EOF
log "starting nginx on $HOST:$nginx_port ($workers workers)"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" &
NGINX_PID=$!
wait_up "http://$HOST:$nginx_port/" "$NGINX_PID" "$NG/error.log" 100

# ---- checks: same bytes, right headers, ETags ----------------------------------------------
declare -A ETAG
check() { # server port path
    local server=$1 p=$2 path=$3 url="http://$HOST:$2$3"
    local plain gz
    plain=$("$CURL" -s -D "$WORK/h" -o "$WORK/b.$server" -w '%{http_code} %{size_download}' "$url")
    [[ $plain == 200\ * ]] || { echo "$server $path: plain GET gave $plain" >&2; exit 2; }
    cmp -s "$WORK/b.$server" "$EXPORT$(python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))' "$path")" ||
        { echo "$server $path: body differs from the exported file" >&2; exit 2; }
    gz=$("$CURL" -s -D "$WORK/hg" -o /dev/null -H 'Accept-Encoding: gzip' -w '%{http_code} %{size_download}' "$url")
    grep -qi '^content-encoding: *gzip' "$WORK/hg" || { echo "$server $path: no gzip body" >&2; exit 2; }
    local etag
    etag=$(grep -i '^etag:' "$WORK/hg" | head -n 1 | cut -d' ' -f2- | tr -d '\r')
    [[ -n "$etag" ]] || { echo "$server $path: no ETag" >&2; exit 2; }
    ETAG[$server$path]=$etag
    local nm
    nm=$("$CURL" -s -o /dev/null -H 'Accept-Encoding: gzip' -H "If-None-Match: $etag" -w '%{http_code}' "$url")
    [[ $nm == 304 ]] || { echo "$server $path: If-None-Match $etag gave $nm, not 304" >&2; exit 2; }
    SIZE[$path:plain]=${plain#* }
    SIZE[$path:gzip]=${gz#* }
    log "$server $path: identity ${plain#* } B, gzip ${gz#* } B, ETag(gzip) $etag"
}
declare -A SIZE
for path in "${PATHS[@]}"; do
    check feedsmith "$port" "$path"
    check nginx "$nginx_port" "$path"
done

# ---- wrk -----------------------------------------------------------------------------------
# Prints "req_per_s p99_ms non2xx3xx errors".
run_wrk() { # secs url headers...
    local secs=$1 url=$2; shift 2
    local args=()
    for h in "$@"; do args+=(-H "$h"); done
    local out
    out=$("$WRK" -t"$threads" -c"$connections" -d"${secs}s" --latency "${args[@]}" "$url")
    echo "$out" >>"$WORK/wrk.log"
    local rps p99 bad errs
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
    errs=$(awk '/Socket errors:/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out")
    echo "${rps:-0} ${p99:-0} ${bad:-0} ${errs:-0}"
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# " (min–max)" of numbers on stdin with printf format $1; empty for a single value.
range() { sort -g | awk -v f="$1" '{a[NR]=$1} END {if (NR > 1) printf " (" f "–" f ")", a[1], a[NR]}'; }

CASES=(plain gzip 304)
headers_for() { # case server path
    case "$1" in
        plain) ;;
        gzip) echo "Accept-Encoding: gzip" ;;
        304) echo "Accept-Encoding: gzip"; echo "If-None-Match: ${ETAG[$2$3]}" ;;
    esac
}

declare -A RPS P99 RPS_RANGE P99_RANGE
problems=0
total=$(( ${#PATHS[@]} * ${#CASES[@]} * 2 * runs ))
n=0
for path in "${PATHS[@]}"; do
    if [[ $warmup != 0 ]]; then
        for server in feedsmith nginx; do
            p=$port; [[ $server == nginx ]] && p=$nginx_port
            run_wrk "$warmup" "http://$HOST:$p$path" "Accept-Encoding: gzip" >/dev/null
        done
    fi
    for c in "${CASES[@]}"; do
        for server in feedsmith nginx; do
            p=$port; [[ $server == nginx ]] && p=$nginx_port
            mapfile -t hdrs < <(headers_for "$c" "$server" "$path")
            : >"$WORK/cell"
            for _ in $(seq 1 "$runs"); do
                n=$((n + 1))
                log "($n/$total) $server $c $path"
                read -r rps p99 bad errs < <(run_wrk "$duration" "http://$HOST:$p$path" "${hdrs[@]}")
                if [[ $bad != 0 || $errs != 0 ]]; then
                    log "WARNING: $server $c $path: $bad non-2xx/3xx responses, $errs socket errors"
                    problems=$((problems + 1))
                fi
                echo "$rps $p99" >>"$WORK/cell"
            done
            RPS[$server:$c:$path]=$(cut -d' ' -f1 "$WORK/cell" | median)
            P99[$server:$c:$path]=$(cut -d' ' -f2 "$WORK/cell" | median)
            RPS_RANGE[$server:$c:$path]=$(cut -d' ' -f1 "$WORK/cell" | range "%.0f")
            P99_RANGE[$server:$c:$path]=$(cut -d' ' -f2 "$WORK/cell" | range "%.2f")
            log "  runs (req/s p99_ms): $(tr '\n' ',' <"$WORK/cell" | sed 's/,$//; s/,/; /g')"
        done
    done
done

# ---- report --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt_rps() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
fmt_ms() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }

echo
echo "### feedsmith serve vs nginx (gzip_static) — $content_desc"
echo
echo "wrk -t$threads -c$connections -d${duration}s --latency, ${runs} run(s) per cell: median (min–max), $warmup s warm-up;"
echo "both servers $workers worker(s); $(nproc) CPUs shared with wrk; loopback ($HOST)."
echo "load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg) (wrk and both servers included)."
echo
echo "| feed | case | bytes | feedsmith req/s | nginx req/s | req/s ratio fs/nginx | feedsmith p99 ms | nginx p99 ms | p99 ratio fs/nginx |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for path in "${PATHS[@]}"; do
    shown=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))' "$path")
    for c in "${CASES[@]}"; do
        case $c in plain) bytes=${SIZE[$path:plain]} ;; gzip) bytes=${SIZE[$path:gzip]} ;; 304) bytes=0 ;; esac
        label=$c; [[ $c == 304 ]] && label="304 (gzip ETag)"
        fr=${RPS[feedsmith:$c:$path]} nr=${RPS[nginx:$c:$path]}
        fp=${P99[feedsmith:$c:$path]} np=${P99[nginx:$c:$path]}
        k=$c:$path
        echo "| \`$shown\` | $label | $bytes | $(fmt_rps "$fr")${RPS_RANGE[feedsmith:$k]} | $(fmt_rps "$nr")${RPS_RANGE[nginx:$k]} | $(ratio "$fr" "$nr") | $(fmt_ms "$fp")${P99_RANGE[feedsmith:$k]} | $(fmt_ms "$np")${P99_RANGE[nginx:$k]} | $(ratio "$fp" "$np") |"
    done
done
echo
if [[ $problems -ne 0 ]]; then
    echo "WARNING: $problems measurement(s) had non-2xx/3xx responses or socket errors (see wrk output)."
fi
fs_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$FS_PID/status" 2>/dev/null || echo "?")
echo "feedsmith VmRSS after the run: ${fs_rss} kB"
