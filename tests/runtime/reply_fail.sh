#!/bin/sh
# SPDX-License-Identifier: MIT
# A reply that cannot be sent (mr_reply_fail.c): rank 1 must exit 1 with one line naming
# the failed answer, rank 0 must report rank 1 dead and exit 3, within the timeout (before,
# rank 0 slept in dsm_free for ever). Hydra's cleanup is off, so that libdsm ends both;
# each rank's output and status go to files of their own.
# usage: reply_fail.sh <mpiexec> <mr_reply_fail>
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
PROG=$2
scratch_dir

timeout 30 "$MPIEXEC" -disable-auto-cleanup -n 2 sh -c \
	"trap '' USR1 TERM; '$PROG' >'$dir/out.'\$PMI_RANK 2>'$dir/err.'\$PMI_RANK; echo \$? >'$dir/rc.'\$PMI_RANK"
rc=$?
cat "$dir/out.0" "$dir/out.1" "$dir/err.0" "$dir/err.1" 2>/dev/null
check_eval "the job did not hang (timeout 30 s)" "[ $rc -ne 124 ]"
check_eval "rank 1's transport refused the reply" "grep -q 'refuses the reply to rank 0' '$dir/out.1'"
check_eval "rank 1 said the answer failed, in one line" \
	"[ \$(grep -c \"answering rank 0's request failed\" '$dir/err.1') -eq 1 ]"
check_eval "rank 1 exited with status 1" "[ -s '$dir/rc.1' ] && [ \$(cat '$dir/rc.1') -eq 1 ]"
check_eval "rank 0 reported rank 1 dead" "grep -q 'rank 1 died' '$dir/err.0'"
check_eval "rank 0 exited with status 3" "[ -s '$dir/rc.0' ] && [ \$(cat '$dir/rc.0') -eq 3 ]"
check_eval "dsm_free did not return on rank 0" "! grep -q 'dsm_free returned' '$dir/out.0'"
finish
