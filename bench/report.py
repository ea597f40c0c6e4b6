"""Renders bench/run.sh's results as Markdown tables with a verdict per budget (issue 7).

Arguments: RESULTS_TSV RAW_EDDSA_US RAW_ES256_US RAW_SIGN_US RAW_SHA_US AS_IDLE_KB
AS_PEAK_KB RS_IDLE_KB RS_PEAK_KB RS_COLD_PEAK_KB. Each results line: key, label, then
either one status word or requests, duration_us, p50_us, p99_us, non2xx, user_ticks,
system_ticks, ticks_per_second, ipis (inter-processor interrupts on all CPUs during the
row), floor_key.

Ratios to a floor are given two ways: req/s over the floor's req/s, and requests per
server CPU-second over the floor's (the throughput one core would give, which other
processes on the machine disturb far less). Ratio budgets are judged on the second.
Server CPU per request is split into user time (Tessera's code, axum, hyper) and kernel
time (sockets, and waking the load generator: see docs/benchmarks.md).
"""

import sys

NAN = float("nan")


def load(path):
    rows = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        row = {"key": f[0], "label": f[1]}
        if len(f) < 12:
            row["status"] = f[2]
        else:
            req, dur, p50, p99, non2xx, user, system, hz, ipis = (int(x) for x in f[2:11])
            cpu_s = (user + system) / hz
            per_req = lambda ticks: ticks / hz * 1e6 / req if req else NAN
            row.update(
                rps=req / (dur / 1e6),
                p50=p50 / 1000,
                p99=p99 / 1000,
                non2xx=non2xx,
                per_cpu=req / cpu_s if cpu_s > 0 else NAN,
                cpu_us=per_req(user + system),
                user_us=per_req(user),
                sys_us=per_req(system),
                ipis=ipis / req if req else NAN,
                floor=f[11],
            )
        rows.append(row)
    return rows


def number(arg):
    return float(arg) if arg else NAN


