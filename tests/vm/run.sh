#!/bin/sh
# The VM tier: run.sh SRCDIR BUILDDIR   (make check-vm)
#
# 1. builds static zappendd, zappend-cli and test programs in BUILDDIR/vm-static
# 2. fetches the Debian kernels (6.12 from bookworm-backports, 6.1 from
#    bookworm) into $ZAPPEND_VM_CACHE (default ~/.cache/zappend-vm)
# 3. packs a busybox initramfs per kernel with tests/vm/init
# 4. boots QEMU (TCG) once per plan and reads ZVM PASS/FAIL lines off the
#    serial console:
#      nvme    6.12, /dev/ng0n1: the nvme backend, registered buffers; the
#              namespace has 512-byte LBAs and zones as large as their capacity
#      zcap    6.12, the nvme backend then zbd, on a namespace of 4096-byte
#              LBAs whose zones hold 6 MiB of their 8 (capacity below size)
#      zbd     6.12, /dev/nvme0n1 with --backend zbd
#      nullb   6.12, a zoned null_blk (/dev/nullb0): the zbd backend
#      nvme61  6.1, /dev/ng0n1: passthrough refuses registered buffers
#      power   6.12, nvme: puts until QEMU is killed, then a new boot on the
#              same image checks every acknowledged put
#      zfault  6.12, nvme then zbd: QEMU fails every write into chosen blocks
#              of eleven zones (blkdebug), amid many appends in flight to each
#      zstate  6.12, a zoned null_blk: zones the daemon writes to turn read-only
#              under it, an empty one goes offline, then a restart
#      ffull   6.12, the file backend on an ext4 that fills up, then has room
#      fpower  the same power loss on the file backend: a file on ext4, on a
#              second (conventional) namespace, so the guest's page cache and
#              the journal go down with it (what QEMU itself had written
#              stays in the host's page cache: a device write cache is not
#              lost, only the guest's state)
# Logs: BUILDDIR/vm-logs/PLAN.log. Exit 0 when every test passed, 1 when one
# failed, 77 when QEMU or a kernel cannot be had.
# Environment: ZAPPEND_VM_CACHE, ZAPPEND_VM_PLANS (default "nvme zcap zbd nullb
# nvme61 zfault zstate ffull power fpower"), ZAPPEND_VM_TIMEOUT (seconds a boot may take, default 900),
# TORTURE_ROUNDS (in the VM, default 3), ZAPPEND_VM_SMP (default 2),
# ZAPPEND_VM_TESTS (the test programs each plan runs, default "test-basic
# test-restart test-concurrent test-torture").
set -u
src=$(cd "${1:-.}" && pwd)
build=$(cd "${2:-.}" && pwd)
cache=${ZAPPEND_VM_CACHE:-${HOME:-/root}/.cache/zappend-vm}
plans=${ZAPPEND_VM_PLANS:-nvme zcap zbd nullb nvme61 zfault zstate ffull power fpower}
timeout=${ZAPPEND_VM_TIMEOUT:-900}
smp=${ZAPPEND_VM_SMP:-2}
rounds=${TORTURE_ROUNDS:-3}
vmtests=
[ -n "${ZAPPEND_VM_TESTS:-}" ] && vmtests="zvm.tests=$(echo "$ZAPPEND_VM_TESTS" | tr ' ' ,)"
work=$build/vm-work
logs=$build/vm-logs
t_start=$(date +%s)

say() { echo "vm: $*"; }
# A random number below 65536 (date +%N has leading zeros, which $(( )) reads as octal).
rnd() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
skip() {
	say "SKIP: $*"
	exit 77
}

command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
# busybox-static's /bin/busybox: no libraries to carry along.
bb=/bin/busybox
[ -x "$bb" ] && ! ldd "$bb" >/dev/null 2>&1 || skip "no static busybox (apt-get install busybox-static)"
command -v cpio >/dev/null || skip "no cpio"
command -v blkzone >/dev/null || skip "no blkzone (util-linux)"
case " $plans " in *" fpower "* | *" ffull "*)
	mkfs=$(PATH=$PATH:/sbin:/usr/sbin command -v mkfs.ext4) || skip "no mkfs.ext4 (e2fsprogs)" ;;
