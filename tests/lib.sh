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
