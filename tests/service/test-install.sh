#!/bin/sh
# `make install DESTDIR=...` puts everything where it belongs, and what it
# installed works on its own: the installed zappendd and zappend-cli talk to
# each other (with the installed library), and a program compiles and links
# against the installed header and library through the installed pkg-config
# file, then runs.
set -u
: "${ZAPPEND_BUILDDIR:?run me from make check}"
name=install
. "$(dirname "$0")/../lib.sh"
dest=$dir/dest

env -u MAKEFLAGS -u MFLAGS ${MAKE:-make} -s -C "$ZAPPEND_BUILDDIR" install DESTDIR="$dest" \
	>"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; echo "FAIL: make install"; exit 1; }

# find_one NAME: the one installed file called NAME.
find_one() {
	f=$(find "$dest" -name "$1" \( -type f -o -type l \) | head -n 1)
	[ -n "$f" ] || fail "$1 not installed"
	echo "$f"
}
daemon=$(find_one zappendd)
cli=$(find_one zappend-cli)
header=$(find_one client.h)
pc=$(find_one zappend-client.pc)
lib=$(find_one 'libzappend-client.so')
for f in zappendd.service zappendd.socket zappendd.conf.example \
	zappendd.8 zappend-cli.1 zappend.conf.5 libzappend-client.3; do
	find_one "$f" >/dev/null
done
# A page name per function: `man zap_put` finds libzappend-client(3).
for f in $(sed -n 's/^[[:space:]]*\(zap_[a-z_]*\);/\1/p' "${ZAPPEND_SRCDIR:-.}/client/libzappend-client.sym"); do
	page=$(find_one "$f.3")
	grep -qx '.so man3/libzappend-client.3' "$page" || fail "$f.3 does not lead to libzappend-client(3)"
done
[ -n "$(find "$dest" -path '*/sysusers.d/zappend.conf')" ] || fail "no sysusers.d/zappend.conf"
[ -n "$(find "$dest" -path '*/tmpfiles.d/zappend.conf')" ] || fail "no tmpfiles.d/zappend.conf"
case $daemon in */sbin/zappendd) ;; *) fail "zappendd not in an sbin: $daemon" ;; esac
case $cli in */bin/zappend-cli) ;; *) fail "zappend-cli not in a bin: $cli" ;; esac
case $header in */include/zappend/client.h) ;; *) fail "header not in include/zappend: $header" ;; esac
[ "$fails" = 0 ] || exit 1
libdir=${lib%/*}

# The installed binaries against each other. The library is not where the
# runtime linker looks (it is in a DESTDIR): LD_LIBRARY_PATH.
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if command -v ldd >/dev/null 2>&1; then
	ldd "$cli" | grep -q "$libdir/libzappend-client.so" ||
		fail "the installed zappend-cli does not use the installed library: $(ldd "$cli")"
fi
"$daemon" --version >/dev/null || fail "installed zappendd --version"
"$daemon" --config /dev/null --device "$dir/zones.img" --size 256M --zone-size 16M \
	--socket "$dir/s.sock" 2>"$dir/daemon.log" &
pid=$!
i=0
until "$cli" -s "$dir/s.sock" stat >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 600 ] || { fail "installed zappendd did not start: $(cat "$dir/daemon.log")"; exit 1; }
	sleep 0.1
done
echo "installed" | "$cli" -s "$dir/s.sock" put greeting || fail "installed cli: put"
[ "$("$cli" -s "$dir/s.sock" get greeting)" = installed ] || fail "installed cli: get"

# pkg-config: the .pc file names the real prefix; PKG_CONFIG_SYSROOT_DIR
# points its -I and -L into the DESTDIR.
# The build's compiler and flags: a sanitizer build's library needs them.
cc=${ZAPPEND_CC:-cc}
if command -v pkg-config >/dev/null 2>&1 && command -v "${cc%% *}" >/dev/null 2>&1; then
	export PKG_CONFIG_PATH="${pc%/*}" PKG_CONFIG_SYSROOT_DIR="$dest"
	pkg-config --exists zappend-client || fail "pkg-config does not find zappend-client"
	cflags=$(pkg-config --cflags zappend-client)
	libs=$(pkg-config --libs zappend-client)
	cat >"$dir/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zappend/client.h>

int main(int argc, char **argv)
{
	zap_client *c;
	void *val;
	size_t len;
	int ret = zap_connect(argv[1], &c);

	if (!ret)
		ret = zap_put(c, "from-prog", 9, "pkg-config", 10, NULL);
	if (!ret)
		ret = zap_get(c, "greeting", 8, &val, &len);
	if (ret) {
		fprintf(stderr, "prog: %s\n", zap_strerror(ret));
		return 1;
	}
	fwrite(val, 1, len, stdout);
	free(val);
	zap_close(c);
	return 0;
}
C
	# shellcheck disable=SC2086
	$cc ${ZAPPEND_CFLAGS:-} -Wall -Werror -o "$dir/prog" "$dir/prog.c" $cflags \
		${ZAPPEND_LDFLAGS:-} $libs 2>"$dir/cc.log" ||
		fail "compiling against the installed library ($cflags $libs): $(cat "$dir/cc.log")"
	case $cflags in *"$dest"*) ;; *) fail "--cflags does not point into the DESTDIR: $cflags" ;; esac
	if [ -x "$dir/prog" ]; then
		[ "$("$dir/prog" "$dir/s.sock")" = installed ] || fail "the compiled program's get"
		[ "$("$cli" -s "$dir/s.sock" get from-prog)" = pkg-config ] || fail "the compiled program's put"
	fi
else
	echo "note: no pkg-config or cc; the pkg-config file is not checked"
fi

kill -TERM "$pid" && wait "$pid" || fail "installed zappendd did not exit 0 on SIGTERM"
pid=

# make uninstall leaves no file behind.
env -u MAKEFLAGS -u MFLAGS ${MAKE:-make} -s -C "$ZAPPEND_BUILDDIR" uninstall DESTDIR="$dest" \
	>"$dir/uninstall.log" 2>&1 || fail "make uninstall: $(cat "$dir/uninstall.log")"
left=$(find "$dest" -type f -o -type l)
[ -z "$left" ] || fail "left after make uninstall: $left"

[ "$fails" = 0 ] || exit 1
exit 0
