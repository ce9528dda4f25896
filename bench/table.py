"""bench/run's results (JSON lines on stdin) -> a table of zappendd against the raw device.

Each zappendd workload ran right after its fio baseline, recorded as
"BASELINE@WORKLOAD"; the ratio compares those two runs. Put workloads also
have a "hole-..." baseline: fio writing into a file with nothing allocated
yet, as the file backend does.
"""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
base, hole = {}, {}
for r in rows:
    if r["kind"] == "fio" and "@" in r["name"]:
        b, workload = r["name"].split("@", 1)
        (hole if b.startswith("hole-") else base)[workload] = (b, r["result"])


def ratio(z, raw):
    return f"{z['ops_per_s'] / raw['ops_per_s']:.2f}" if raw.get("ops_per_s") else "-"


print(f"{'workload':20} {'ops/s':>8} {'MiB/s':>8} {'p50 us':>7} {'p99 us':>7} {'p99.9 us':>8}"
      f"   {'fio baseline':22} {'ops/s':>8} {'MiB/s':>8} {'ratio':>6} {'holes':>6}")
for r in rows:
    if r["kind"] != "zap":
        continue
    z = r["result"]
    b, raw = base.get(r["name"], ("-", {}))
    h = hole.get(r["name"], ("-", {}))[1]
    print(f"{r['name']:20} {z['ops_per_s']:8.0f} {z['mib_per_s']:8.1f} {z['p50_us']:7.0f} {z['p99_us']:7.0f}"
          f" {z.get('p999_us', 0):8.0f}   {b:22} {raw.get('ops_per_s', 0):8.0f} {raw.get('mib_per_s', 0):8.1f}"
          f" {ratio(z, raw):>6} {ratio(z, h):>6}")
print()
print("ratio: over fio writing into raw.img, laid out once; holes: over fio writing")
print("into a new file with nothing allocated, as the file backend's appends do.")
