# Sourced by the shell tests, after they set name: a temporary directory $dir
# (zappend-$name.XXXXXX), removed on exit with the daemon in $pid killed, and
# fail(), which counts; a test ends with [ "$fails" = 0 ] || exit 1.
dir=$(mktemp -d "${TMPDIR:-/tmp}/zappend-$name.XXXXXX") || exit 99
pid=
fails=0

cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

# start_daemon ARGS...: zappendd --sync none on $img and $sock (the test sets
# them, $daemon and $cli), its pid in $pid, its log in $dir/daemon.log; the
# test ends when it does not come up.
start_daemon() {
	"$daemon" --config /dev/null --device "$img" --socket "$sock" --sync none "$@" \
		2>>"$dir/daemon.log" &
	pid=$!
	i=0
	until "$cli" -s "$sock" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -ge 600 ] || ! kill -0 $pid 2>/dev/null; then
			echo "daemon did not start" >&2
			cat "$dir/daemon.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

stop_daemon() {
	kill -TERM $pid
	wait $pid || fail "zappendd exited with status $? on SIGTERM"
	pid=
}
