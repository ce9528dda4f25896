#!/bin/sh
# The documentation keeps up with the code: every option zappendd --help
# lists is in zappendd(8), zappend.conf(5), the example config and README's
# options table; every zappend-cli command is in zappend-cli(1); every
# function libzappend-client exports is in libzappend-client(3); and groff
# formats every page without a warning.
set -u
src=${ZAPPEND_SRCDIR:-.}
daemon=${ZAPPENDD:-./zappendd}
cli=${ZAPPEND_CLI:-./zappend-cli}
fails=0

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

# A man page as plain words: roff's \- is a -, font escapes go.
plain() {
	sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$1"
}

opts=$("$daemon" --help | sed -n 's/^ *--\([a-z-]*\).*/\1/p' | grep -v -x -e help -e version)
[ -n "$opts" ] || { echo "FAIL: no options in zappendd --help"; exit 1; }
for o in $opts; do
	plain "$src/man/zappendd.8" | grep -q -e "^\.[BIOPR]* .*--$o\b" -e "^\.[BIOPR]* --$o\b" ||
		fail "zappendd(8) does not document --$o"
	plain "$src/man/zappendd.8" | sed -n '/^\.SH SYNOPSIS/,/^\.SH DESCRIPTION/p' |
		grep -q -- "--$o\b" || fail "zappendd(8)'s synopsis lacks --$o"
	case $o in config | verify | verify-live) continue ;; esac
	plain "$src/man/zappend.conf.5" | grep -q -E "^\.BI (.*\" )?$o \" = " ||
		fail "zappend.conf(5) does not document the key $o"
	grep -q -E "^#? ?$o =" "$src/systemd/zappendd.conf.example" ||
		fail "systemd/zappendd.conf.example has no line for $o"
	grep -q -- "\`--$o\`" "$src/README.md" || fail "README.md's options table lacks --$o"
done

cmds=$("$cli" --help | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p')
[ -n "$cmds" ] || { echo "FAIL: no commands in zappend-cli --help"; exit 1; }
for c in $cmds; do
	plain "$src/man/zappend-cli.1" | grep -q -E "^\.(B|BI|BR) $c( |$)" ||
		fail "zappend-cli(1) does not document the command $c"
done

syms=$(sed -n 's/^[[:space:]]*\(zap_[a-z_]*\);/\1/p' "$src/client/libzappend-client.sym")
[ -n "$syms" ] || { echo "FAIL: no symbols in libzappend-client.sym"; exit 1; }
for s in $syms; do
	plain "$src/man/libzappend-client.3" | grep -q -E "^\.BI \"[a-z *]*\b$s\(" ||
		fail "libzappend-client(3)'s synopsis lacks $s"
	plain "$src/man/libzappend-client.3" | sed -n '/^\.SH NAME/,/^\.SH/p' | grep -q -w "$s" ||
		fail "libzappend-client(3)'s NAME lacks $s"
done

if command -v groff >/dev/null 2>&1; then
	for page in "$src"/man/*.[1-8]; do
		out=$(groff -man -ww -z "$page" 2>&1)
		[ -z "$out" ] || fail "groff warns about ${page##*/}: $out"
	done
else
	echo "note: groff not found; the pages' roff is not checked"
fi

[ "$fails" = 0 ] || exit 1
exit 0
