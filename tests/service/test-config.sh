#!/bin/sh
# zappendd's config file as an operator meets it: a bad line stops the start
# with exit status 2 and "path:LINE:" in one message; the command line wins
# over the file; SIGHUP re-reads what can change live (log-level, allow-uid), reopens a
# --log-file that logrotate moved, and keeps the settings when the file no
# longer parses.
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
name=config
. "$(dirname "$0")/../lib.sh"

# bad_config LINE WHAT TEXT: zappendd refuses TEXT as its config, exit 2,
# with one log line naming the file and LINE and containing WHAT.
bad_config() {
	line=$1 what=$2
	printf '%b' "$3" >"$dir/bad.conf"
	"$daemon" --config "$dir/bad.conf" --device "$dir/never.img" --socket "$dir/never.sock" \
		>"$dir/out" 2>"$dir/err"
	st=$?
	[ "$st" = 2 ] || fail "config '$3': exit status $st, expected 2"
	grep -q "$dir/bad.conf:$line: .*$what" "$dir/err" ||
		fail "config '$3': no '$dir/bad.conf:$line: ...$what' in: $(cat "$dir/err")"
	[ "$(wc -l <"$dir/err")" = 1 ] || fail "config '$3': not one line: $(cat "$dir/err")"
	[ ! -e "$dir/never.img" ] || fail "config '$3': the device was created anyway"
}

bad_config 2 "unknown key 'devise'" 'size = 64M\ndevise = /x\n'
bad_config 3 "bad value 'sometimes' for sync" '# comment\n\nsync = sometimes\n'
bad_config 1 "bad value 'loud' for log-level" 'log-level = loud\n'
bad_config 4 "expected key = value" '\n\n\nverbose\n'
bad_config 1 "unknown key 'config'" 'config = /etc/other.conf\n'
bad_config 2 "a comment after the value of buffer-pool" 'size = 64M\nbuffer-pool = 128M  # pinned\n'

# zappend.conf(5)'s example starts the daemon (its device and socket moved here).
man5=$(dirname "$0")/../../man/zappend.conf.5
sed -n '/^\.SH EXAMPLES/,/^\.EE/p' "$man5" | sed -n '/^\.EX/,/^\.EE/p' | sed '1d;$d' |
	sed 's/\\-/-/g' >"$dir/example.conf"
grep -q '^device = ' "$dir/example.conf" || fail "no example found in $man5"
"$daemon" --config "$dir/example.conf" --device "$dir/example.img" \
	--socket "$dir/example.sock" 2>"$dir/example.err" &
expid=$!
i=0
until "$cli" -s "$dir/example.sock" ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -ge 600 ] || ! kill -0 $expid 2>/dev/null; then
		fail "zappend.conf(5)'s example does not start: $(cat "$dir/example.err")"
		break
	fi
	sleep 0.1
done
kill -TERM $expid 2>/dev/null
wait $expid
rm -f "$dir/example.img"

# A config file that does not exist: named with --config it is an error...
"$daemon" --config "$dir/missing.conf" --socket "$dir/never.sock" 2>"$dir/err"
[ $? = 2 ] || fail "missing --config file: exit status not 2"
grep -q "$dir/missing.conf" "$dir/err" || fail "missing --config: not named: $(cat "$dir/err")"
# ...and a bad command line value too.
"$daemon" --config /dev/null --log-level chatty 2>"$dir/err"
[ $? = 2 ] || fail "--log-level chatty: exit status not 2"
grep -q "bad value 'chatty' for --log-level" "$dir/err" || fail "--log-level chatty: $(cat "$dir/err")"

# --- a good file; the command line wins ---
cat >"$dir/zappendd.conf" <<CONF
# test config
device = $dir/zones.img
socket = $dir/from-file.sock
size = 256M
zone-size = 16M
log-level = warning
log-file = $dir/zappendd.log
CONF
"$daemon" --config "$dir/zappendd.conf" --socket "$dir/s.sock" 2>"$dir/stderr" &
pid=$!
i=0
until "$cli" -s "$dir/s.sock" stat >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 600 ] || { fail "daemon did not start: $(cat "$dir/stderr" "$dir/zappendd.log")"; exit 1; }
	sleep 0.1