esac
mkdir -p "$cache" "$work" "$logs"
rm -f "$logs"/*.log

# --- 1. static binaries ---
static=$build/vm-static
progs="zappendd zappend-cli tests/integration/test-basic tests/integration/test-restart
	tests/integration/test-concurrent tests/integration/test-torture tests/vm/powerloss
	tests/vm/zonefault"
say "static build in $static"
mkdir -p "$static"
(
	cd "$static" &&
		{ [ -f Makefile ] || "$src/configure" -q --disable-shared; } &&
		make -s proto/.gen-stamp &&
		make -s -j"$(nproc)" LDFLAGS=-all-static $progs
) >"$logs/static-build.log" 2>&1 || {
	grep -v "statically linked applications" "$logs/static-build.log" | tail -n 30
	say "FAIL: the static build failed"
	exit 1
}

# --- 2. kernels ---
"$src/tests/vm/fetch-kernel.sh" "$cache" bookworm-backports 'linux-image-6.12.*-amd64' k612 ||
	skip "no 6.12 kernel from bookworm-backports"
need61=false
case " $plans " in *" nvme61 "*) need61=true ;; esac
if $need61; then
	"$src/tests/vm/fetch-kernel.sh" "$cache" bookworm 'linux-image-6.1.*-amd64' k61 ||
		skip "no 6.1 kernel from bookworm"
fi

# --- 3. initramfs, one per kernel (the modules differ) ---
mkinitrd() { # kernel-dir output
	r=$work/root-$(basename "$1")
	rm -rf "$r"
	mkdir -p "$r/bin" "$r/modules" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/lib64" \
		"$r/lib/x86_64-linux-gnu" "$r/etc"
	cp "$bb" "$r/bin/busybox"
	ln -s busybox "$r/bin/sh"
	for p in $progs; do
		cp "$static/$p" "$r/bin/$(basename "$p")"
	done
	# blkzone (util-linux) is dynamic: it comes with the libraries it names.
	cp "$(command -v blkzone)" "$r/bin/blkzone"
	ldd "$(command -v blkzone)" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' |
		while read -r lib; do cp -L "$lib" "$r$lib" 2>/dev/null ||
			{ mkdir -p "$r$(dirname "$lib")" && cp -L "$lib" "$r$lib"; }; done
	cp "$1"/modules/*.ko "$r/modules/"
	cp "$1/load-order" "$r/modules/load-order"
	cp "$src/tests/vm/init" "$r/init"
	chmod +x "$r/init"
	echo "root:x:0:0:root:/:/bin/sh" >"$r/etc/passwd"
	echo "root:x:0:" >"$r/etc/group"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$2"
}
mkinitrd "$cache/k612" "$work/initrd-612.gz"
$need61 && mkinitrd "$cache/k61" "$work/initrd-61.gz"

# --- 4. boots ---
# boot NAME KERNEL-DIR INITRD IMAGE CMDLINE-EXTRA: runs QEMU until the init powers off.
# The image is namespace 1 (zoned; NSOPTS, if set, adds to its nvme-ns options,
# else 512-byte LBAs and zones as large as their capacity); with FSIMG set,
# that file is namespace 2.
# With KILL_AFTER=N set, QEMU is killed with SIGKILL once the console shows N puts
# acknowledged (the power loss).
boot_once() {
	name=$1 kdir=$2 initrd=$3 img=$4 extra=$5
	log=$logs/$name.log
	: >"$log"
	say "boot $name: $(cat "$kdir/version") $extra"
	qemu-system-x86_64 -accel tcg -cpu max -smp "$smp" -m 2G -nodefaults -no-reboot \
		-display none -serial "file:$log" -monitor none \
		-kernel "$kdir/vmlinuz" -initrd "$initrd" \
		-append "console=ttyS0 quiet loglevel=4 panic=-1 zvm.rounds=$rounds $vmtests $extra" \
		-drive "file=${BLKDEBUG:+blkdebug:$BLKDEBUG:}$img,id=zns,format=raw,if=none" \
		-device nvme,id=nvme0,serial=zap1 \
		-device "nvme-ns,drive=zns,bus=nvme0,nsid=1,zoned=on,zoned.zone_size=8M,zoned.max_open=14,zoned.max_active=14,${NSOPTS:-logical_block_size=512,physical_block_size=512}" \
		${FSIMG:+-drive "file=$FSIMG,id=fs,format=raw,if=none" -device "nvme-ns,drive=fs,bus=nvme0,nsid=2"} \
		>"$logs/$name.qemu.log" 2>&1 &
	qpid=$!
	t0=$(date +%s)
	while kill -0 $qpid 2>/dev/null; do
		if [ -n "${KILL_AFTER:-}" ] && [ "$(grep -c '^ACK ' "$log")" -ge "$KILL_AFTER" ]; then
			# Let it run on a moment so the kill lands amid puts, not after one.
			sleep 0.$(($(rnd) % 9 + 1))
			kill -KILL $qpid
			say "$name: power off (QEMU killed) after $(grep -c '^ACK ' "$log") acknowledged puts"
			break
		fi
		if [ $(($(date +%s) - t0)) -gt "$timeout" ]; then
			kill -KILL $qpid
			echo "ZVM FAIL $name/boot: no end within ${timeout}s" >>"$log"
			break
		fi
		sleep 0.5
	done
	wait $qpid 2>/dev/null
	tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"
	grep -q "^ZVM DONE\|^ACK " "$log" || echo "ZVM FAIL $name/boot: the VM did not finish" >>"$log"
	say "$name: $(($(date +%s) - t0)) s"
}

# QEMU's TCG now and then crashes the guest kernel before /init runs (an int3
# oops in sched_clock_cpu while the kernel patches its own code): nothing of
# ours ran, so that boot goes again, once. Its log stays as NAME.crashed.txt.
boot() {
	boot_once "$@"
	grep -q "^ZVM BOOT" "$logs/$1.log" && return 0
	mv "$logs/$1.log" "$logs/$1.crashed.txt"
	say "$1: the kernel did not reach /init (see $1.crashed.txt); booting again"
	boot_once "$@"
}

newimg() {
	rm -f "$1"
	truncate -s 512M "$1"
}

for plan in $plans; do
	img=$work/zns-$plan.img
	newimg "$img"
	case $plan in
	nvme | zbd | nullb | zstate) boot "$plan" "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=$plan" ;;
	zcap)
		NSOPTS=logical_block_size=4096,physical_block_size=4096,zoned.zone_capacity=6M \
			boot zcap "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=zcap"
		unset NSOPTS
		;;
	nvme61) boot nvme61 "$cache/k61" "$work/initrd-61.gz" "$img" "zvm.plan=nvme61" ;;
	zfault)
		# Every write that touches the block 2 MiB into zones 2-12 fails with
		# EIO; reads do not. Zone 0 is the superblock's. Sectors of 512 bytes.
		cfg=$work/blkdebug.cfg
		for z in $(seq 2 12); do
			printf '[inject-error]\nevent = "write_aio"\nerrno = "5"\nsector = "%d"\n' \
				$((z * 16384 + 4096))
			printf 'once = "off"\niotype = "write"\n\n'
		done >"$cfg"
		BLKDEBUG=$cfg boot zfault "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=zfault"
		;;
	power)
		KILL_AFTER=$((150 + $(rnd) % 100))
		KILL_AFTER=$KILL_AFTER boot power-put "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=plwrite"
		acked=$(grep -c '^ACK ' "$logs/power-put.log")
		boot power-check "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=plcheck zvm.acked=$acked"
		;;
	ffull)
		fs=$work/ext4.img
		rm -f "$fs"
		"$mkfs" -q -F "$fs" 1G >/dev/null || { say "FAIL: mkfs.ext4 $fs"; exit 1; }
		FSIMG=$fs boot ffull "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=ffull"
		rm -f "$fs"
		unset FSIMG
		;;
	fpower)
		fs=$work/ext4.img
		rm -f "$fs"
		"$mkfs" -q -F "$fs" 1G >/dev/null || { say "FAIL: mkfs.ext4 $fs"; exit 1; }
		KILL_AFTER=$((150 + $(rnd) % 100))
		FSIMG=$fs KILL_AFTER=$KILL_AFTER boot fpower-put "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=fpwrite"
		acked=$(grep -c '^ACK ' "$logs/fpower-put.log")
		FSIMG=$fs boot fpower-check "$cache/k612" "$work/initrd-612.gz" "$img" "zvm.plan=fpcheck zvm.acked=$acked"
		rm -f "$fs"
		unset FSIMG KILL_AFTER
		;;
	*) say "unknown plan $plan" ;;
	esac
	rm -f "$img"
done

# --- results ---
pass=0 fail=0 skipped=0
for f in "$logs"/*.log; do
	case $f in *static-build.log | *.qemu.log) continue ;; esac
	grep -E "^ZVM (BOOT|DEVICE|STAT|LOG|INFO)|cross-check:|max_inflight_per_zone|powerloss:|zonefault:|^torture:" "$f"
	grep -E "^ZVM (PASS|FAIL|SKIP) " "$f"
	p=$(grep -c "^ZVM PASS " "$f")
	x=$(grep -c "^ZVM FAIL " "$f")
	s=$(grep -c "^ZVM SKIP " "$f")
	pass=$((pass + p)) fail=$((fail + x)) skipped=$((skipped + s))
	if [ "$x" -gt 0 ]; then
		say "--- $f (failures above; the log's end) ---"
		tail -n 60 "$f"
	fi
done
say "VM tier took $(($(date +%s) - t_start)) s"
echo "vm: $pass passed, $fail failed, $skipped skipped"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
