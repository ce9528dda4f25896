#!/bin/sh
# One owner per device (issue 13, finding 6): a second zappendd on an image
# already served by a first one (another socket) exits 1 with one line on
# stderr that says the device is in use; with --format too, which must not
# wipe the store. The first daemon keeps serving, its data intact; once it
# has stopped, the second starts.
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
name=owner
. "$(dirname "$0")/../lib.sh"
img=$dir/zones.img
pid2=

# A second daemon left running (it should never have started) goes too.
trap 'if [ -n "$pid2" ]; then kill -9 "$pid2" 2>/dev/null; fi; cleanup' EXIT

# wait_ready SOCKET PID LOG: until a stat on SOCKET answers; fails if PID exits.
wait_ready() {
	i=0
	until "$cli" -s "$1" stat >/dev/null 2>&1; do
		i=$((i + 1))
		if ! kill -0 "$2" 2>/dev/null || [ $i -ge 600 ]; then
			echo "FAIL: daemon did not start:" >&2
			cat "$3" >&2
			exit 1
		fi
		sleep 0.1
	done
}

"$daemon" --config /dev/null --device "$img" --size 64M --zone-size 4M \
	--socket "$dir/a.sock" 2>"$dir/a.log" &
pid=$!
wait_ready "$dir/a.sock" "$pid" "$dir/a.log"
for k in 1 2 3 4 5; do
	head -c $((k * 100000)) /dev/urandom >"$dir/v$k"
	"$cli" -s "$dir/a.sock" put "key$k" "$dir/v$k" || fail "put key$k"
done

# second [ARGS...]: a second daemon on the same image, on socket b.sock. It
# must exit 1 within 10 s with one line on stderr saying the device is in use.
second() {
	rm -f "$dir/b.sock"
	"$daemon" --config /dev/null --device "$img" --socket "$dir/b.sock" "$@" \
		2>"$dir/b.err" &
	pid2=$!
	i=0
	while kill -0 "$pid2" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -ge 100 ] || "$cli" -s "$dir/b.sock" stat >/dev/null 2>&1; then
			if "$cli" -s "$dir/b.sock" stat >/dev/null 2>&1; then
				fail "a second zappendd $* on $img serves beside the first"
			else
				fail "a second zappendd $* on $img still runs after 10 s"
			fi
			kill -9 "$pid2"
			break
		fi
		sleep 0.1
	done
	wait "$pid2"
	st=$?
	pid2=
	[ "$st" = 1 ] || fail "second zappendd $*: exit status $st, expected 1"
	lines=$(wc -l <"$dir/b.err")
	[ "$lines" = 1 ] || fail "second zappendd $*: $lines lines on stderr, expected one:
$(cat "$dir/b.err")"
	grep -Eqi 'in use|locked|busy|another|already' "$dir/b.err" ||
		fail "second zappendd $*: stderr does not say the device is in use: $(cat "$dir/b.err")"
}

# The first daemon still serves everything it had, and takes new puts.
first_intact() {
	"$cli" -s "$dir/a.sock" stat >/dev/null 2>&1 || fail "$1: the first daemon stopped serving"
	for k in 1 2 3 4 5; do
		"$cli" -s "$dir/a.sock" get "key$k" -o "$dir/out" 2>"$dir/err" &&
			cmp -s "$dir/v$k" "$dir/out" ||
			fail "$1: key$k does not read back from the first daemon: $(cat "$dir/err")"
	done
}

second
first_intact "after a second daemon tried"
second --format
first_intact "after a second daemon tried with --format"
printf 'new' | "$cli" -s "$dir/a.sock" put key6 || fail "the first daemon no longer takes puts"

# Once the first is gone, the second starts, and finds everything.
kill "$pid"
wait "$pid" || fail "the first daemon did not exit cleanly"
pid=
"$daemon" --config /dev/null --device "$img" --socket "$dir/b.sock" 2>"$dir/b.log" &
pid=$!
wait_ready "$dir/b.sock" "$pid" "$dir/b.log"
for k in 1 2 3 4 5; do
	"$cli" -s "$dir/b.sock" get "key$k" -o "$dir/out" 2>"$dir/err" &&
		cmp -s "$dir/v$k" "$dir/out" ||
		fail "key$k does not read back after the first daemon stopped: $(cat "$dir/err")"
done
[ "$("$cli" -s "$dir/b.sock" get key6)" = new ] || fail "key6 lost"
kill "$pid"
wait "$pid" || fail "the second daemon did not exit cleanly"
pid=

[ "$fails" = 0 ] || exit 1
echo "test-owner: PASS"
