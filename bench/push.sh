#!/usr/bin/env bash
# The push-revocation bench (issue 18): the real `tessera serve` on loopback, N simulated
# subscribers, R revocations; prints the latency from each /revoke answer to the
# subscribers holding the entry, and the server's memory per subscription. Then the
# guard's memory per revoked entry at 100,000 entries. See bench/push_fanout.rs.
#
#   bench/push.sh [--subscribers N] [--revocations R] [--debug]
#
# --debug uses the debug build (no release build needed; slower, so pessimistic).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
subscribers=1000
revocations=20
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --subscribers) subscribers=$2; shift 2 ;;
    --revocations) revocations=$2; shift 2 ;;
    --debug) profile=debug; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed -E 's/^# ?//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
flag=(); [ "$profile" = release ] && flag=(--release)
target_dir=${CARGO_TARGET_DIR:-$root/target}
# Every subscriber is a connection on each side.
ulimit -n $(( subscribers * 2 + 1024 ))
(cd "$root" && cargo build -q "${flag[@]}" -p tessera --bin tessera --example push_fanout)
"$target_dir/$profile/examples/push_fanout" --tessera "$target_dir/$profile/tessera" \
  --subscribers "$subscribers" --revocations "$revocations"
(cd "$root" && cargo test -q "${flag[@]}" -p tessera-guard --test revocation_memory -- --nocapture 2>&1 \
  | grep 'revocation list')
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
