#!/usr/bin/env bash
# The gateway bench (issue 18 section 3): what the reverse proxy costs per request against
# a bare hyper proxy hop measured in the same run. Starts on random loopback ports the real
# `tessera serve` (for the token and JWKS), a tiny upstream, a bare hyper hop to it
# (crates/gateway/examples/bare_proxy.rs) and the real `tessera-gateway` binary in proxy
# mode, then loads each with wrk for a bounded time. Every proxied row
# sends the same bearer token (warm: verified once, then cached). Stops what it started,
# by PID.
#
#   bench/gateway.sh [--duration SECONDS] [--connections N] [--debug]
#
# --debug uses the debug build (no release build needed; the gateway's own work is then
# slower relative to the kernel's, so the ratio is pessimistic).
# Environment: BENCH_KEEP=1 keeps the work directory (logs); CARGO_TARGET_DIR is honoured.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=10
connections=32
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --debug) profile=debug; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed -E 's/^# ?//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
flag=(); [ "$profile" = release ] && flag=(--release)
echo "building ($profile)..." >&2
# The authorization server only issues the token and serves the JWKS once, off the measured
# path: its debug build will do.
(cd "$root" && cargo build -q -p tessera --bin tessera \
  && cargo build -q "${flag[@]}" -p tessera-gateway --bin tessera-gateway --example bare_proxy)
