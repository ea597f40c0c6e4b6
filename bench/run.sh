#!/usr/bin/env bash
# Tessera's HTTP load benchmark. Builds release binaries, starts the authorization server and
# the example resource server on random loopback ports, loads each scenario with wrk for a
# bounded time, and prints one table with ratios to an unauthenticated route of the same
# server measured in the same run. Stops everything it started.
#
#   bench/run.sh [--duration SECONDS] [--connections N] [--pinned]
#
# --pinned  runs the servers on CPU 0 and wrk on CPU 1 (taskset), for steadier ratios.
# Environment: BENCH_KEEP=1 keeps the work directory (logs) for inspection.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=10
connections=32
pinned=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --pinned) pinned=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
server_cpu=(); load_cpu=()
if [ "$pinned" = 1 ]; then server_cpu=(taskset -c 0); load_cpu=(taskset -c 1); fi

if ! command -v wrk >/dev/null; then
  echo "wrk is not installed; installing it from Debian's packages" >&2
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

echo "building release binaries..." >&2
(cd "$root" && cargo build --release -q -p tessera && cargo build --release -q -p tessera-guard --example resource_server)
tessera="$root/target/release/tessera"
resource_server="$root/target/release/examples/resource_server"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

export BENCH_LUA="$root/bench/lua"
data="$work/data"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_ready PID PORT: the process we started answers /healthz and owns the port.
wait_ready() {
  local pid=$1 port=$2
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      if ss -ltnpH "sport = :$port" | grep -q "pid=$pid,"; then return 0; fi
      echo "port $port answers but is not owned by pid $pid" >&2; return 1
    fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited; see $work" >&2; return 1; }
    sleep 0.1
  done
  echo "pid $pid did not become ready on port $port" >&2; return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
ticks_per_sec=$(getconf CLK_TCK)

rows=()
declare -A floor_rps floor_cpu_per_req

# measure LABEL PID FLOOR_KEY URL SCRIPT [CONNECTIONS] [THREADS]: one wrk run, one table row.
measure() {
  local label=$1 pid=$2 floor=$3 url=$4 script=$5 conns=${6:-$connections} threads=${7:-2}
  local before after out
  before=$(cpu_ticks "$pid")
  out=$("${load_cpu[@]}" wrk -t"$threads" -c"$conns" -d"${duration}s" -s "$BENCH_LUA/$script" "$url" 2>&1 | grep '^RESULT' || true)
  after=$(cpu_ticks "$pid")
  if [ -z "$out" ]; then rows+=("| $label | failed | | | | | |"); return; fi
  local requests dur p50 p99 non2xx
  requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$out")
  dur=$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$out")
  p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$out")
  p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$out")
  non2xx=$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$out")
  local row
  row=$(python3 - "$label" "$requests" "$dur" "$p50" "$p99" "$non2xx" "$((after - before))" "$ticks_per_sec" \
        "${floor_rps[$floor]:-}" "${floor_cpu_per_req[$floor]:-}" <<'PY'
import sys
label, req, dur, p50, p99, non2xx, ticks, hz, floor_rps, floor_cpu = sys.argv[1:]
req, dur, ticks, hz = int(req), int(dur), int(ticks), int(hz)
rps = req / (dur / 1e6)
cpu_s = ticks / hz
per_cpu = req / cpu_s if cpu_s > 0 else float("nan")
cpu_us = cpu_s * 1e6 / req if req else float("nan")
ratio = f"{rps / float(floor_rps):.2f}x" if floor_rps else "1.00x (floor)"
print(f"{rps:.0f} {cpu_us:.1f}")
print(f"| {label} | {rps:,.0f} | {int(p50)/1000:.2f} ms | {int(p99)/1000:.2f} ms | {ratio} | {per_cpu:,.0f} | {cpu_us:.1f} us |"
      + (f" {non2xx} refused |" if int(non2xx) else " |"))
PY
)
  if [ -z "${floor_rps[$floor]:-}" ]; then
    floor_rps[$floor]=$(head -1 <<<"$row" | cut -d' ' -f1)
    floor_cpu_per_req[$floor]=$(head -1 <<<"$row" | cut -d' ' -f2)
  fi
  rows+=("$(tail -1 <<<"$row")")
  echo "  measured: $label" >&2
}

# --- the authorization server -----------------------------------------------------------
as_port=$(free_port)
issuer="http://127.0.0.1:$as_port"
# Short key timings so the ES256 key added below starts signing within seconds.
printf 'jwks_cache_ttl_secs = 2\nkey_refresh_interval_secs = 1\n' >"$work/tessera.toml"
"${server_cpu[@]}" "$tessera" serve --data-dir "$data" --listen "127.0.0.1:$as_port" --issuer "$issuer" \
  --config "$work/tessera.toml" >"$work/tessera.log" 2>&1 &
as_pid=$!; pids+=("$as_pid")
wait_ready "$as_pid" "$as_port"
as_idle_rss=$(rss_kb "$as_pid" VmRSS)

cli() { "$tessera" "$@" --data-dir "$data" --config "$work/tessera.toml"; }
client_json=$(cli client add bench --grant-types client_credentials,password,refresh_token \
  --scope "notes:read notes:write" --audience notes-api --json)
client_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$client_json")
client_secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$client_json")
basic=$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)
printf 'correct horse battery staple\n' | cli user add alice --password-stdin >/dev/null

