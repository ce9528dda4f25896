#!/bin/sh
# zappendd --verify, as an operator runs it on a stopped store: it reads every
# zone and writes nothing; a clean store exits 0; a flipped byte and a zone
# whose end was wiped are named (zone, offset) and exit 4; a store a daemon
# holds, or a file that is no store, is refused; it never creates or formats.
set -u
cli=${ZAPPEND_CLI:-./zappend-cli}
daemon=${ZAPPENDD:-./zappendd}
name=verify
. "$(dirname "$0")/../lib.sh"
sock=$dir/s.sock
img=$dir/zones.img
zone_size=$((8 * 1024 * 1024))
hdr=4096 # the image's header: device byte A is file byte 4096 + A

# verify WANT: runs --verify, checks its exit status; report in $dir/out, log in $dir/err.
verify() {
	"$daemon" --config /dev/null --device "$img" --verify >"$dir/out" 2>"$dir/err"
	rc=$?
	[ $rc = "$1" ] || fail "--verify exited $rc, expected $1: $(cat "$dir/out" "$dir/err")"
}
report() { awk -v k="$1" '$1 == k { print $2 }' "$dir/out"; }
# flip OFFSET: inverts the byte at file offset OFFSET of the image.
flip() {
	python3 - "$img" "$1" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0xff]))
PY
}

start_daemon --size 128M --zone-size 8M
printf 'NEEDLE-%s' "$(head -c 300 /dev/zero | tr '\0' 'v')" | "$cli" -s "$sock" put needle ||
	fail "put needle"
printf 'TAIL-%s' "$(head -c 20000 /dev/zero | tr '\0' 'w')" | "$cli" -s "$sock" put tail ||
	fail "put tail"
# Enough 64 KiB values to fill several zones, so that full zones carry summaries.
"$cli" -s "$sock" bench --count 600 --depth 16 --size 64K --keys 400 >/dev/null 2>&1 ||
	fail "bench"
keys=$("$cli" -s "$sock" ls | wc -l)
"$cli" -s "$sock" zones --json >"$dir/zones.json" || fail "zones"

"$daemon" --config /dev/null --device "$img" --verify >"$dir/out" 2>"$dir/err"
rc=$?
[ $rc = 1 ] || fail "--verify beside a running daemon: exit $rc, expected 1"
grep -q "in use by another zappendd" "$dir/err" || fail "beside a daemon: $(cat "$dir/err")"
# Told it is read-only safe, it reads beside the (idle) daemon.
"$daemon" --config /dev/null --device "$img" --verify-live >"$dir/out" 2>"$dir/err" ||
	fail "--verify-live beside an idle daemon: $(cat "$dir/out" "$dir/err")"
[ "$(report keys)" = "$keys" ] || fail "--verify-live counted $(report keys) keys, ls $keys"
"$cli" -s "$sock" ping >/dev/null || fail "the daemon stopped answering during --verify-live"
stop_daemon

sum=$(sha256sum <"$img")
verify 0
[ "$(report keys)" = "$keys" ] || fail "verify counted $(report keys) keys, ls $keys"
grep -q "^result  *clean$" "$dir/out" || fail "a clean store: $(cat "$dir/out")"
full=$(awk '$1 == "zones" { print $2 }' "$dir/out")
[ "${full:-0}" -ge 2 ] || fail "expected full zones to check summaries on: $(cat "$dir/out")"
checked=$(awk '$1 == "summaries" { print $2 }' "$dir/out")
[ "$checked" = "$full" ] || fail "$checked summaries checked, $full full zones"
grep -q "^summaries .* 0 damaged, wrong or lost, 0 absent" "$dir/out" ||
	fail "a clean stop left full zones without their summary: $(cat "$dir/out" "$dir/err")"
[ "$(sha256sum <"$img")" = "$sum" ] || fail "--verify changed the image"