def main():
    path = sys.argv[1]
    raw_ed, raw_es, raw_sign, raw_sha = (number(a) for a in sys.argv[2:6])
    as_idle, as_peak, rs_idle, rs_peak, rs_cold_peak = (int(x or 0) for x in sys.argv[6:11])
    raw = {"cold_eddsa": raw_ed, "cold_es256": raw_es}
    rows = load(path)
    by = {r["key"]: r for r in rows if "rps" in r}
    floors = {"rs": by.get("floor_rs"), "as": by.get("floor_as")}

    def ok(cond):
        return "**met**" if cond else "**missed**"

    def budget(r, floor, n, raw_us, control):
        """Judges `r` against floor + n x raw, and against control + (n - 1) x raw."""
        total = floor["cpu_us"] + n * raw_us
        user = floor["user_us"] + n * raw_us
        verdict = (
            f"total {ok(r['cpu_us'] <= total)} (<= {total:.1f} us: floor + {n} x raw {raw_us:.1f} us); "
            f"user {ok(r['user_us'] <= user)} (<= {user:.1f} us)"
        )
        if control:
            extra = r["cpu_us"] - control["cpu_us"]
            allowed = (n - 1) * raw_us
            verdict += (
                f"; against the control {ok(extra <= allowed)} "
                f"(+{extra:.1f} us <= {n - 1:.1f} x raw = {allowed:.1f} us)"
            )
        return verdict

    def verdict(r):
        k = r["key"]
        floor = floors.get(r["floor"])
        cpu_ratio = floor["cpu_us"] / r["cpu_us"] if floor else None
        if k.startswith("floor"):
            return "floor"
        if k == "header":
            return f"no budget ({floor['cpu_us'] / r['cpu_us']:.2f}x: what the token's bytes cost unchecked)"
        if k == "warm":
            # The least a protected request can cost: the same request bytes unchecked,
            # plus the cache key (SHA-256 of the token).
            least = by["header"]["cpu_us"] + raw_sha if "header" in by else NAN
            return f"{ok(cpu_ratio >= 0.9)} (>= 0.9x; at best {floor['cpu_us'] / least:.2f}x: header row + SHA-256 {raw_sha:.2f} us)"
        if k == "warm_me":
            return "no budget (the handler serializes the claims to JSON)"
        if k in raw:
            # The same server verifying the same kind of signature in a bare handler:
            # the floor plus one raw verification under the same HTTP conditions.
            return budget(r, floor, 1.2, raw[k], by.get(k.replace("cold", "control")))
        if k in ("dpop_warm", "dpop_cold"):
            # Issue 16: a DPoP request costs at most the floor + 2.2 x raw (token and
            # proof verified), on a warm token the floor + 1.2 x raw (the proof alone).
            # The control (one EdDSA verify in a bare handler) is the floor plus one
            # verification at a request rate like this row's: the floor row, at ten times
            # the rate, shares its per-request kernel work between requests.
            n = 1.2 if k == "dpop_warm" else 2.2
            return budget(r, floor, n, raw_ed, by.get("control_eddsa"))
        if k == "dpop_cc" and "cc" in by:
            extra = r["cpu_us"] - by["cc"]["cpu_us"]
            return f"no budget (+{extra:.1f} us over plain issuance: {extra / raw_ed:.2f} x raw EdDSA verify)"
        if k.startswith("control"):
            return "control: floor + one raw verification over HTTP, no guard"
        if k == "invalid" and "cold_eddsa" in by:
            valid = by["cold_eddsa"]["cpu_us"]
            return f"{ok(r['cpu_us'] <= valid)} (<= valid EdDSA {valid:.1f} us)"
        if k == "cc":
            bound = floor["cpu_us"] / (floor["cpu_us"] + raw_sign)
            return f"{ok(cpu_ratio >= 0.45)} (>= 0.45x; a signature alone allows at most {bound:.2f}x)"
        if k == "introspect":
            return f"{ok(cpu_ratio >= 0.5)} (>= 0.5x)"
        if k == "refresh_sqlite":
            return f"{ok(r['rps'] >= 3000)} (>= 3,000/s; {r['per_cpu']:,.0f} per CPU-s)"
        if k == "refresh_pg":
            return f"no budget ({r['per_cpu']:,.0f} per CPU-s of tessera + PostgreSQL)"
        if k == "password":
            return "bounded by design (Argon2id)"
        idle = {"storm_rs": "cold_eddsa", "storm_cc": "cc"}.get(k)
        if idle in by:
            base = by[idle]["p99"]
            return f"{ok(r['p99'] <= 2 * base)} (p99 {r['p99'] / base:.1f}x idle {base:.2f} ms; <= 2x)"
        return ""

    print("| operation | req/s | p50 | p99 | req/s to floor | req per server CPU-s | CPU-s to floor | server CPU per req (user + kernel) | IPIs per req | budget |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "status" in r:
            print(f"| {r['label']} | {r['status']} | | | | | | | | |")
            continue
        floor = floors.get(r["floor"])
        rps_ratio = f"{r['rps'] / floor['rps']:.2f}x" if floor else ""
        cpu_ratio = f"{floor['cpu_us'] / r['cpu_us']:.2f}x" if floor else ""
        refused = f", {r['non2xx']} refused" if r["non2xx"] else ""
        print(
            f"| {r['label']} | {r['rps']:,.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms | {rps_ratio} | "
            f"{r['per_cpu']:,.0f} | {cpu_ratio} | {r['cpu_us']:.1f} us ({r['user_us']:.1f} + {r['sys_us']:.1f}) | {r['ipis']:.2f} | "
            f"{verdict(r)}{refused} |"
        )
    mb = lambda kb: kb // 1024
    print()
    print("| server | idle RSS | peak RSS | budget (idle < 30 MB, under load < 100 MB) |")
    print("|---|---|---|---|")
    print(f"| authorization server (SQLite) | {mb(as_idle)} MB | {mb(as_peak)} MB | {ok(mb(as_idle) < 30 and mb(as_peak) < 100)} |")
    print(f"| resource server (cache on) | {mb(rs_idle)} MB | {mb(rs_peak)} MB | {ok(mb(rs_idle) < 30 and mb(rs_peak) < 100)} |")
    print(f"| resource server (cache off) | | {mb(rs_cold_peak)} MB | {ok(mb(rs_cold_peak) < 100)} |")


main()
