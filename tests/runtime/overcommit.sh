#!/bin/sh
# SPDX-License-Identifier: MIT
# libdsm under vm.overcommit_memory=2, where even MAP_NORESERVE mappings are
# charged: the heap is reserved PROT_NONE and opened in chunks, and memory
# another rank allocated is opened on first touch. Sets the sysctl for one
# short run and restores the old value whatever happens.
# usage: overcommit.sh <mpiexec> <dsm-demo>
set -u
MPIEXEC=$1
DEMO=$2
knob=/proc/sys/vm/overcommit_memory
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
pass=0
fail=0
if [ $rc -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL exit status $rc"; fi
if echo "$out" | grep -q "OK$"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL no OK"; fi
if [ "$(cat "$knob")" = "$old" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL sysctl not restored"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