done
[ ! -e "$dir/from-file.sock" ] || fail "the file's socket was used although --socket was given"
[ -e "$dir/zones.img" ] || fail "the file's device was not used"
[ ! -s "$dir/stderr" ] || fail "log lines on stderr despite log-file: $(cat "$dir/stderr")"
# log-level = warning: the notice "serving ..." is not logged.
! grep -q "serving" "$dir/zappendd.log" || fail "log-level warning logged a notice"

# waitlog PATTERN FILE: the daemon logs PATTERN to FILE within 10 s.
waitlog() {
	i=0
	until grep -q "$1" "$2" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { fail "no '$1' in $2: $(cat "$2" 2>/dev/null)"; return 1; }
		sleep 0.1
	done
}

# --- SIGHUP: log-level changes live; logrotate's move, then reopen ---
sed -i 's/^log-level = warning/log-level = info/' "$dir/zappendd.conf"
mv "$dir/zappendd.log" "$dir/zappendd.log.1"
kill -HUP "$pid"
waitlog "SIGHUP: reopened the log and re-read $dir/zappendd.conf: log-level info" \
	"$dir/zappendd.log"
! grep -q "SIGHUP" "$dir/zappendd.log.1" || fail "logged to the rotated file after SIGHUP"
grep -q '^[0-9-]*T[0-9:.]*[-+][0-9]* zappendd: notice: SIGHUP' "$dir/zappendd.log" ||
	fail "log-file lines lack a timestamp: $(cat "$dir/zappendd.log")"

# A restart-only key changed: said so, nothing else happens.
echo "open-zones = 2" >>"$dir/zappendd.conf"
kill -HUP "$pid"
waitlog "SIGHUP: open-zones.* changed; it takes effect at the next start" "$dir/zappendd.log"

# A file that no longer parses: logged with its line, settings kept, still serving.
echo "bogus = 1" >>"$dir/zappendd.conf"
kill -HUP "$pid"
waitlog "SIGHUP: keeping the current settings: $dir/zappendd.conf:9: unknown key 'bogus'" \
	"$dir/zappendd.log"
echo hello | "$cli" -s "$dir/s.sock" put k || fail "put after a bad SIGHUP"
[ "$("$cli" -s "$dir/s.sock" get k)" = hello ] || fail "get after a bad SIGHUP"

# allow-uid, live: a user not on the list is refused, root always gets in.
as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1 &&
	as_nobody "$cli" --version >/dev/null 2>&1; then
	sed -i '/^bogus = 1$/d' "$dir/zappendd.conf"
	echo "allow-uid = 0" >>"$dir/zappendd.conf"
	kill -HUP "$pid"
	waitlog "SIGHUP: .*allow-uid 0," "$dir/zappendd.log"
	chmod 0755 "$dir"
	chmod 0666 "$dir/s.sock" # only the allow list stands in the way now
	as_nobody "$cli" -s "$dir/s.sock" get k \
		>/dev/null 2>"$dir/err" && fail "uid nobody got in despite allow-uid = 0"
	grep -q "permission denied: this user may not use the daemon" "$dir/err" ||
		fail "a refused client was not told why: $(cat "$dir/err")"
	waitlog "refusing client pid [0-9]* uid $(id -u nobody) .*not an allowed user" "$dir/zappendd.log"
	[ "$("$cli" -s "$dir/s.sock" get k)" = hello ] || fail "root refused by allow-uid = 0"
	sed -i "s/^allow-uid = 0$/allow-uid = 0,nobody/" "$dir/zappendd.conf"
	kill -HUP "$pid"
	waitlog "SIGHUP: .*allow-uid 0,nobody," "$dir/zappendd.log"
	[ "$(as_nobody "$cli" -s "$dir/s.sock" get k)" = hello ] ||
		fail "uid nobody refused although allow-uid lists it now"
else
	echo "note: not root, no setpriv or user nobody, or nobody cannot run $cli: allow-uid not checked"
fi

kill -TERM "$pid" && wait "$pid" || fail "daemon did not exit 0 on SIGTERM"
pid=
[ -e "$dir/s.sock" ] && fail "its own socket was left behind"
[ "$fails" = 0 ] || exit 1
exit 0
