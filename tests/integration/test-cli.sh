#!/bin/sh
# zappend-cli against a real daemon: every command, its output and its exit
# status (0 ok, 1 key not found, 2 usage, 3 other failure, one line on stderr).
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
name=cli
. "$(dirname "$0")/../lib.sh"
sock=$dir/s.sock

# expect STATUS CMD...: runs the CLI, checks the exit status and that any error is one line.
expect() {
	want=$1
	shift
	"$cli" -s "$sock" "$@" >"$dir/out" 2>"$dir/err"
	got=$?
	[ "$got" = "$want" ] || fail "$* exited $got, expected $want: $(cat "$dir/err")"
	lines=$(wc -l <"$dir/err")
	[ "$got" = 0 ] || [ "$want" = 2 ] || [ "$lines" = 1 ] ||
		fail "$*: $lines lines on stderr, expected one"
}

"$daemon" --config /dev/null --device "$dir/zones.img" --size 1G --zone-size 32M \
	--socket "$sock" 2>"$dir/daemon.log" &
pid=$!
i=0
until "$cli" -s "$sock" stat >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 600 ] || { echo "daemon did not start" >&2; cat "$dir/daemon.log" >&2; exit 1; }
	sleep 0.1
done

head -c 3000000 /dev/urandom >"$dir/big"
expect 0 put big "$dir/big"
expect 0 get big -o "$dir/big.out"
cmp -s "$dir/big" "$dir/big.out" || fail "get -o: bytes differ"
expect 0 get big
cmp -s "$dir/big" "$dir/out" || fail "get to stdout: bytes differ"

printf 'from stdin' | "$cli" -s "$sock" put stdin || fail "put from stdin"
expect 0 get stdin
[ "$(cat "$dir/out")" = "from stdin" ] || fail "stdin value: $(cat "$dir/out")"

: >"$dir/empty"
expect 0 put empty "$dir/empty"
expect 0 get empty
[ ! -s "$dir/out" ] || fail "empty value came back non-empty"

expect 0 put "dir/a" "$dir/empty"
expect 0 put "dir/b" "$dir/empty"
expect 0 put "dix" "$dir/empty"
expect 0 ls dir/
[ "$(cat "$dir/out")" = "$(printf 'dir/a\ndir/b')" ] || fail "ls dir/: $(cat "$dir/out")"

expect 0 del dir/a
expect 1 del dir/a
expect 1 get dir/a
expect 1 get no-such-key

expect 0 stat
[ "$(awk '$1 == "keys" { print $2 }' "$dir/out")" = 5 ] ||
	fail "stat: keys is not 5: $(cat "$dir/out")"
grep -q '^\[store\]$' "$dir/out" || fail "stat: no [store] group: $(cat "$dir/out")"
grep -Eq '^  used_bytes +[0-9]+  \([0-9.]+ [KMG]iB\)$' "$dir/out" ||
	fail "stat: used_bytes without its unit: $(cat "$dir/out")"
expect 0 stat --prometheus
# Debian's python3, where python3-prometheus-client lives (a pyenv one may come first).
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" - "$dir/out" <<'PY' || fail "stat --prometheus: $(head -c 2000 "$dir/out")"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
assert fams["zappend_keys"].type == "gauge", fams["zappend_keys"]
assert fams["zappend_keys"].samples[0].value == 5, fams["zappend_keys"]
puts = fams["zappend_puts"]
assert puts.type == "counter" and puts.samples[0].name == "zappend_puts_total", puts
assert puts.samples[0].value >= 6, puts
info = fams["zappend_info"].samples[0]
assert info.labels["backend"] == "file" and info.labels["version"], info
bad = [s.name for f in fams.values() for s in f.samples
       if f.type == "counter" and not s.name.endswith("_total")]
assert not bad, bad
PY
expect 2 stat --json --prometheus
expect 0 ping
grep -q "answered in [0-9.]* ms" "$dir/out" || fail "ping: $(cat "$dir/out")"
expect 0 stat --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["keys"]==5, d' \
	"$dir/out" || fail "stat --json is not JSON with keys 5"
expect 0 zones --json
python3 -c 'import json,sys; z=json.load(open(sys.argv[1])); assert len(z)==32, len(z)' \
	"$dir/out" || fail "zones --json is not a JSON list of 32 zones"
expect 0 zones

expect 2 frobnicate
expect 2 get
expect 2
expect 3 put x "$dir/does-not-exist"

"$cli" -s "$dir/nobody.sock" stat >/dev/null 2>"$dir/err"
[ $? = 3 ] || fail "no daemon: exit status not 3"
[ "$(wc -l <"$dir/err")" = 1 ] || fail "no daemon: not one line: $(cat "$dir/err")"
grep -q "no such socket (is zappendd running?)" "$dir/err" ||
	fail "no daemon: not said so: $(cat "$dir/err")"
"$cli" -s "$dir/nobody.sock" ping >/dev/null 2>&1 && fail "ping with no daemon exited 0"

# A put whose value would come from a terminal is refused, not left waiting.
if command -v script >/dev/null 2>&1; then
	timeout 20 script -qec "'$cli' -s '$sock' put ttykey" /dev/null </dev/null >"$dir/out" 2>&1
	rc=$?
	[ $rc = 2 ] || fail "put from a terminal: exit $rc, expected 2: $(cat "$dir/out")"
	grep -q "would come from a terminal" "$dir/out" ||
		fail "put from a terminal: no hint: $(cat "$dir/out")"
	expect 1 get ttykey
else
	echo "note: no script(1): put from a terminal not checked"
fi

kill -TERM "$pid" && wait "$pid" || fail "daemon did not exit 0 on SIGTERM"
pid=
[ "$fails" = 0 ] || exit 1
exit 0
