#!/bin/sh
# SPDX-License-Identifier: MIT
# mr_stall: rank 1 stops for 12 s while rank 0 waits for a line homed at it. Rank 0 must
# log the stalled fault once (line, home rank, how long) followed by its transport's state,
# and the job must then finish normally.
# With "heartbeat": the same on the path between hosts (no pidfds, heartbeats every second)
# with a 20 s stop: rank 0 suspects rank 1 once and logs it back, nobody is declared dead.
# usage: stall_rank.sh <mpiexec> <mr_stall> [heartbeat]
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
PROG=$2
scratch_dir

if [ "${3:-}" = heartbeat ]; then
	export DSM_TP_NO_PIDFD=1 DSM_TP_HEARTBEAT_MS=1000 MR_STALL_S=20
	unset DSM_TP_DEAD_MS
else
	export DSM_TP_HEARTBEAT_MS=0
fi
timeout 90 "$MPIEXEC" -n 2 sh -c \
	"'$PROG' >'$dir/out.'\$PMI_RANK 2>'$dir/err.'\$PMI_RANK"
rc=$?
cat "$dir/out.0" "$dir/out.1" "$dir/err.0" "$dir/err.1"
check_eval "the job finished normally" "[ $rc -eq 0 ]"
check_eval "rank 0 passed its checks" "grep -q '^[1-9][0-9]* passed, 0 failed' '$dir/out.0'"
check_eval "rank 0 reported the stalled fault once" \
	"[ \$(grep -c 'home rank 1) has waited 1[0-9] s' '$dir/err.0') -eq 1 ]"
check_eval "followed by its transport's state" "grep -q '^rank 0 (' '$dir/err.0'"
check_eval "rank 1 reported nothing" "! grep -q 'has waited' '$dir/err.1'"
if [ "${3:-}" = heartbeat ]; then
	check_eval "rank 1 stopped for 20 s" "grep -q 'rank 1 stops for 20 s' '$dir/out.1'"
	check_eval "rank 0 suspected rank 1 once" \
		"[ \$(grep -c 'no heartbeat from rank 1 for [0-9]* ms: suspected' '$dir/err.0') -eq 1 ]"
	check_eval "and saw it back" "grep -q 'rank 1 is back after [0-9]* ms' '$dir/err.0'"
	check_eval "nobody was declared dead" "! grep -qi 'died' '$dir/err.0' '$dir/err.1'"
fi
finish