token_request() { curl -fsS -u "$client_id:$client_secret" -d "$1" "$issuer/token"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
access_token=$(token_request "grant_type=client_credentials&scope=notes:read" | json_field access_token)

# An ES256 signing key beside the EdDSA one, and a client whose tokens it signs.
cli keys rotate --alg ES256 >/dev/null
es_json=$(cli client add bench-es256 --grant-types client_credentials --scope notes:read \
  --audience notes-api --signing-alg ES256 --json 2>/dev/null)
es_id=$(json_field client_id <<<"$es_json")
es_secret=$(json_field client_secret <<<"$es_json")
es_token=""
for _ in $(seq 1 100); do
  t=$(curl -fsS -u "$es_id:$es_secret" -d grant_type=client_credentials "$issuer/token" | json_field access_token 2>/dev/null || true)
  if [ -n "$t" ] && [ "$(python3 -c 'import base64,json,sys; h=sys.argv[1].split(".")[0]; print(json.loads(base64.urlsafe_b64decode(h+"="*(-len(h)%4)))["alg"])' "$t")" = ES256 ]; then
    es_token=$t; break
  fi
  sleep 0.2
done
[ -n "$es_token" ] || { echo "the ES256 key never started signing; see $work/tessera.log" >&2; exit 1; }

# --- the resource servers: verified-token cache on, and off ------------------------------
rs_port=$(free_port)
"${server_cpu[@]}" "$resource_server" --issuer "$issuer" --audience notes-api --listen "127.0.0.1:$rs_port" \
  >"$work/rs.log" 2>&1 &
rs_pid=$!; pids+=("$rs_pid")
wait_ready "$rs_pid" "$rs_port"
rs_idle_rss=$(rss_kb "$rs_pid" VmRSS)

rs_cold_port=$(free_port)
"${server_cpu[@]}" "$resource_server" --issuer "$issuer" --audience notes-api --listen "127.0.0.1:$rs_cold_port" \
  --cache-capacity 0 >"$work/rs-cold.log" 2>&1 &
rs_cold_pid=$!; pids+=("$rs_cold_pid")
wait_ready "$rs_cold_pid" "$rs_cold_port"

# A token whose signature is wrong but well-formed: flip one character inside it.
bad_token=$(python3 - "$access_token" <<'PY'
import sys
t = sys.argv[1]; i = len(t) - 10
print(t[:i] + ("A" if t[i] != "A" else "B") + t[i + 1:])
PY
)

echo "loading for ${duration}s per row..." >&2
measure "floor: resource server GET /healthz" "$rs_pid" rs "http://127.0.0.1:$rs_port/healthz" report.lua
measure "floor: authorization server GET /healthz" "$as_pid" as "$issuer/healthz" report.lua
TOKEN=$access_token measure "protected GET /me, warm cache (EdDSA)" "$rs_pid" rs "http://127.0.0.1:$rs_port/me" get_bearer.lua
TOKEN=$access_token measure "protected GET /me, verify every request (EdDSA)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/me" get_bearer.lua
TOKEN=$es_token measure "protected GET /me, verify every request (ES256)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/me" get_bearer.lua
TOKEN=$bad_token measure "protected GET /me, invalid signature (401)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/me" get_bearer.lua
BODY="grant_type=client_credentials&scope=notes:read" BASIC=$basic \
  measure "client-credentials issuance (JWT, EdDSA)" "$as_pid" as "$issuer/token" post_form.lua

# Refresh rotation: one family per wrk thread, followed one request at a time.
refresh_tokens=""
for _ in 1 2 3 4; do
  rt=$(token_request "grant_type=password&username=alice&password=correct%20horse%20battery%20staple&scope=notes:read" | json_field refresh_token)
  refresh_tokens="$refresh_tokens $rt"
done
REFRESH_TOKENS=$refresh_tokens BASIC=$basic \
  measure "refresh rotation (SQLite)" "$as_pid" as "$issuer/token" refresh_chain.lua 4 4

rt=$(token_request "grant_type=password&username=alice&password=correct%20horse%20battery%20staple" | json_field refresh_token)
BODY="token=$rt&token_type_hint=refresh_token" BASIC=$basic \
  measure "introspection of an opaque token" "$as_pid" as "$issuer/introspect" post_form.lua

BODY="grant_type=password&username=alice&password=correct%20horse%20battery%20staple" BASIC=$basic \
  measure "password grant (Argon2id)" "$as_pid" as "$issuer/token" post_form.lua 8

# Login storm: saturate the password hasher, and meanwhile measure the cheap paths.
BODY="grant_type=password&username=alice&password=correct%20horse%20battery%20staple" BASIC=$basic \
  "${load_cpu[@]}" wrk -t1 -c16 -d"$((duration * 2 + 2))s" -s "$BENCH_LUA/post_form.lua" "$issuer/token" >/dev/null 2>&1 &
storm=$!
sleep 1
TOKEN=$access_token measure "during login storm: protected GET /me (cache off)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/me" get_bearer.lua
BODY="grant_type=client_credentials&scope=notes:read" BASIC=$basic \
  measure "during login storm: client-credentials issuance" "$as_pid" as "$issuer/token" post_form.lua
wait "$storm" || true

commit=$(cd "$root" && git rev-parse --short HEAD)$( cd "$root" && git diff --quiet || echo "+dirty")
echo
echo "Tessera load benchmark — commit $commit, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), ${duration}s per row, wrk -c$connections$( [ "$pinned" = 1 ] && echo ', pinned: servers on CPU 0, wrk on CPU 1')"
echo
echo "| operation | req/s | p50 | p99 | ratio to floor | req per server CPU-s | server CPU per req | |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "| server | idle RSS | peak RSS |"
echo "|---|---|---|"
echo "| authorization server | $((as_idle_rss / 1024)) MB | $(( $(rss_kb "$as_pid" VmHWM) / 1024 )) MB |"
echo "| resource server (cache on) | $((rs_idle_rss / 1024)) MB | $(( $(rss_kb "$rs_pid" VmHWM) / 1024 )) MB |"
echo "| resource server (cache off) | | $(( $(rss_kb "$rs_cold_pid" VmHWM) / 1024 )) MB |"
