#!/usr/bin/env bash
# Tessera's HTTP load benchmark. Builds release binaries, starts the authorization server and
# the example resource server on random loopback ports, loads each scenario with wrk for a
# bounded time, and prints one table with ratios to an unauthenticated route of the same
# server measured in the same run, and a verdict against the performance budget (issue 7).
# Also runs refresh rotation against a throwaway PostgreSQL cluster it creates (initdb) and
# removes. Stops everything it started, by PID.
#
#   bench/run.sh [--duration SECONDS] [--connections N] [--pinned | --colocated]
#
# --pinned     runs the servers on CPU 0 and wrk on CPU 1 (taskset), for steadier ratios.
# --colocated  runs the servers and wrk on CPU 0: no request or response crosses CPUs, so
#              no inter-processor interrupt wakes the other side (on a virtual machine
#              each costs the sender several microseconds; see docs/benchmarks.md).
# Environment: BENCH_KEEP=1 keeps the work directory (logs) for inspection; BENCH_NO_PG=1
# skips the PostgreSQL row; CARGO_TARGET_DIR is honoured.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=10
connections=32
placement=shared
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --pinned) placement=pinned; shift ;;
    --colocated) placement=colocated; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed -E 's/^# ?//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
server_cpu=(); load_cpu=()
case "$placement" in
  pinned) server_cpu=(taskset -c 0); load_cpu=(taskset -c 1) ;;
  colocated) server_cpu=(taskset -c 0); load_cpu=(taskset -c 0) ;;
esac

if ! command -v wrk >/dev/null; then
  echo "wrk is not installed; installing it from Debian's packages" >&2
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "building release binaries..." >&2
(cd "$root" && cargo build --release -q -p tessera \
  && cargo build --release -q -p tessera-guard --example resource_server --example raw_verify \
    --example dpop_proofs)
target_dir=${CARGO_TARGET_DIR:-$root/target}
tessera="$target_dir/release/tessera"
resource_server="$target_dir/release/examples/resource_server"
raw_verify="$target_dir/release/examples/raw_verify"
dpop_proofs="$target_dir/release/examples/dpop_proofs"

work=$(mktemp -d)
chmod 755 "$work"
pids=()
pg_pid=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_pid" ]; then
    # SIGINT is PostgreSQL's "fast shutdown"; wait for the postmaster to go.
    kill -INT "$pg_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
  fi
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

# CPU ticks used by PID and its children (PostgreSQL's backends), living or reaped:
# "USER SYSTEM" (utime + cutime, stime + cstime).
cpu_ticks() {
  local user=0 sys=0 pid u s
  for pid in "$1" $(pgrep -P "$1" || true); do
    read -r u s < <(awk '{print $14 + $16, $15 + $17}' "/proc/$pid/stat" 2>/dev/null || echo "0 0")
    user=$((user + u)); sys=$((sys + s))
  done
  echo "$user $sys"
}
# Inter-processor interrupts so far, all CPUs: function-call (a wake-up of a thread on an
# idle CPU) and rescheduling interrupts.
ipis() { awk '$1 == "CAL:" || $1 == "RES:" { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }' /proc/interrupts; }
rss_kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
ticks_per_sec=$(getconf CLK_TCK)
results="$work/results.tsv"
: >"$results"