# A flipped byte in the needle's value: its zone is named, exit 4.
off=$(grep -obUa NEEDLE "$img" | head -n 1 | cut -d: -f1)
[ -n "$off" ] || fail "the needle is not in the image"
zone=$(((off - hdr) / zone_size))
flip $((off + 100))
verify 4
grep -q "zone $zone offset [0-9]*: a damaged record" "$dir/err" ||
	fail "the flipped byte's zone $zone is not named: $(cat "$dir/err")"
grep -q "^result  *DAMAGED" "$dir/out" || fail "a flipped byte: $(cat "$dir/out")"
[ "$(report damaged)" -ge 1 ] || fail "a flipped byte: no damage counted: $(cat "$dir/out")"
flip $((off + 100))
verify 0

# The tail's value zeroed from a block boundary on, as a crash cuts an
# append short: in a zone still taking appends that is a note (no summary
# can tell it from a crash); in a full zone its summary still lists the
# record, and the loss is damage.
off=$(grep -obUa TAIL- "$img" | head -n 1 | cut -d: -f1)
zone=$(((off - hdr) / zone_size))
state=$(python3 -c 'import json,sys
print([z["state"] for z in json.load(open(sys.argv[1])) if z["id"] == int(sys.argv[2])][0])' \
	"$dir/zones.json" $zone)
cp --sparse=always "$img" "$dir/keep.img"
from=$(((off + 4096) / 4096 * 4096))
dd if=/dev/zero of="$img" bs=1 count=$((off + 20005 - from)) seek=$from conv=notrunc status=none
if [ "$state" = full ]; then
	verify 4
	grep -q "zone $zone: its summary lists [0-9]* records, the zone holds" "$dir/err" ||
		fail "a record cut short in full zone $zone: $(cat "$dir/err")"
else
	verify 0
	grep -q "zone $zone offset [0-9]*: a record cut short by a crash" "$dir/err" ||
		fail "a record cut short in $state zone $zone: $(cat "$dir/err")"
fi
cp --sparse=always "$dir/keep.img" "$img"
verify 0

# A full zone whose last 256 KiB, records and summary, were wiped. (Its
# summary alone gone reads like a crash that took the summary's room: a note.)
zone=$(python3 -c 'import json,sys
print(next(z["id"] for z in json.load(open(sys.argv[1])) if z["state"] == "full"))' \
	"$dir/zones.json")
[ -n "$zone" ] || fail "no full zone: $(cat "$dir/zones.json")"
dd if=/dev/zero of="$img" bs=4096 count=64 conv=notrunc status=none \
	seek=$(((hdr + (zone + 1) * zone_size - 262144) / 4096))
verify 4
grep -q "zone $zone: its summary is missing, and [0-9]* bytes after its last record" "$dir/err" ||
	fail "the wiped zone $zone is not named: $(cat "$dir/err")"

# Never creates nor formats: a file that is no image, a missing one, --format beside it.
head -c 1048576 /dev/urandom >"$dir/junk"
sum=$(sha256sum <"$dir/junk")
"$daemon" --config /dev/null --device "$dir/junk" --verify >/dev/null 2>"$dir/err"
rc=$?
[ $rc = 3 ] || fail "--verify of a file that is no image: exit $rc, expected 3"
[ "$(sha256sum <"$dir/junk")" = "$sum" ] || fail "--verify changed a file that is no image"
"$daemon" --config /dev/null --device "$dir/none.img" --verify >/dev/null 2>"$dir/err"
[ ! -e "$dir/none.img" ] || fail "--verify created an image"
"$daemon" --config /dev/null --device "$img" --verify --format >/dev/null 2>"$dir/err"
rc=$?
[ $rc = 2 ] || fail "--verify --format: exit $rc, expected 2"
grep -q "never formats" "$dir/err" || fail "--verify --format: $(cat "$dir/err")"

[ "$fails" = 0 ] || exit 1
exit 0
