#!/bin/sh
# SPDX-License-Identifier: MIT
# The bounded wire and the doorbell's open under real libfabric, with faults injected by
# fi_fault.so (LD_PRELOAD; fi_fault.c says what its variables do) into rank 1 of 2.
#
#   post        from its 300th send on, rank 1's provider refuses sends with -FI_EAGAIN
#               (libdsm queues them), then fails the post from the queue with -FI_EIO:
#               the stream to rank 0 lost a sequenced message
#   completion  rank 1's 300th send completes with FI_EIO (a connection error): rank 0
#               is handled as dead at once
#   lost        the same with FI_EOTHER (no connection error): the stream lost a message
#   doorbell    rank 1 cannot map rank 0's sleep flag (shm_open fails, EACCES) while
#               ofi_open connects the doorbells
#
# post, completion, lost (mr_stress, 5 s if nothing were injected): rank 1 must say what
# broke in one line, both ranks must exit non-zero (DSM_ON_DEATH=exit) well within the
# timeout. doorbell (dsm-demo): dsm_init must fail on both ranks, rank 0 naming rank 1
# (before, rank 0 waited for ever in a barrier rank 1 never reached). In every case
# nothing a rank made in /dev/shm may be left (the shim logs what each created).
# Hydra's cleanup is off, so that what ends the ranks is libdsm; each rank's output and
# status go to files of their own.
# usage: fi_fault.sh <mpiexec> <fi_fault.so> <program> post|completion|lost|doorbell
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
SHIM=$2
PROG=$3
CASE=$4
scratch_dir

export FI_FAULT_RANK=1 FI_FAULT_SHM_LOG="$dir/shm" MR_SECONDS=5
case $CASE in
post) export FI_FAULT_MODE=post FI_FAULT_AFTER=300 ;;
completion) export FI_FAULT_MODE=completion FI_FAULT_AFTER=300 FI_FAULT_ERR=EIO ;;
lost) export FI_FAULT_MODE=completion FI_FAULT_AFTER=300 FI_FAULT_ERR=EOTHER ;;
doorbell) export FI_FAULT_SHM_OPEN_PEER=1 ;;
*)
	echo "unknown case $CASE"
	exit 2
	;;
esac

start=$(date +%s)
timeout 30 "$MPIEXEC" -disable-auto-cleanup -n 2 sh -c \
	"trap '' USR1 TERM; LD_PRELOAD='$SHIM' '$PROG' >'$dir/out.'\$PMI_RANK 2>'$dir/err.'\$PMI_RANK;
	 r=\$?; echo \$r >'$dir/rc.'\$PMI_RANK; exit \$r"
rc=$?
secs=$(($(date +%s) - start))
for r in 0 1; do
	for f in out err; do
		sed "s/^/[$f.$r] /" "$dir/$f.$r" 2>/dev/null
	done
done

count() { # count <pattern> <file>: matching lines (0 if no file)
	grep -c -- "$1" "$2" 2>/dev/null || true
}
status() { # status <rank>: its exit status, or none
	cat "$dir/rc.$1" 2>/dev/null || echo none
}

check_eval "the job did not hang (timeout 30 s; it took ${secs} s)" "[ $rc -ne 124 ]"
check_eval "the job exited non-zero (it exited $rc)" "[ $rc -ne 0 ]"
check_eval "rank 1's shim injected its fault" "[ \$(count 'fi_fault: rank 1: ' '$dir/err.1') -ge 1 ]"
check_eval "rank 0's shim injected nothing" "[ \$(count 'fi_fault: ' '$dir/err.0') -eq 0 ]"
case $CASE in
post | lost)
	if [ "$CASE" = post ]; then
		why="a queued message to it could not be posted"
	else
		why="a message to it was lost (Unspecified error)"
	fi
	check_eval "rank 1 said the stream with rank 0 broke, in one line" \
		"[ \$(count 'the stream with rank 0 cannot go on: $why' '$dir/err.1') -eq 1 ]"
	;;
completion)
	check_eval "rank 1 said its send to rank 0 failed, in one line" \
		"[ \$(count 'send to rank 0 failed: Input/output error' '$dir/err.1') -eq 1 ]"
	;;
esac
case $CASE in
doorbell)
	check_eval "rank 1 said which flag it could not open" \
		"grep -q 'sleep flag of rank 0: Permission denied' '$dir/err.1'"
	check_eval "rank 0 said that rank 1 failed" \
		"grep -q \"mapping the peers' sleep flags failed on rank 1: Permission denied\" '$dir/err.0'"
	for r in 0 1; do
		check_eval "dsm_init failed on rank $r, and said so" \
			"grep -q 'dsm_init: Permission denied' '$dir/err.$r'"
		check_eval "rank $r exited with status 1 (it exited $(status $r))" \
			"[ '$(status $r)' = 1 ]"
	done
	;;
*)
	check_eval "rank 1 handled rank 0 as dead and said so" \
		"grep -q 'rank 0 died' '$dir/err.1'"
	check_eval "rank 0 reported rank 1 dead" "grep -q 'rank 1 died' '$dir/err.0'"
	for r in 0 1; do
		check_eval "rank $r exited with status 3 (it exited $(status $r))" \
			"[ '$(status $r)' = 3 ]"
	done
	;;
esac
# Ours: the flag pages and shm's regions ("<pid>:<uid>:<n>"); not UCX's (MPI's).
sleep 0.2
for r in 0 1; do
	made=$(grep -v '^ucx_' "$dir/shm.$r" 2>/dev/null)
	# (on shm: its region and its flag page; tcp makes none)
	[ "${DSM_PROVIDER:-}" = shm ] &&
		check_eval "rank $r created its shm objects (the shim saw them)" "[ -n '$made' ]"
	for name in $made; do
		check_eval "rank $r left no /dev/shm/$name" "[ ! -e '/dev/shm/$name' ]"
	done
done
finish
