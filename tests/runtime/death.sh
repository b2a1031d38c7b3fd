#!/bin/sh
# SPDX-License-Identifier: MIT
# DSM_ON_DEATH=continue: mr_death on 3 ranks, the last one SIGKILLs itself. The survivors
# must pass all their checks (mr_death.c says which), say once which rank died, exit 0
# from dsm_finalize; mpiexec must still exit non-zero (a rank of the job died), and nothing
# may stay in /dev/shm. Hydra's own cleanup is off (-disable-auto-cleanup, as README says
# to run such a job) and the wrappers ignore its SIGUSR1/SIGTERM notices; each rank's
# output and status go to files of their own.
# usage: death.sh <mpiexec> <mr_death>
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
PROG=$2
scratch_dir
# No read-ahead and no migratory lines: which lines a survivor holds when the victim dies
# (and so which are lost) must be what mr_death.c says, not what a prefetch or a migration
# happened to bring.
export DSM_ON_DEATH=continue DSM_MIGRATORY=0 DSM_PREFETCH=off
# The counters' tables at dsm_finalize, gathered among the survivors (not through MPI).
export DSM_STATS=1

timeout 90 "$MPIEXEC" -disable-auto-cleanup -n 3 sh -c \
	"trap '' USR1 TERM; '$PROG' >'$dir/out.'\$PMI_RANK 2>'$dir/err.'\$PMI_RANK; s=\$?; echo \$s >'$dir/rc.'\$PMI_RANK; exit \$s"
rc=$?
check_eval "the victim (rank 2) died" "grep -q '^killed at' '$dir/out.2'"
check_eval "the job did not hang (timeout 90 s)" "[ $rc -ne 124 ]"
check_eval "mpiexec exited non-zero (it exited $rc): a rank died" "[ $rc -ne 0 ]"
for r in 0 1; do
	cat "$dir/out.$r" "$dir/err.$r"
	check_eval "rank $r passed its checks" "grep -q '^[1-9][0-9]* passed, 0 failed' '$dir/out.$r'"
	check_eval "rank $r said once that rank 2 died" \
		"[ \$(grep -c 'rank 2 died; DSM_ON_DEATH=continue' '$dir/err.$r') -eq 1 ]"
	check_eval "rank $r exited 0 (it exited $(cat "$dir/rc.$r" 2>/dev/null))" \
		"[ -s '$dir/rc.$r' ] && [ \$(cat '$dir/rc.$r') -eq 0 ]"
done
check_eval "rank 0 printed the survivors' counters, none from rank 2" \
	"grep -q '^libdsm stats (3 ranks, .*; no counters from rank 2\$' '$dir/out.0'"
check_eval "rank 1's row has its faults (read and write faults not both 0)" \
	"awk '/^ *rank +rd_faults/ {t=1; next} t && \$1 == 1 {ok = \$2 + \$3 > 0; exit} END {exit !ok}' '$dir/out.0'"
check_eval "rank 1 printed no table" "! grep -q '^libdsm stats' '$dir/out.1'"
for r in 0 1 2; do
	pid=$(sed -n 's/^pid \([0-9]*\)$/\1/p' "$dir/out.$r")
	check_eval "nothing of rank $r (pid $pid) left in /dev/shm" \
		"[ -n '$pid' ] && ! ls /dev/shm | grep -q '^$pid:'"
done
finish
