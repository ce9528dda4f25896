#!/bin/sh
# Regenerates the seed corpora in tests/fuzz/corpus/ (run by `make fuzz-seeds`
# in a build configured with --enable-fuzzing, or with FUZZ_BUILDDIR set):
#   - gen-seeds writes crafted seeds: request streams, sealed records, daemon
#     responses, small device images;
#   - fuzz-recovery also gets images written by a real zappendd: a device made
#     with fuzz-recovery's superblock (gen-seeds image), some puts, deletes and
#     a zone filled up to its summary, then zones 1..5 extracted (gen-seeds
#     extract) into fuzz-recovery's input format.
# Regression inputs (crash-*) found by fuzzing are kept as they are.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
build=${FUZZ_BUILDDIR:-$src/../../build-fuzz}
gen=$build/tests/fuzz/gen-seeds
out=$src/corpus
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$gen" "$out"

# A real daemon writes an image: zone size 2M, 10 zones, as fuzz-recovery's device.
daemon() {
	"$build/zappendd" --config /dev/null --device "$tmp/img" --socket "$tmp/sock" \
		--size 20M --zone-size 2M --sync none --log-file "$tmp/log" "$@" &
	pid=$!
	i=0
	until "$build/zappend-cli" -s "$tmp/sock" stat >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 500 ] || { cat "$tmp/log"; exit 1; }
		sleep 0.02
	done
}
stop() {
	kill -TERM "$pid"
	wait "$pid"
	pid=
}
cli() {
	"$build/zappend-cli" -s "$tmp/sock" "$@"
}

# Small puts (one of 9000 bytes: three blocks), a delete, an overwrite and an
# empty value, over two open zones. (A value in several records needs over
# 1 MiB with the smallest pool: the crafted seeds have those.)
"$gen" image "$tmp/img"
daemon --open-zones 2
printf 'first value' | cli put alpha
printf 'second' | cli put beta
head -c 9000 /dev/urandom | cli put big
cli del alpha
printf 'beta again, longer than before' | cli put beta
printf '' | cli put empty
stop
"$gen" extract "$tmp/img" "$out/fuzz-recovery/daemon-small"

# One zone filled with small values: it gets its summary and is finished; the
# next zone holds the rest and a few deletes.
"$gen" image "$tmp/img"
daemon --open-zones 1
cli bench --keys 560 --size 24 --mix get --count 1 >/dev/null
for k in 0000000003 0000000200 0000000555; do cli del "bench/$k"; done
stop
"$gen" extract "$tmp/img" "$out/fuzz-recovery/daemon-full-zone"
ls -l "$out"/*/daemon-* >&2
