#!/bin/sh
# The systemd units as `make install` puts them: `systemd-analyze verify` has
# nothing to say about them (unknown keys, bad values, a missing ExecStart=
# binary, Documentation= man pages that do not exist), the hardening does
# not regress (`systemd-analyze security --offline`), and every system call
# zappendd makes is allowed by the unit's SystemCallFilter= (with strace).
#
# systemd is not PID 1 here, so the units are verified as files: a copy with
# ExecStart= pointing into the DESTDIR (where the binary is) and MANPATH into
# the DESTDIR's man pages.
set -u
: "${ZAPPEND_BUILDDIR:?run me from make check}"
analyze=$(command -v systemd-analyze) || {
	echo "SKIP: systemd-analyze not found (Debian package systemd)"
	exit 77
}
name=units
. "$(dirname "$0")/../lib.sh"
dest=$dir/dest

# Data only (units, man pages, snippets): no libtool relinking in the build tree.
env -u MAKEFLAGS -u MFLAGS ${MAKE:-make} -s -C "$ZAPPEND_BUILDDIR" install-data DESTDIR="$dest" \
	>"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; echo "FAIL: make install-data"; exit 1; }

service=$(find "$dest" -name zappendd.service -path '*/system/*')
socket=$(find "$dest" -name zappendd.socket -path '*/system/*')
[ -n "$service" ] && [ -n "$socket" ] || { echo "FAIL: units not installed: $(find "$dest")"; exit 1; }
[ -n "$(find "$dest" -path '*/sysusers.d/zappend.conf')" ] || fail "no sysusers.d/zappend.conf"
[ -n "$(find "$dest" -path '*/tmpfiles.d/zappend.conf')" ] || fail "no tmpfiles.d/zappend.conf"

# ExecStart= names the installed zappendd: put the built one there.
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$service")
case $exec_start in
/*/sbin/zappendd) ;;
*) fail "ExecStart=$exec_start is not an absolute path to sbin/zappendd" ;;
esac
mkdir -p "$dest${exec_start%/*}"
cp "$ZAPPEND_BUILDDIR/zappendd" "$dest$exec_start"
man=$(find "$dest" -name zappendd.8 | head -n 1)
[ -n "$man" ] || fail "zappendd.8 not installed"

mkdir "$dir/verify"
sed "s|^ExecStart=$exec_start|ExecStart=$dest$exec_start|" "$service" >"$dir/verify/zappendd.service"
cp "$socket" "$dir/verify/"
grep -q "^ExecStart=$dest$exec_start" "$dir/verify/zappendd.service" || fail "ExecStart= not substituted"

MANPATH=${man%/man8/*} "$analyze" verify "$dir/verify/zappendd.service" "$dir/verify/zappendd.socket" \
	>"$dir/verify.log" 2>&1
st=$?
[ "$st" = 0 ] || fail "systemd-analyze verify: exit status $st"
[ ! -s "$dir/verify.log" ] || fail "systemd-analyze verify is not clean: $(cat "$dir/verify.log")"

# The sysusers.d and tmpfiles.d snippets do what the units expect, in a scratch root.
sysusers=$(find "$dest" -path '*/sysusers.d/zappend.conf')
tmpfiles=$(find "$dest" -path '*/tmpfiles.d/zappend.conf')
if command -v systemd-sysusers >/dev/null 2>&1 && command -v systemd-tmpfiles >/dev/null 2>&1; then
	root=$dir/root
	mkdir -p "$root/etc"
	systemd-sysusers --root="$root" "$sysusers" >"$dir/sysusers.log" 2>&1 ||
		fail "systemd-sysusers: $(cat "$dir/sysusers.log")"
	grep -q '^zappend:x:[0-9]*:[0-9]*:[^:]*:/var/lib/zappend:/usr/sbin/nologin$' \
		"$root/etc/passwd" || fail "no system user zappend: $(cat "$root/etc/passwd")"
	grep -q '^zappend:x:' "$root/etc/group" || fail "no group zappend"
	uid=$(sed -n 's/^zappend:x:\([0-9]*\):.*/\1/p' "$root/etc/passwd")
	systemd-tmpfiles --root="$root" --create "$tmpfiles" >"$dir/tmpfiles.log" 2>&1 ||
		fail "systemd-tmpfiles: $(cat "$dir/tmpfiles.log")"
	[ "$(stat -c '%a %u' "$root/run/zappend" 2>/dev/null)" = "755 $uid" ] ||
		fail "/run/zappend: $(stat -c '%a %u' "$root/run/zappend" 2>&1), expected 755 $uid"
	[ "$(stat -c '%a %u' "$root/var/lib/zappend" 2>/dev/null)" = "750 $uid" ] ||
		fail "/var/lib/zappend: $(stat -c '%a %u' "$root/var/lib/zappend" 2>&1), expected 750 $uid"
