#!/bin/sh
# SPDX-License-Identifier: MIT
# libdsm under vm.overcommit_memory=2, where even MAP_NORESERVE mappings are
# charged: the heap is reserved PROT_NONE and opened in chunks, and memory
# another rank allocated is opened on first touch. Sets the sysctl for one
# short run and restores the old value whatever happens.
# usage: overcommit.sh <mpiexec> <dsm-demo>
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
DEMO=$2
knob=/proc/sys/vm/overcommit_memory
if [ -n "${DSM_TEST_SANITIZE:-}" ]; then
	echo "skipped: a $DSM_TEST_SANITIZE-sanitized program reserves TiBs of shadow memory, which vm.overcommit_memory=2 refuses"
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! [ -w "$knob" ]; then
	echo "skipped: needs root to set vm.overcommit_memory"
	exit 0
fi
old=$(cat "$knob")
trap 'echo "$old" >"$knob"' EXIT INT TERM
echo 2 >"$knob"
out=$(timeout 120 "$MPIEXEC" -n 2 "$DEMO" 200000 2>&1)
rc=$?
echo "$old" >"$knob"
echo "$out" | tail -n 5
check "the demo exits 0 under strict overcommit" test $rc -eq 0
check "the demo's result is checked OK" sh -c 'echo "$1" | grep -q "OK$"' sh "$out"
check "the sysctl is restored" test "$(cat "$knob")" = "$old"
finish
