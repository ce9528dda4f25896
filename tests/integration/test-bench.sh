#!/bin/sh
# zappend-cli bench against a real daemon: --json carries every key with
# errors 0, the mixed workload works, bad options are usage errors (exit 2),
# and a run against no daemon fails with exit 3.
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
name=bench
. "$(dirname "$0")/../lib.sh"
sock=$dir/s.sock

"$daemon" --config /dev/null --device "$dir/zones.img" --size 1G --zone-size 32M \
	--socket "$sock" 2>"$dir/daemon.log" &
pid=$!
i=0
until "$cli" -s "$sock" stat >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 600 ] || { echo "daemon did not start" >&2; cat "$dir/daemon.log" >&2; exit 1; }
	sleep 0.1
done

# check_json FILE COUNT CLIENTS DEPTH MIX: every key there, the run as asked, no errors.
check_json() {
	python3 - "$@" <<'PY'
import json, sys
path, count, clients, depth, mix = sys.argv[1], *map(int, sys.argv[2:])
d = json.load(open(path))
keys = ["ops_per_s", "mib_per_s", "p50_us", "p99_us", "p999_us", "max_us", "errors",
        "count", "seconds", "clients", "depth", "size"]
missing = [k for k in keys if k not in d]
assert not missing, "missing keys %s in %s" % (missing, d)
assert d["errors"] == 0, d
assert d["count"] == count and d["clients"] == clients and d["depth"] == depth, d
assert d["mix"] == mix, d
assert d["ops_per_s"] > 0 and d["seconds"] > 0, d
assert 0 < d["p50_us"] <= d["p99_us"] <= d["p999_us"] <= d["max_us"], d
PY
}

"$cli" -s "$sock" bench --count 2000 --clients 2 --depth 8 --size 1K-8K --keys 500 --mix 50 \
	--json >"$dir/out" 2>"$dir/err"
rc=$?
[ $rc = 0 ] || fail "bench --mix 50: exit $rc: $(cat "$dir/err")"
check_json "$dir/out" 2000 2 8 50 || fail "bench --mix 50 --json: $(cat "$dir/out")"
grep -q "preload" "$dir/err" || fail "bench --mix 50: the preload is not announced on stderr"
# Every key of the key space was preloaded (the store was empty before).
[ "$("$cli" -s "$sock" ls bench/ | wc -l)" = 500 ] || fail "bench --keys 500: not 500 keys"

"$cli" -s "$sock" bench --count 2000 --clients 2 --depth 8 --size 4K --json \
	>"$dir/out" 2>"$dir/err"
rc=$?
[ $rc = 0 ] || fail "bench put: exit $rc: $(cat "$dir/err")"
check_json "$dir/out" 2000 2 8 100 || fail "bench put --json: $(cat "$dir/out")"
[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["size"])' "$dir/out")" = 4096 ] ||
	fail "bench --size 4K is not 4096 bytes: $(cat "$dir/out")"

# Depth 1 (the synchronous API), gets only, the human-readable summary.
"$cli" -s "$sock" bench --count 300 --mix get --keys 100 >"$dir/out" 2>"$dir/err"
rc=$?
[ $rc = 0 ] || fail "bench --mix get: exit $rc: $(cat "$dir/err")"
for k in ops_per_s mib_per_s p50_us p99_us p999_us max_us; do
	grep -q "^$k " "$dir/out" || fail "bench summary lacks $k: $(cat "$dir/out")"
done
grep -q '^errors *0$' "$dir/out" || fail "bench summary: errors not 0: $(cat "$dir/out")"

# --remove: the key space goes away afterwards; other keys stay.
printf keep | "$cli" -s "$sock" put keep || fail "put keep"
before=$("$cli" -s "$sock" ls bench/ | wc -l)
"$cli" -s "$sock" bench --count 200 --depth 8 --size 100 --keys 50 --remove >/dev/null \
	2>"$dir/err" || fail "bench --remove: $(cat "$dir/err")"
for k in bench/0000000000 bench/0000000049; do
	"$cli" -s "$sock" get "$k" >/dev/null 2>&1
	[ $? = 1 ] || fail "bench --keys 50 --remove left $k"
done
after=$("$cli" -s "$sock" ls bench/ | wc -l)
[ "$after" -ge $((before - 50)) ] || fail "bench --remove took keys beyond its key space"
[ "$("$cli" -s "$sock" get keep)" = keep ] || fail "bench --remove took another key"
"$cli" -s "$sock" bench --help | grep -q "writes into the live store" ||
	fail "bench --help does not say it writes into the live store"

# A short timed run.
"$cli" -s "$sock" bench --seconds 0.5 --depth 4 --size 512 --json >"$dir/out" 2>"$dir/err"
rc=$?
[ $rc = 0 ] || fail "bench --seconds: exit $rc: $(cat "$dir/err")"

for bad in "--clients 0" "--depth x" "--size 4X" "--size 8K-4K" "--mix 101" "--mix foo" \
	"--count 10 --seconds 1" "--frobnicate" "--seconds -1"; do
	# shellcheck disable=SC2086
	"$cli" -s "$sock" bench $bad >/dev/null 2>"$dir/err"
	rc=$?
	[ $rc = 2 ] || fail "bench $bad: exit $rc, expected 2"
done

"$cli" -s "$dir/nobody.sock" bench --count 10 >/dev/null 2>"$dir/err"
rc=$?
[ $rc = 3 ] || fail "bench with no daemon: exit $rc, expected 3"
[ "$(wc -l <"$dir/err")" = 1 ] || fail "bench with no daemon: not one line: $(cat "$dir/err")"

kill -TERM "$pid" && wait "$pid" || fail "daemon did not exit 0 on SIGTERM"
pid=
[ "$fails" = 0 ] || exit 1
exit 0