else
	echo "note: systemd-sysusers/systemd-tmpfiles not found; snippets not applied"
fi

# Exposure 1.0 today ("OK"); fail above 2.0 (threshold is exposure x 10).
if "$analyze" security --help 2>/dev/null | grep -q -- --offline; then
	"$analyze" security --offline=yes --threshold=20 "$dir/verify/zappendd.service" \
		>"$dir/security.log" 2>&1 ||
		fail "hardening regressed: $(grep -E '✗|Overall' "$dir/security.log")"
else
	echo "note: this systemd-analyze has no security --offline; exposure not checked"
fi

# The system calls zappendd makes (start, put, get, del, stat, SIGHUP, stop)
# must all be in the unit's SystemCallFilter= allow list, minus its deny list.
case " ${ZAPPEND_CFLAGS:-} " in
*-fsanitize=*) sanitized=yes ;; # extra runtime system calls, and LeakSanitizer's own ptrace
*) sanitized=no ;;
esac
if [ "$sanitized" = yes ]; then
	echo "note: sanitizer build; SystemCallFilter= is checked by the plain build"
elif command -v strace >/dev/null 2>&1 && strace -qq -o /dev/null true 2>/dev/null; then
	expand() {
		"$analyze" syscall-filter "$1" 2>/dev/null | sed 's/^ *//' | grep -v '^#' |
			tail -n +2 | while read -r s; do
				case $s in
				@*) expand "$s" ;;
				?*) echo "$s" ;;
				esac
			done
	}
	allow=$(sed -n 's/^SystemCallFilter=\([^~].*\)/\1/p' "$service")
	deny=$(sed -n 's/^SystemCallFilter=~\(.*\)/\1/p' "$service")
	for g in $allow; do case $g in @*) expand "$g" ;; *) echo "$g" ;; esac; done | sort -u >"$dir/allow"
	for g in $deny; do case $g in @*) expand "$g" ;; *) echo "$g" ;; esac; done | sort -u >"$dir/deny"
	cli=${ZAPPEND_CLI:-$ZAPPEND_BUILDDIR/zappend-cli}
	strace -f -qq -o "$dir/strace" "$ZAPPEND_BUILDDIR/zappendd" --config /dev/null \
		--device "$dir/zones.img" --size 256M --zone-size 16M --socket "$dir/s.sock" \
		2>"$dir/daemon.log" &
	pid=$!
	i=0
	until "$cli" -s "$dir/s.sock" stat >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 300 ] || break
		sleep 0.1
	done
	head -c 300000 /dev/urandom >"$dir/v"
	"$cli" -s "$dir/s.sock" put k "$dir/v" && "$cli" -s "$dir/s.sock" get k >/dev/null &&
		"$cli" -s "$dir/s.sock" del k || fail "put/get/del under strace"
	# The daemon is strace's child: signal it, not strace.
	dpid=$(sed -n '1s/^\([0-9]*\) .*/\1/p' "$dir/strace")
	[ -n "$dpid" ] && kill -HUP "$dpid" && sleep 0.3 && kill -TERM "$dpid"
	wait "$pid"
	pid=
	sed -n 's/^[0-9]* *\([a-z_0-9]*\)(.*/\1/p' "$dir/strace" | sort -u >"$dir/used"
	[ -s "$dir/used" ] || fail "strace saw no system calls"
	missing=$(comm -23 "$dir/used" "$dir/allow" | tr '\n' ' ')
	denied=$(comm -12 "$dir/used" "$dir/deny" | tr '\n' ' ')
	[ -z "$missing" ] || fail "system calls outside SystemCallFilter=$allow: $missing"
	[ -z "$denied" ] || fail "system calls SystemCallFilter=~$deny denies: $denied"
else
	echo "note: strace unavailable; SystemCallFilter= not checked against the daemon"
fi

[ "$fails" = 0 ] || exit 1
exit 0
