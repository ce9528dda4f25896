"""bench/run's results (JSON lines on stdin) -> a table of zappendd against the raw device."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
res = {r["name"]: r["result"] for r in rows}

# Which raw measurement each zappendd workload is compared with.
def baseline(name):
    op, size, q, sync = name.split("-")[0], name.split("-")[1].lower(), name.split("-")[2], name.split("-")[-1]
    if op == "put" and sync == "always":
        return "raw-write-4k-fdatasync" if size == "4k" else f"raw-write-{size}-{q.split('x')[0]}"
    if op == "put":
        return f"raw-write-{size}-{q.split('x')[0]}"
    if op == "get":
        return f"raw-read-{size}-64"
    return "raw-write-4k-64"

print(f"{'workload':24} {'ops/s':>10} {'MiB/s':>9} {'p50 us':>8} {'p99 us':>8}   {'raw baseline':24} {'raw ops/s':>10} {'ratio':>7}")
for r in rows:
    if r["kind"] != "zap":
        continue
    z = r["result"]
    b = baseline(r["name"])
    raw = res.get(b)
    ratio = f"{z['ops_per_s'] / raw['ops_per_s']:.2f}" if raw and raw["ops_per_s"] else "-"
    print(f"{r['name']:24} {z['ops_per_s']:10.0f} {z['mib_per_s']:9.1f} {z['p50_us']:8.0f} {z['p99_us']:8.0f}   {b:24} {(raw or {}).get('ops_per_s', 0):10.0f} {ratio:>7}")
print()
print("raw device (fio):")
for r in rows:
    if r["kind"] == "fio":
        f = r["result"]
        print(f"  {r['name']:24} {f['ops_per_s']:10.0f} ops/s {f['mib_per_s']:9.1f} MiB/s  p50 {f['p50_us']:.0f} us  p99 {f['p99_us']:.0f} us")
