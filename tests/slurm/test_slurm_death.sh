#!/bin/bash
# SPDX-License-Identifier: MIT
#
# DSM_ON_DEATH=continue under Slurm, as README ("When a rank dies") says to run it there:
# `srun --no-kill --mpi=pmi2` on a real (one-node) Slurm cluster (cluster.sh) runs
# tests/runtime's mr_death on 3 tasks over tcp;ofi_rxm, and the last one SIGKILLs itself.
# Slurm must leave the survivors running (no step cancelled at the death), and they must
# pass all their checks (mr_death.c says which), say once which rank died and exit 0 from
# dsm_finalize; srun must still exit non-zero (a task of the step died), the job must not
# hang, and nothing of any rank may stay in /dev/shm. The tests/runtime twin under
# `mpiexec -disable-auto-cleanup` is death.sh; as there, each task's output and status go
# to files of their own (named by SLURM_PROCID, the rank). This cluster leaves
# KillOnBadExit at 0, so srun would not cancel the step here without --no-kill either: the
# test runs the command README gives, it does not show that the option is needed (and on
# Slurm 22.05 --no-kill does not undo --kill-on-bad-exit=1: the survivors are killed).
#
# usage: test_slurm_death.sh <source dir> <mr_death>
# Exit status: 0 passed, 1 failed, 77 skipped (Slurm or munge not installed, or not root).
set -u

SRC=$1
PROG=$2
# shellcheck source=cluster.sh source-path=SCRIPTDIR
. "$(dirname "$0")/cluster.sh"
if [ ! -x "$PROG" ]; then
	echo "FAIL $PROG is not an executable file"
	exit 1
fi
# The job is cut at 30 s, everything at 50 s: ctest's timeout is 90 s.
cluster_init 50 30

# check <name> <shell condition>: a pass or a failure, with the output of the job's tasks
# after the first failure.
shown=""
check() {
	if eval "$2"; then
		ok "$1"
	else
		bad "$1"
		if [ -z "$shown" ]; then
			shown=1
			for f in "$tmp/srun.out" "$tmp"/out/*; do
				echo "     $f:"
				show "$f"
			done
		fi
	fi
}

# No read-ahead and no migratory lines: which lines a survivor holds when the victim dies
# (and so which are lost) must be what mr_death.c says (as in death.sh). tcp, not shm: the
# victim is busy serving lines as it dies (README, "When a rank dies"). --overcommit: 3 tasks
# on a node of fewer CPUs (one CPU for the job, as many tasks on it as asked).
mkdir -p "$tmp/out"
t=$(limit)
DSM_ON_DEATH=continue DSM_MIGRATORY=0 DSM_PREFETCH=off DSM_PROVIDER='tcp;ofi_rxm' \
	DSM_HEAP_SIZE=64G timeout "$t" srun --no-kill --mpi=pmi2 -N 1 -n 3 --overcommit sh -c \
	"'$PROG' >'$tmp/out/out.'\$SLURM_PROCID 2>'$tmp/out/err.'\$SLURM_PROCID; s=\$?; echo \$s >'$tmp/out/rc.'\$SLURM_PROCID; exit \$s" \
	>"$tmp/srun.out" 2>&1
rc=$?
d=$tmp/out
check "the victim (rank 2) died: it got to its SIGKILL, its status is $(cat "$d/rc.2" 2>/dev/null)" \
	"grep -qs '^killed at' '$d/out.2' && [ \"\$(cat '$d/rc.2' 2>/dev/null)\" = 137 ]"
check "the job did not hang (timeout $t s)" "[ $rc -ne 124 ]"
check "srun --no-kill exited non-zero (it exited $rc): a task died" "[ $rc -ne 0 ]"
for r in 0 1; do
	check "rank $r passed its checks: $(grep -s '^[0-9]* passed, [0-9]* failed' "$d/out.$r")" \
		"grep -qs '^[1-9][0-9]* passed, 0 failed' '$d/out.$r'"
	check "rank $r said once that rank 2 died" \
		"[ \"\$(grep -cs 'rank 2 died; DSM_ON_DEATH=continue' '$d/err.$r')\" = 1 ]"
	check "rank $r exited 0 (it exited $(cat "$d/rc.$r" 2>/dev/null))" \
		"[ -s '$d/rc.$r' ] && [ \$(cat '$d/rc.$r') -eq 0 ]"
done
for r in 0 1 2; do
	pid=$(sed -n 's/^pid \([0-9]*\)$/\1/p' "$d/out.$r" 2>/dev/null)
	check "nothing of rank $r (pid $pid) left in /dev/shm" \
		"[ -n '$pid' ] && ! ls /dev/shm | grep -q '^$pid:'"
done

# --- teardown ----------------------------------------------------------------------------
cluster_finish
