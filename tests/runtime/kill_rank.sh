#!/bin/sh
# SPDX-License-Identifier: MIT
# A rank is killed with SIGKILL mid-run: every other rank must report it (one
# line naming the dead rank) and exit non-zero within 10 seconds, with threads
# asleep on faults for lines homed at the dead rank. Hydra's own cleanup is
# disabled, so that what ends the survivors is libdsm's detection; each rank's
# stderr and exit status go to files of their own (hydra may exit before it
# forwards a dying rank's last line, and signals the wrappers, which ignore it).
#
# With "plain", mpiexec runs as a user runs it: hydra sees the victim die and kills the
# survivors itself (SIGKILL, or SIGTERM first), which may come before libdsm has said
# anything, so only this is checked: mpiexec exits non-zero and no rank, victim or
# survivor, leaves anything in /dev/shm (no rank gets to clean up after a SIGKILL; its
# region must have lost its name at dsm_init).
#
# With "exit", the victim returns 0 from main without dsm_finalize instead: the others
# must report it as above, and the victim itself must exit with status 4 after one line
# that says why (libdsm's exit guard).
# usage: kill_rank.sh <mpiexec> <nranks> <mr_kill> [plain|exit]
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
N=$2
PROG=$3
MODE=${4:-}
scratch_dir

# Nothing of any rank may stay in /dev/shm (shm names a region "<pid>:<uid>:<n>"; each
# rank unlinks its name at dsm_init once every peer has mapped it).
check_shm_clean() {
	r=0
	while [ $r -lt "$N" ]; do
		pid=$(sed -n 's/^pid \([0-9]*\)$/\1/p' "$dir/out.$r")
		check_eval "rank $r said its pid" "[ -n '$pid' ]"
		[ -n "$pid" ] && check_eval "nothing of rank $r (pid $pid) left in /dev/shm" \
			"! ls /dev/shm | grep -q '^$pid:'"
		r=$((r + 1))
	done
}

if [ "$MODE" = plain ]; then
	timeout 60 "$MPIEXEC" -n "$N" sh -c \
		"exec '$PROG' >'$dir/out.'\$PMI_RANK 2>'$dir/err.'\$PMI_RANK"
	rc=$?
	victim=$((N - 1))
	check_eval "the victim (rank $victim) died" "grep -q '^killed at' '$dir/out.$victim'"
	check_eval "the job did not hang (timeout 60 s)" "[ $rc -ne 124 ]"
	check_eval "mpiexec exited non-zero (it exited $rc)" "[ $rc -ne 0 ]"
	sleep 1 # hydra's kill of the last survivors may still be under way
	check_shm_clean
	finish
	exit
fi

[ "$MODE" = exit ] && export MR_KILL_EXIT=1
timeout 60 "$MPIEXEC" -disable-auto-cleanup -n "$N" sh -c \
	"trap '' USR1 TERM; '$PROG' >'$dir/out.'\$PMI_RANK 2>'$dir/err.'\$PMI_RANK; echo \$? >'$dir/rc.'\$PMI_RANK"
rc=$?
end=$(date +%s%N)
victim=$((N - 1))
killed=$(sed -n 's/^killed at \([0-9]*\)$/\1/p' "$dir/out.$victim")
check_eval "the victim (rank $victim) died" "[ -n '$killed' ]"
check_eval "the job did not hang (timeout 60 s)" "[ $rc -ne 124 ]"
r=0
while [ $r -lt "$victim" ]; do
	cat "$dir/err.$r"
	check_eval "rank $r reported rank $victim dead in one line" \
		"[ \$(grep -c 'rank $victim died (killed, exited without dsm_finalize, or unreachable: the transport says which above); rank $r exits' '$dir/err.$r') -eq 1 ]"
	check_eval "rank $r exited non-zero" "[ -s '$dir/rc.$r' ] && [ \$(cat '$dir/rc.$r') -ne 0 ]"
	r=$((r + 1))
done
if [ "$MODE" = exit ]; then
	cat "$dir/err.$victim"
	check_eval "the victim said it exits without dsm_finalize" \
		"grep -q 'exits with status 0 without dsm_finalize' '$dir/err.$victim'"
	check_eval "the victim exited with status 4 (it exited $(cat "$dir/rc.$victim" 2>/dev/null))" \
		"[ -s '$dir/rc.$victim' ] && [ \$(cat '$dir/rc.$victim') -eq 4 ]"
fi
check_shm_clean
if [ -n "$killed" ]; then
	ms=$(((end - killed) / 1000000))
	echo "the others were gone $ms ms after the kill"
	check_eval "within 10 s" "[ $ms -lt 10000 ]"
fi
finish
