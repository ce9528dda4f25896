#!/bin/sh
# A store of 512-byte blocks (--block 512, as a namespace of 512-byte LBAs
# gets by default): a lone small put costs one such block, the store keeps its
# block across restarts and refuses another, and the tests that drive records,
# summaries, GC, faults and kill -9 hardest pass on it as they do on 4096.
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
name=block512
. "$(dirname "$0")/../lib.sh"
sock=$dir/s.sock
img=$dir/zones.img

stat() {
	"$cli" -s "$sock" stat | awk -v k="$1" '$1 == k { print $2 }'
}

start_daemon --size 256M --zone-size 8M --block 512
[ "$(stat block_bytes)" = 512 ] || fail "block_bytes $(stat block_bytes), want 512"
used0=$(stat used_bytes)
# One at a time: each put goes alone, in its own block.
for i in $(seq 100); do
	printf 'value %03d' "$i" | "$cli" -s "$sock" put "small/$i" || fail "put small/$i"
done
used=$(($(stat used_bytes) - used0))
[ "$used" = $((100 * 512)) ] || fail "100 lone puts took $used bytes, want $((100 * 512))"
stop_daemon

# The block is the store's: kept without --block, and another refused.
start_daemon --size 256M --zone-size 8M
[ "$(stat block_bytes)" = 512 ] || fail "after a restart, block_bytes $(stat block_bytes)"
[ "$("$cli" -s "$sock" get small/42)" = "value 042" ] || fail "small/42 after a restart"
stop_daemon
"$daemon" --config /dev/null --device "$img" --socket "$sock" --block 4096 >"$dir/out" 2>&1
rc=$?
[ $rc = 3 ] || fail "a 512-byte store with --block 4096: exit $rc, not 3 (refused for good)"
grep -q "$img: formatted with 512-byte blocks, not the 4096 asked for" "$dir/out" ||
	fail "--block 4096 on a 512-byte store: $(cat "$dir/out")"
for bad in 1000 256 8192; do
	"$daemon" --config /dev/null --device "$dir/new.img" --socket "$sock" --block $bad \
		>"$dir/out" 2>&1 && fail "--block $bad was taken"
	[ "$(wc -l <"$dir/out")" = 1 ] && grep -q -- "--block $bad: a block is a power of two" "$dir/out" ||
		fail "--block $bad: $(cat "$dir/out")"
done

# The hardest tests, on 512-byte blocks (the harness passes ZT_DEVICE_ARGS on).
export ZT_DEVICE_ARGS="--block 512" STRESS_SECONDS=${STRESS_SECONDS:-20}
for t in test-basic test-corrupt test-summary test-checkpoint test-torture test-stress; do
	./tests/integration/$t >"$dir/$t.log" 2>&1 || {
		fail "$t on 512-byte blocks (exit $?)"
		tail -n 30 "$dir/$t.log" >&2
	}
done
[ "$fails" = 0 ] || exit 1