# measure KEY LABEL PIDS FLOOR_KEY URL SCRIPT [CONNECTIONS] [THREADS]: one wrk run, one
# table row. PIDS: the server process(es) whose CPU time the row charges, comma-separated.
measure() {
  local key=$1 label=$2 pids_csv=$3 floor=$4 url=$5 script=$6 conns=${7:-$connections} threads=${8:-2}
  local user0=0 sys0=0 user1=0 sys1=0 u s out pid ipi0 ipi1
  ipi0=$(ipis)
  for pid in ${pids_csv//,/ }; do read -r u s < <(cpu_ticks "$pid"); user0=$((user0 + u)); sys0=$((sys0 + s)); done
  out=$("${load_cpu[@]}" wrk -t"$threads" -c"$conns" -d"${duration}s" -s "$BENCH_LUA/$script" "$url" 2>&1 | grep '^RESULT' || true)
  for pid in ${pids_csv//,/ }; do read -r u s < <(cpu_ticks "$pid"); user1=$((user1 + u)); sys1=$((sys1 + s)); done
  ipi1=$(ipis)
  if [ -z "$out" ]; then
    printf '%s\t%s\tfailed\n' "$key" "$label" >>"$results"; return
  fi
  field() { sed -E "s/.*$1=([0-9]+).*/\1/" <<<"$out"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$label" "$(field requests)" "$(field duration_us)" \
    "$(field p50_us)" "$(field p99_us)" "$(field non2xx)" "$((user1 - user0))" "$((sys1 - sys0))" "$ticks_per_sec" "$((ipi1 - ipi0))" "$floor" >>"$results"
  echo "  measured: $label" >&2
}

# --- the raw signature-verify floor, on the servers' CPU ----------------------------------
raw=$("${server_cpu[@]}" "$raw_verify" 2)
raw_eddsa=$(sed -nE 's/^RAW alg=EdDSA cpu_us=([0-9.]+)$/\1/p' <<<"$raw")
raw_es256=$(sed -nE 's/^RAW alg=ES256 cpu_us=([0-9.]+)$/\1/p' <<<"$raw")
raw_sign=$(sed -nE 's/^RAW sign alg=EdDSA cpu_us=([0-9.]+)$/\1/p' <<<"$raw")
raw_sha=$(sed -nE 's/^RAW sha256 bytes=[0-9]+ cpu_us=([0-9.]+)$/\1/p' <<<"$raw")

# --- the authorization server -----------------------------------------------------------
as_port=$(free_port)
issuer="http://127.0.0.1:$as_port"
# Short key timings so the ES256 key added below starts signing within seconds.
# wrk is one source on loopback: lift the per-source connection cap and the per-network
# share of the hash queue, and the login throttle (the storm signs one account in, many at
# once), so the rows measure the work rather than the refusals.
printf 'jwks_cache_ttl_secs = 2\nkey_refresh_interval_secs = 1\nmax_connections_per_ip = 4096\npassword_hash_queue = 10000\nlogin_failures_per_account = 100000\nlogin_failures_per_ip = 100000\n' >"$work/tessera.toml"
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
  --cache-capacity 0 --bench-control >"$work/rs-cold.log" 2>&1 &
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
measure floor_rs "floor: resource server GET /healthz" "$rs_pid" rs "http://127.0.0.1:$rs_port/healthz" report.lua
measure floor_as "floor: authorization server GET /healthz" "$as_pid" as "$issuer/healthz" report.lua
TOKEN=$access_token measure header "floor with the bearer header (GET /healthz, token not checked)" "$rs_pid" rs "http://127.0.0.1:$rs_port/healthz" get_bearer.lua
TOKEN=$access_token measure warm "protected GET /ping, warm cache (EdDSA)" "$rs_pid" rs "http://127.0.0.1:$rs_port/ping" get_bearer.lua
TOKEN=$access_token measure warm_me "protected GET /me (JSON of the claims), warm cache" "$rs_pid" rs "http://127.0.0.1:$rs_port/me" get_bearer.lua
TOKEN=$access_token measure cold_eddsa "protected GET /ping, verify every request (EdDSA)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/ping" get_bearer.lua
TOKEN=$es_token measure cold_es256 "protected GET /ping, verify every request (ES256)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/ping" get_bearer.lua
TOKEN=$bad_token measure invalid "protected GET /ping, invalid signature (401)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/ping" get_bearer.lua
measure control_eddsa "control: raw EdDSA verify in an unguarded handler" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/bench/raw-eddsa" report.lua
measure control_es256 "control: raw ES256 verify in an unguarded handler" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/bench/raw-es256" report.lua
BODY="grant_type=client_credentials&scope=notes:read" BASIC=$basic \
  measure cc "client-credentials issuance (JWT, EdDSA)" "$as_pid" as "$issuer/token" post_form.lua

# --- DPoP (RFC 9449): one fresh proof per request, signed ahead (wrk cannot sign) --------
# A DPoP request costs the server at least one raw EdDSA verification (the proof's), so a
# row of D seconds on C server CPUs spends at most D * C * 1e6 / raw proofs: write twice
# that, capped at 600,000. Proofs are written right before their row (iat = now; the
# guard and the server accept iat up to 65 s old, so rows up to ~30 s keep them fresh).
server_cpus=$(if [ "$placement" = shared ]; then nproc; else echo 1; fi)
proof_count=$(python3 -c "print(max(1000, min(600000, int(2 * $duration * $server_cpus * 1e6 / $raw_eddsa))))")
dpop_key="$work/dpop-key.pem"
# proofs NAME HTM HTU COUNT FILES [ACCESS_TOKEN]: writes $work/NAME.0 .. NAME.<FILES-1>.
proofs() {
  DPOP_ACCESS_TOKEN=${6:-} "$dpop_proofs" --key "$dpop_key" --htm "$2" --htu "$3" --count "$4" \
    --out "$work/$1" --files "$5" >/dev/null
}
# A DPoP-bound token for the resource server: client credentials with a proof.
proofs bind POST "$issuer/token" 1 1
dpop_token=$(curl -fsS -u "$client_id:$client_secret" -H "DPoP: $(cat "$work/bind.0")" \
  -d "grant_type=client_credentials&scope=notes:read" "$issuer/token" | json_field access_token)
# The guard's replay cache holds a proof ~66 s and gives one key a quarter of it (100,000
# by default): these resource servers are sized for the row's proofs, so the rows measure
# the work, not the cache's refusals (503). The default is what a deployment runs.
replay_capacity=$((4 * proof_count + 1000))
rs_dpop_port=$(free_port)
"${server_cpu[@]}" "$resource_server" --issuer "$issuer" --audience notes-api --listen "127.0.0.1:$rs_dpop_port" \
  --dpop-replay-capacity "$replay_capacity" >"$work/rs-dpop.log" 2>&1 &
rs_dpop_pid=$!; pids+=("$rs_dpop_pid")
rs_dpop_cold_port=$(free_port)
"${server_cpu[@]}" "$resource_server" --issuer "$issuer" --audience notes-api --listen "127.0.0.1:$rs_dpop_cold_port" \
  --cache-capacity 0 --dpop-replay-capacity "$replay_capacity" >"$work/rs-dpop-cold.log" 2>&1 &
rs_dpop_cold_pid=$!; pids+=("$rs_dpop_cold_pid")
wait_ready "$rs_dpop_pid" "$rs_dpop_port"
wait_ready "$rs_dpop_cold_pid" "$rs_dpop_cold_port"
# The row's setup must work before it is measured: one proof, one 200 (this also puts
# the token in the warm server's cache).
for port in "$rs_dpop_port" "$rs_dpop_cold_port"; do
  proofs check GET "http://127.0.0.1:$port/ping" 1 1 "$dpop_token"
  curl -fsS -o /dev/null -H "Authorization: DPoP $dpop_token" -H "DPoP: $(cat "$work/check.0")" \
    "http://127.0.0.1:$port/ping" || { echo "the DPoP setup is refused on port $port; see $work" >&2; exit 1; }
done
proofs dpop_warm GET "http://127.0.0.1:$rs_dpop_port/ping" "$proof_count" 2 "$dpop_token"
PROOFS="$work/dpop_warm" TOKEN=$dpop_token \
  measure dpop_warm "protected GET /ping, DPoP-bound token + proof, warm cache (EdDSA)" "$rs_dpop_pid" rs \
  "http://127.0.0.1:$rs_dpop_port/ping" dpop.lua
rm -f "$work"/dpop_warm.*
proofs dpop_cold GET "http://127.0.0.1:$rs_dpop_cold_port/ping" "$proof_count" 2 "$dpop_token"
PROOFS="$work/dpop_cold" TOKEN=$dpop_token \
  measure dpop_cold "protected GET /ping, DPoP-bound token + proof, verify every request (EdDSA)" "$rs_dpop_cold_pid" rs \
  "http://127.0.0.1:$rs_dpop_cold_port/ping" dpop.lua
rm -f "$work"/dpop_cold.*
# Client credentials with a proof: the server's replay cache (100,000 proofs a node, half
# for one client) is not configurable, so the row spreads its proofs over two clients
# (one per wrk thread) and stays under each one's share.
dpop_basics=""
for name in bench-dpop-a bench-dpop-b; do
  j=$(cli client add "$name" --grant-types client_credentials --scope notes:read --audience notes-api --json)
  dpop_basics="$dpop_basics $(printf '%s:%s' "$(json_field client_id <<<"$j")" "$(json_field client_secret <<<"$j")" | base64 -w0)"
done
cc_proofs=$(( proof_count < 90000 ? proof_count : 90000 ))
proofs dpop_cc POST "$issuer/token" "$cc_proofs" 2
PROOFS="$work/dpop_cc" METHOD=POST BODY="grant_type=client_credentials&scope=notes:read" BASIC=$dpop_basics \
  measure dpop_cc "client-credentials issuance with a DPoP proof (bound JWT, EdDSA)" "$as_pid" as "$issuer/token" dpop.lua
rm -f "$work"/dpop_cc.*
rs_dpop_peak=$(rss_kb "$rs_dpop_pid" VmHWM)

# Refresh rotation: one family per wrk thread, followed one request at a time.
refresh_tokens=""
for _ in 1 2 3 4; do
  rt=$(token_request "grant_type=password&username=alice&password=correct%20horse%20battery%20staple&scope=notes:read" | json_field refresh_token)
  refresh_tokens="$refresh_tokens $rt"
done
REFRESH_TOKENS=$refresh_tokens BASIC=$basic \
  measure refresh_sqlite "refresh rotation (SQLite)" "$as_pid" as "$issuer/token" refresh_chain.lua 4 4

rt=$(token_request "grant_type=password&username=alice&password=correct%20horse%20battery%20staple" | json_field refresh_token)
BODY="token=$rt&token_type_hint=refresh_token" BASIC=$basic \
  measure introspect "introspection of an opaque token" "$as_pid" as "$issuer/introspect" post_form.lua

BODY="grant_type=password&username=alice&password=correct%20horse%20battery%20staple" BASIC=$basic \
  measure password "password grant (Argon2id)" "$as_pid" as "$issuer/token" post_form.lua 8

# Login storm: saturate the password hasher, and meanwhile measure the cheap paths.
BODY="grant_type=password&username=alice&password=correct%20horse%20battery%20staple" BASIC=$basic \
  "${load_cpu[@]}" wrk -t1 -c16 -d"$((duration * 2 + 2))s" -s "$BENCH_LUA/post_form.lua" "$issuer/token" >/dev/null 2>&1 &
storm=$!
sleep 1
TOKEN=$access_token measure storm_rs "during login storm: protected GET /ping (cache off)" "$rs_cold_pid" rs "http://127.0.0.1:$rs_cold_port/ping" get_bearer.lua
BODY="grant_type=client_credentials&scope=notes:read" BASIC=$basic \
  measure storm_cc "during login storm: client-credentials issuance" "$as_pid" as "$issuer/token" post_form.lua
wait "$storm" || true

# --- refresh rotation on PostgreSQL: a throwaway cluster and a second server --------------
pg_bin=$(dirname "$(command -v initdb 2>/dev/null || echo /usr/lib/postgresql/15/bin/initdb)")
if [ "${BENCH_NO_PG:-0}" = 1 ]; then
  printf 'refresh_pg\trefresh rotation (PostgreSQL)\tskipped (BENCH_NO_PG=1)\n' >>"$results"
elif [ ! -x "$pg_bin/initdb" ]; then
  printf 'refresh_pg\trefresh rotation (PostgreSQL)\tskipped (no initdb)\n' >>"$results"
else
  pg_dir="$work/pg"; mkdir -p "$pg_dir"
  pg_port=$(free_port)
  as_pg() { if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$pg_dir"; runuser -u postgres -- "$@"; else "$@"; fi; }
  as_pg "$pg_bin/initdb" -A trust -U postgres -E UTF8 -D "$pg_dir/data" >"$work/initdb.log" 2>&1
  # Default durability (fsync and synchronous_commit on), as a deployment would run it.
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=50" start >/dev/null
  pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")
  [ -n "${server_cpu[*]}" ] && taskset -a -p -c 0 "$pg_pid" >/dev/null
  pg_url="postgres://postgres@127.0.0.1:$pg_port/postgres"
  pg_data="$work/data-pg"
  pg_as_port=$(free_port)
  pg_issuer="http://127.0.0.1:$pg_as_port"
  "${server_cpu[@]}" "$tessera" serve --data-dir "$pg_data" --database "$pg_url" --listen "127.0.0.1:$pg_as_port" \
    --issuer "$pg_issuer" --config "$work/tessera.toml" >"$work/tessera-pg.log" 2>&1 &
  pg_as_pid=$!; pids+=("$pg_as_pid")
  wait_ready "$pg_as_pid" "$pg_as_port"
  pcli() { "$tessera" "$@" --data-dir "$pg_data" --database "$pg_url" --config "$work/tessera.toml"; }
  pg_client=$(pcli client add bench --grant-types password,refresh_token --scope notes:read --audience notes-api --json)
  pg_basic=$(printf '%s:%s' "$(json_field client_id <<<"$pg_client")" "$(json_field client_secret <<<"$pg_client")" | base64 -w0)
  printf 'correct horse battery staple\n' | pcli user add alice --password-stdin >/dev/null
  pg_tokens=""
  for _ in 1 2 3 4; do
    rt=$(curl -fsS -H "Authorization: Basic $pg_basic" \
      -d "grant_type=password&username=alice&password=correct%20horse%20battery%20staple" "$pg_issuer/token" | json_field refresh_token)
    pg_tokens="$pg_tokens $rt"
  done
  REFRESH_TOKENS=$pg_tokens BASIC=$pg_basic \
    measure refresh_pg "refresh rotation (PostgreSQL)" "$pg_as_pid,$pg_pid" as "$pg_issuer/token" refresh_chain.lua 4 4
fi

commit=$(cd "$root" && git rev-parse --short HEAD)$( cd "$root" && git diff --quiet || echo "+dirty")
echo
echo "Tessera load benchmark — commit $commit, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), ${duration}s per row, wrk -c$connections$(case "$placement" in pinned) echo ', pinned: servers on CPU 0, wrk on CPU 1' ;; colocated) echo ', colocated: servers and wrk on CPU 0' ;; esac), load average before: $load_before"
echo "Raw aws-lc-rs on the servers' CPU (keys parsed once): verify EdDSA ${raw_eddsa} us, ES256 ${raw_es256} us; sign EdDSA ${raw_sign} us; SHA-256 of a 620-byte token ${raw_sha} us"
echo "DPoP rows: $proof_count proofs written per resource-server row, $cc_proofs for /token (two clients); replay cache of the DPoP resource servers $replay_capacity proofs; peak RSS of the warm one $(( rs_dpop_peak / 1024 )) MB"
echo
python3 "$root/bench/report.py" "$results" "$raw_eddsa" "$raw_es256" "$raw_sign" "$raw_sha" \
  "$as_idle_rss" "$(rss_kb "$as_pid" VmHWM)" "$rs_idle_rss" "$(rss_kb "$rs_pid" VmHWM)" "$(rss_kb "$rs_cold_pid" VmHWM)"