target_dir=${CARGO_TARGET_DIR:-$root/target}
tessera="$target_dir/debug/tessera"
gateway="$target_dir/$profile/tessera-gateway"
bare="$target_dir/$profile/examples/bare_proxy"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
export BENCH_LUA="$root/bench/lua"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
# wait_ok PID URL [TOKEN]: the process we started answers URL with 2xx (at most 20 s).
wait_ok() {
  local pid=$1 url=$2 token=${3:-}
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited; see $work" >&2; return 1; }
    if [ -n "$token" ]; then
      curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$url" 2>/dev/null && return 0
    else
      curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    fi
    sleep 0.1
  done
  echo "$url did not answer; see $work" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_sec=$(getconf CLK_TCK)
results="$work/results.tsv"
: >"$results"

# measure KEY LABEL PID URL: one wrk run; charges the CPU time of PID (the proxy; the
# upstream's is the same in every proxied row and not counted).
measure() {
  local key=$1 label=$2 pid=$3 url=$4 t0 t1 out
  t0=$(cpu_ticks "$pid")
  out=$(wrk -t2 -c"$connections" -d"${duration}s" -s "$BENCH_LUA/get_bearer.lua" "$url" 2>&1 | grep '^RESULT' || true)
  t1=$(cpu_ticks "$pid")
  [ -n "$out" ] || { printf '%s\t%s\tfailed\n' "$key" "$label" >>"$results"; return; }
  field() { sed -E "s/.*$1=([0-9]+).*/\1/" <<<"$out"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$label" "$(field requests)" "$(field duration_us)" \
    "$(field p50_us)" "$(field p99_us)" "$(field non2xx)" "$((t1 - t0))" "$ticks_per_sec" >>"$results"
  echo "  measured: $label" >&2
}

# --- the authorization server, a client and a warm token -------------------------------
as_port=$(free_port)
issuer="http://127.0.0.1:$as_port"
printf 'max_connections_per_ip = 4096\n' >"$work/tessera.toml"
"$tessera" serve --data-dir "$work/data" --listen "127.0.0.1:$as_port" --issuer "$issuer" \
  --config "$work/tessera.toml" >"$work/tessera.log" 2>&1 &
as_pid=$!; pids+=("$as_pid")
wait_ok "$as_pid" "$issuer/healthz"
cli() { "$tessera" "$@" --data-dir "$work/data" --config "$work/tessera.toml"; }
client=$(cli client add bench --grant-types client_credentials --scope "notes:read" --audience api --json)
feed=$(cli client add feed --grant-types client_credentials --scope "" --json)
TOKEN=$(curl -fsS -u "$(json_field client_id <<<"$client"):$(json_field client_secret <<<"$client")" \
  -d "grant_type=client_credentials&scope=notes:read" "$issuer/token" | json_field access_token)
export TOKEN
export GW_FEED_SECRET
GW_FEED_SECRET=$(json_field client_secret <<<"$feed")

# --- upstream, bare hop, gateway (identity JWT off and on) -----------------------------
up_port=$(free_port)
"$bare" upstream "127.0.0.1:$up_port" >"$work/upstream.log" 2>&1 &
up_pid=$!; pids+=("$up_pid")
wait_ok "$up_pid" "http://127.0.0.1:$up_port/"
bare_port=$(free_port)
"$bare" proxy "127.0.0.1:$bare_port" "127.0.0.1:$up_port" >"$work/bare.log" 2>&1 &
bare_pid=$!; pids+=("$bare_pid")
wait_ok "$bare_pid" "http://127.0.0.1:$bare_port/"

start_gateway() { # NAME JWT(true|false) -> sets gw_pid, gw_port
  gw_port=$(free_port)
  cat >"$work/$1.toml" <<TOML
listen = "127.0.0.1:$gw_port"
mode = "proxy"
issuer = "$issuer"
audience = "api"
public_base_url = "http://127.0.0.1:$gw_port"
default = "authenticated"

[revocation]
client_id = "$(json_field client_id <<<"$feed")"
client_secret_env = "GW_FEED_SECRET"

[identity]
jwt = $2

[proxy]
upstream = "http://127.0.0.1:$up_port"

[[route]]
path = "/notes"
scopes = ["notes:read"]
TOML
  RUST_LOG=warn "$gateway" --config "$work/$1.toml" >"$work/$1.log" 2>&1 &
  gw_pid=$!; pids+=("$gw_pid")
  wait_ok "$gw_pid" "http://127.0.0.1:$gw_port/notes" "$TOKEN"
}
start_gateway gateway false; gw_plain_pid=$gw_pid; gw_plain_port=$gw_port
start_gateway gateway-jwt true; gw_jwt_pid=$gw_pid; gw_jwt_port=$gw_port

echo "loading for ${duration}s per row..." >&2
measure upstream "upstream alone (no hop)" "$up_pid" "http://127.0.0.1:$up_port/notes"
measure bare "bare hyper proxy hop" "$bare_pid" "http://127.0.0.1:$bare_port/notes"
measure gateway "gateway, proxy mode, warm token (scope checked, identity headers)" "$gw_plain_pid" "http://127.0.0.1:$gw_plain_port/notes"
measure gateway_jwt "gateway with the identity JWT (ES256, reused per identity for 30 s)" "$gw_jwt_pid" "http://127.0.0.1:$gw_jwt_port/notes"
measure bare2 "bare hyper proxy hop (again, for drift)" "$bare_pid" "http://127.0.0.1:$bare_port/notes"

commit=$(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet || echo "+dirty")
echo
echo "Gateway bench — commit $commit, $profile build, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), ${duration}s per row, wrk -t2 -c$connections, load average before: $load_before"
echo
python3 - "$results" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 9:
        rows.append((f[0], f[1], None)); continue
    req, dur, p50, p99, non2xx, ticks, hz = (int(x) for x in f[2:9])
    rows.append((f[0], f[1], dict(rps=req / (dur / 1e6), p50=p50 / 1000, p99=p99 / 1000,
                                  non2xx=non2xx, cpu_us=ticks / hz * 1e6 / req if req else float("nan"))))
by = {k: r for k, _, r in rows}
bare = [by[k] for k in ("bare", "bare2") if by.get(k)]
bare_cpu = sum(r["cpu_us"] for r in bare) / len(bare) if bare else float("nan")
bare_p50 = sum(r["p50"] for r in bare) / len(bare) if bare else float("nan")
print("| row | req/s | p50 ms | p99 ms | non-2xx | proxy CPU us/req | CPU vs bare hop | p50 vs bare hop |")
print("|---|---|---|---|---|---|---|---|")
for key, label, r in rows:
    if r is None:
        print(f"| {label} | failed | | | | | | |"); continue
    proxied = key not in ("upstream",)
    ratio = f"{r['cpu_us'] / bare_cpu:.2f}x" if proxied else "-"
    p50r = f"{r['p50'] / bare_p50:.2f}x" if proxied else "-"
    print(f"| {label} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} | {r['cpu_us']:.1f} | {ratio} | {p50r} |")
g = by.get("gateway")
if g and bare:
    verdict = "within" if g["cpu_us"] / bare_cpu <= 1.3 else "OVER"
    print(f"\nGateway (warm token) vs bare hop, CPU per request: {g['cpu_us'] / bare_cpu:.2f}x ({verdict} the 1.3x goal); "
          f"added {g['cpu_us'] - bare_cpu:.1f} us of CPU per request.")
PY
