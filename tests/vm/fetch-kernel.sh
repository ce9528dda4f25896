#!/bin/sh
# Fetches a Debian kernel package and unpacks the parts the VM tier boots:
#   fetch-kernel.sh CACHE SUITE PACKAGE-PATTERN NAME
# leaves CACHE/NAME/vmlinuz and CACHE/NAME/modules/ (the .ko files we load,
# decompressed). apt works on a private sources list and private state, so the
# machine's own lists are left alone. Exits 77 when no kernel can be had.
set -eu
cache=$1 suite=$2 pattern=$3 name=$4
out=$cache/$name
# The modules the tier needs; a cache unpacked for another list is unpacked again.
want="crc64_rocksoft_generic nvme null_blk crc32c_generic ext4"
[ -f "$out/vmlinuz" ] && [ "$(cat "$out/.complete" 2>/dev/null)" = "$want" ] && exit 0
command -v apt-get >/dev/null || { echo "fetch-kernel: no apt-get" >&2; exit 77; }

apt=$cache/apt
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$out"
cat >"$apt/sources.list" <<LIST
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
LIST
aptopts="-o Dir::Etc::sourcelist=$apt/sources.list -o Dir::Etc::sourceparts=- \
 -o Dir::State::Lists=$apt/lists -o Dir::Cache::archives=$apt/archives \
 -o Dir::Cache::pkgcache=$apt/pkgcache.bin -o Dir::Cache::srcpkgcache=$apt/srcpkgcache.bin \
 -o APT::Get::List-Cleanup=0"
# shellcheck disable=SC2086
apt-get -q $aptopts update >"$apt/update-$name.log" 2>&1 ||
	{ echo "fetch-kernel: apt-get update for $suite failed" >&2; exit 77; }
# The newest matching image package (signed or unsigned, not -dbg/-rt/-cloud).
# shellcheck disable=SC2086
pkg=$(apt-cache $aptopts search --names-only "$pattern" 2>/dev/null | awk '{print $1}' |
	grep -E -- '-amd64(-unsigned)?$' | grep -v -E -- '-(rt|cloud|dbg)-' | sort -V | tail -n 1)
[ -n "$pkg" ] || { echo "fetch-kernel: no package matches $pattern in $suite" >&2; exit 77; }
echo "fetch-kernel: $suite: $pkg" >&2
tmp=$out/tmp
rm -rf "$tmp" && mkdir -p "$tmp"
# shellcheck disable=SC2086
(cd "$tmp" && apt-get -q $aptopts download "$pkg" >/dev/null 2>&1) ||
	{ echo "fetch-kernel: cannot download $pkg" >&2; exit 77; }
dpkg-deb -x "$tmp"/*.deb "$tmp/x"
kver=$(ls "$tmp/x/lib/modules" 2>/dev/null || ls "$tmp/x/usr/lib/modules")
moddir=$tmp/x/lib/modules/$kver
[ -d "$moddir" ] || moddir=$tmp/x/usr/lib/modules/$kver
cp "$tmp"/x/boot/vmlinuz-* "$out/vmlinuz"
rm -rf "$out/modules" && mkdir -p "$out/modules"
# The modules the tier loads, each after what its depends= names (read with
# modinfo, recursively); load-order lists them in an order insmod can take.
rm -f "$out/load-order"
modfile() { # NAME -> the module file, dashes and underscores alike
	find "$moddir" -name "$1.ko*" -o -name "$(echo "$1" | tr _ -).ko*" \
		-o -name "$(echo "$1" | tr - _).ko*" | head -n 1
}
add_module() {
	local f b dep
	f=$(modfile "$1")
	[ -n "$f" ] || return 0 # built in
	b=$(basename "$f" | sed -E 's/\.ko(\.xz|\.zst)?$//')
	grep -qx "$b" "$out/load-order" 2>/dev/null && return 0
	case $f in
	*.xz) xz -dc "$f" >"$out/modules/$b.ko" ;;
	*.zst) zstd -qdc "$f" >"$out/modules/$b.ko" ;;
	*) cp "$f" "$out/modules/$b.ko" ;;
	esac
	for dep in $(tr '\0' '\n' <"$out/modules/$b.ko" | sed -n "s/^depends=//p" | tr , ' '); do
		add_module "$dep"
	done
	echo "$b" >>"$out/load-order"
}
for m in $want; do
	add_module "$m"
done
echo "$kver" >"$out/version"
echo "$pkg" >"$out/package"
rm -rf "$tmp"
echo "$want" >"$out/.complete"
echo "fetch-kernel: $name: $kver ($(ls "$out/modules" | tr '\n' ' '))" >&2
