"""fio's JSON on stdin -> {"ops_per_s", "mib_per_s", "p50_us", "p99_us", "p999_us"} of its one job."""
import json
import sys

job = json.load(sys.stdin)["jobs"][0]
side = job["write"] if job["write"]["io_bytes"] else job["read"]
pct = side.get("clat_ns", {}).get("percentile", {})
print(json.dumps({
    "ops_per_s": side["iops"],
    "mib_per_s": side["bw_bytes"] / 1048576,
    "p50_us": pct.get("50.000000", 0) / 1000,
    "p99_us": pct.get("99.000000", 0) / 1000,
    "p999_us": pct.get("99.900000", 0) / 1000,
}))
