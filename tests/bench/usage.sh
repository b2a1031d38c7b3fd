#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The driver's command line: an unknown workload fails on every rank and names the known
# ones; --list names them all; a bad option is a usage error (2).
#   usage.sh <mpiexec> <dsm-bench>
set -u
mpiexec=$1 bench=$2
err=$(mktemp)
trap 'rm -f "$err"' EXIT
fail() {
	echo "FAIL: $*"
	cat "$err"
	exit 1
}

"$mpiexec" -n 2 "$bench" --smoke latency no_such_workload >/dev/null 2>"$err"
rc=$?
[ $rc -ne 0 ] || fail "an unknown workload exited 0"
grep -q "unknown workload 'no_such_workload'" "$err" || fail "no message naming the workload"
for w in floor latency random bandwidth pingpong threads sync hotword mw_rounds mw_release cache checkpoint jacobi \
	matmul histogram mutex_sum radix fft scale; do
	grep -q "known workloads:.* $w\b" "$err" || fail "the message does not list $w"
done
[ "$(grep -c "unknown workload" "$err")" -eq 1 ] || fail "the message is printed more than once"

list=$("$bench" --list) || fail "--list failed"
[ "$(echo "$list" | wc -l)" -eq 19 ] || fail "--list does not show 19 workloads: $list"

"$bench" --size 0 >/dev/null 2>"$err"
[ $? -eq 2 ] || fail "--size 0 is not a usage error"
"$bench" -t 0 >/dev/null 2>"$err"
[ $? -eq 2 ] || fail "-t 0 is not a usage error"
echo "PASS: unknown workload (status $rc), --list, bad options"
