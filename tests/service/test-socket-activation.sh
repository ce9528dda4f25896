#!/bin/sh
# Socket activation as zappendd.socket does it, with systemd-socket-activate
# playing systemd: zappendd serves on the socket it is passed ($LISTEN_FDS,
# fd 3) instead of creating --socket, and leaves that socket's path alone
# when it stops. Passing two sockets is refused; $LISTEN_PID naming another
# process is ignored.
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
activate=$(command -v systemd-socket-activate) || {
	echo "SKIP: systemd-socket-activate not found (Debian package systemd)"
	exit 77
}
name=act
. "$(dirname "$0")/../lib.sh"

# wait_path PATH: PATH appears within 10 s.
wait_path() {
	i=0
	until [ -e "$1" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || return 1
		sleep 0.1
	done
}

set -- --config /dev/null --device "$dir/zones.img" --size 256M --zone-size 16M
# systemd-socket-activate listens, and on the first connection execs zappendd
# in its own place (same pid), with LISTEN_PID, LISTEN_FDS=1 and fd 3.
"$activate" -l "$dir/act.sock" "$daemon" "$@" --socket "$dir/own.sock" 2>"$dir/log" &
pid=$!
wait_path "$dir/act.sock" || { fail "systemd-socket-activate did not listen: $(cat "$dir/log")"; exit 1; }

# The first connection starts the daemon; it waits in the backlog meanwhile.
echo "activated" | "$cli" -s "$dir/act.sock" put first || fail "put on the inherited socket"
[ "$("$cli" -s "$dir/act.sock" get first)" = activated ] || fail "get on the inherited socket"
head -c 200000 /dev/urandom >"$dir/value"
"$cli" -s "$dir/act.sock" put big "$dir/value" || fail "put big"
"$cli" -s "$dir/act.sock" get big -o "$dir/value.out" || fail "get big"
cmp -s "$dir/value" "$dir/value.out" || fail "big value differs"
"$cli" -s "$dir/act.sock" stat >"$dir/stat" || fail "stat"
[ "$(awk '$1 == "keys" { print $2 }' "$dir/stat")" = 2 ] || fail "stat: $(cat "$dir/stat")"
[ ! -e "$dir/own.sock" ] || fail "zappendd created --socket although it was passed one"
grep -q "serving .* on $dir/act.sock" "$dir/log" || fail "log does not name the passed socket: $(cat "$dir/log")"

kill -TERM "$pid"
wait "$pid"
st=$?
pid=
[ "$st" = 0 ] || fail "exit status $st after SIGTERM"
[ -S "$dir/act.sock" ] || fail "zappendd removed the socket systemd passed (it is systemd's)"

# Two sockets: refused with a reason, for good (exit status 3).
"$activate" -l "$dir/a.sock" -l "$dir/b.sock" "$daemon" "$@" 2>"$dir/log2" &
pid=$!
wait_path "$dir/b.sock" || fail "systemd-socket-activate did not listen twice"
"$cli" -s "$dir/a.sock" stat >/dev/null 2>&1
wait "$pid"
st=$?
pid=
[ "$st" = 3 ] || fail "two sockets: exit status $st, expected 3"
grep -q "systemd passed 2 sockets" "$dir/log2" || fail "two sockets: $(cat "$dir/log2")"

# LISTEN_PID of another process (a parent that forgot to clear it): not ours,
# zappendd creates its own socket as usual.
rm -f "$dir/act.sock"
LISTEN_PID=1 LISTEN_FDS=1 "$daemon" "$@" --socket "$dir/own.sock" 2>"$dir/log3" &
pid=$!
i=0
until "$cli" -s "$dir/own.sock" stat >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 600 ] || { fail "LISTEN_PID=1: no own socket: $(cat "$dir/log3")"; break; }
	sleep 0.1
done
[ "$("$cli" -s "$dir/own.sock" get first)" = activated ] || fail "get after restart"
kill -TERM "$pid" && wait "$pid" || fail "LISTEN_PID=1: not exit 0"
pid=
[ ! -e "$dir/own.sock" ] || fail "its own socket was not removed at stop"

[ "$fails" = 0 ] || exit 1
exit 0
