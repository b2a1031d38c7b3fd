#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Use after free, one case of mr_free a run (its opening comment has them). A case that
# accesses freed or never-allocated memory must end the job within seconds with a status
# other than 0 and, from the rank that accessed it, the one-line error naming the address;
# the access must never return (the program would print UNCAUGHT). The others must pass.
#
#   free.sh <mpiexec> <mr_free>
set -u
mpiexec=${1:?usage: free.sh <mpiexec> <mr_free>}
prog=${2:?}
fail=0
says='heap memory that is not allocated'
# case|rank that must die|settings
cases=(
	'remote|1|'
	'written|1|'
	'home|0|'
	'remote_free|1|'
	'all|1|'
	'never|1|'
	'never_home|0|'
	'debug_uaf|1|DSM_DEBUG_FREE=1'
)
for c in "${cases[@]}"; do
	IFS='|' read -r name rank settings <<<"$c"
	t0=$(date +%s%N)
	out=$(env $settings timeout 60 "$mpiexec" -n 2 "$prog" "$name" 2>&1)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ $rc -eq 0 ] || [ $rc -eq 124 ] || grep -q UNCAUGHT <<<"$out" ||
		! grep -q "^libdsm \[$rank\].*$says" <<<"$out" || grep -q FAIL <<<"$out"; then
		echo "free: FAILED: $name: status $rc after $ms ms:"
		echo "$out" | sed 's/^/  /'
		fail=1
	else
		echo "free: $name: rank $rank ended in $ms ms (status $rc): $(grep -m1 "^libdsm \[$rank\].*$says" <<<"$out" | cut -c1-200)"
	fi
done
for c in 'ok|' 'debug|DSM_DEBUG_FREE=1'; do
	IFS='|' read -r name settings <<<"$c"
	out=$(env $settings timeout 90 "$mpiexec" -n 2 "$prog" "$name" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || ! grep -q '[1-9][0-9]* passed, 0 failed' <<<"$out"; then
		echo "free: FAILED: $name: status $rc:"
		echo "$out" | sed 's/^/  /'
		fail=1
	else
		echo "free: $name: $(grep -m1 'rounds' <<<"$out")$(grep 'passed' <<<"$out")"
	fi
done
exit $fail
