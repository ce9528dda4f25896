#!/bin/sh
# Runs each libFuzzer target for FUZZ_TIME seconds (default 60) on a copy of
# its committed corpus (tests/fuzz/corpus/<target>/), one target at a time,
# and fails if any finds a crash, leak, hang or sanitizer error. Needs a build
# configured with --enable-fuzzing (FUZZ_BUILDDIR, default ../../build-fuzz).
#
#   FUZZ_TARGETS   which targets (default: frames resp records recovery client dump)
#   FUZZ_TIME      seconds per target
#   FUZZ_KEEP      a directory: new corpus entries and crash artifacts are
#                  copied there (default: they are dropped with the run)
#   FUZZ_ARGS      more libFuzzer options, e.g. "-fork=1 -ignore_crashes=1"
#                  for a long run that goes on past known crashes
#
# Regression inputs of bugs not fixed yet are listed in tests/fuzz/open-crashes
# and left out of the run; the fix removes the line, and from then on CI runs
# them every time.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
build=${FUZZ_BUILDDIR:-$src/../../build-fuzz}
time=${FUZZ_TIME:-60}
targets=${FUZZ_TARGETS:-"frames resp records recovery client dump"}
work=$(mktemp -d "${TMPDIR:-/tmp}/zappend-fuzz-run.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
failed=

for t in $targets; do
	bin=$build/tests/fuzz/fuzz-$t
	[ -x "$bin" ] || { echo "fuzz: $bin missing: configure with --enable-fuzzing" >&2; exit 1; }
	corpus=$work/corpus-$t
	mkdir -p "$corpus" "$work/tmp-$t" "$work/artifacts-$t"
	for f in "$src/corpus/fuzz-$t"/*; do
		[ -f "$f" ] || continue
		name=fuzz-$t/$(basename "$f")
		if grep -qx "$name" "$src/open-crashes" 2>/dev/null; then
			echo "fuzz-$t: leaving out $name (listed in open-crashes)"
			continue
		fi
		cp "$f" "$corpus/"
	done
	case $t in
	frames) opts="-max_len=131072 -dict=$src/fuzz-frames.dict" ;;
	resp) opts="-max_len=131072 -dict=$src/fuzz-resp.dict" ;;
	records) opts="-max_len=65536" ;;
	recovery) opts="-max_len=131072 -dict=$src/fuzz-recovery.dict" ;;
	# A daemon may announce any value length; the client's malloc of it may fail.
	client) opts="-max_len=65536 -malloc_limit_mb=1000000" ;;
	dump) opts="-max_len=65536" ;;
	*) opts= ;;
	esac
	echo "fuzz-$t: ${time}s on $(ls "$corpus" | wc -l) inputs"
	# shellcheck disable=SC2086
	if FUZZ_TMPDIR=$work/tmp-$t \
		ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=print_stacktrace=1 \
		"$bin" "$corpus" $opts -max_total_time="$time" -timeout=60 -rss_limit_mb=2560 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts-$t/" ${FUZZ_ARGS:-} \
		>"$work/$t.log" 2>&1; then
		status=ok
	else
		status=FAILED
		failed="$failed $t"
		pat="ERROR|fuzz: |Deadly|Timeout|out-of-memory"
		if grep -qE "$pat" "$work/$t.log"; then
			grep -E -A40 "$pat" "$work/$t.log" | head -80 >&2
		else
			tail -n 60 "$work/$t.log" >&2
		fi
	fi
	# Past known crashes (-ignore_crashes=1) the exit status is 0: count the
	# artifacts. A slow-unit-* one is an input that once took over 10 s, on a
	# machine that may have been busy: shown, not a finding.
	found=$(ls "$work/artifacts-$t" | grep -vc '^slow-unit-' || true)
	slow=$(ls "$work/artifacts-$t" | grep -c '^slow-unit-' || true)
	[ "$slow" = 0 ] || echo "fuzz-$t: $slow input(s) took over 10 s once (slow-unit-*)"
	if [ "$status" = ok ] && [ "$found" -gt 0 ]; then
		status="FAILED ($found crash artifacts)"
		failed="$failed $t"
	fi
	# The last status line (coverage) and the execution count.
	last=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -n 1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
	# (with -fork, only the status lines say it)
	[ -n "$execs" ] || execs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
	[ -n "$rate" ] || rate=$(echo "$last" | sed -n 's/.*exec\/s:\{0,1\} \([0-9]*\).*/\1/p')
	echo "fuzz-$t: $status: ${execs:-?} executions (${rate:-?}/s); $last"
	if [ -n "${FUZZ_KEEP:-}" ]; then
		mkdir -p "$FUZZ_KEEP/fuzz-$t"
		cp -n "$corpus"/* "$FUZZ_KEEP/fuzz-$t/" 2>/dev/null || true
		cp "$work/artifacts-$t"/* "$FUZZ_KEEP/fuzz-$t/" 2>/dev/null || true
		cp "$work/$t.log" "$FUZZ_KEEP/fuzz-$t.log"
	fi
done
[ -z "$failed" ] || { echo "fuzz: FAILED:$failed" >&2; exit 1; }
echo "fuzz: all targets ran ${time}s without a finding"
