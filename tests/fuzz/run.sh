#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Builds the fuzz targets with clang (libFuzzer, ASan, UBSan) in <build dir> and runs each
# for <seconds> from the corpus in the source tree. New inputs the fuzzer finds go to a
# scratch directory, not into the repo; a crash, a hang (10 s on one input), a leak or a
# sanitizer report fails the test, and the input that caused it is kept in <build dir>.
#
#   run.sh <source dir> <build dir> <seconds> <target>...
set -u
src=${1:?usage: run.sh <source dir> <build dir> <seconds> <target>...}
build=${2:?}
secs=${3:?}
shift 3
fail=0

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: FAILED: clang is missing (tools/install-deps.sh installs clang and libclang-rt-14-dev)"
	exit 1
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
	CC=clang cmake -S "$src" -B "$build" -DDSM_FUZZ=ON -DDSM_BUILD_BENCH=OFF \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
		{ echo "fuzz: FAILED: configuring the clang build:"; tail -n 20 "$build.configure.log"; exit 1; }
fi
targets=""
for t in "$@"; do targets="$targets fuzz_$t"; done
# shellcheck disable=SC2086
if ! cmake --build "$build" -j"$(nproc)" --target $targets >"$build.build.log" 2>&1; then
	echo "fuzz: FAILED: building$targets:"
	tail -n 30 "$build.build.log"
	exit 1
fi
for t in "$@"; do
	bin=$build/tests/fuzz/fuzz_$t
	seeds=$src/tests/fuzz/corpus/$t
	scratch=$build/corpus-$t
	mkdir -p "$scratch" "$build/crashes-$t"
	log=$build/fuzz_$t.log
	# The scratch corpus first: libFuzzer adds what it finds there; the seeds stay as they are.
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
		-artifact_prefix="$build/crashes-$t/" "$scratch" "$seeds" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ $rc -ne 0 ]; then
		echo "fuzz: FAILED: fuzz_$t (exit $rc) after ${runs:-?} inputs; kept in $build/crashes-$t:"
		grep -E 'ERROR|SUMMARY|==[0-9]+==|deadly|crash-|timeout-|leak-' "$log" | head -n 20
		fail=1
	else
		echo "fuzz: fuzz_$t: ${runs:-?} inputs in $secs s, $cov, $(ls "$scratch" | wc -l) in its corpus, no crash, hang, leak or sanitizer report"
	fi
done
exit $fail
