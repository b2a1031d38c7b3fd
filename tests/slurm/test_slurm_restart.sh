#!/bin/bash
# SPDX-License-Identifier: MIT
#
# slurm/dsm-restart.sbatch on a real (one-node) Slurm cluster (cluster.sh), with
# dsm-ckpt-demo (40 steps, a snapshot every 10) as the program:
#  - a chain: the first job starts afresh, stops after 25 steps (exit 99) and resubmits
#    itself; the second, after it, restarts from the newer snapshot (a: #3 at step 25, not
#    b: #2), finishes, checks the result against the serial computation and exits 0,
#    appending to the same output file; nothing is resubmitted after it;
#  - the time limit: SIGUSR1 to the batch script (what --signal=B:USR1@60 sends) makes it
#    resubmit at once and signal the program's tasks (here under mpiexec), which take a
#    snapshot and exit 99; the next job, whose output follows the -o pattern (%j), restarts
#    from that snapshot at that step and finishes; with DSM_STOP_SIGNAL empty the program
#    is not told, finishes, and the job resubmitted at the signal is cancelled;
#  - a damaged newest snapshot (a rank file cut short) is not used, the older one is; with
#    DSM_RESUBMIT_MAX resubmissions done, exit 99 resubmits nothing;
#  - refusals, one line each: outside Slurm, a malformed DSM_RESUBMIT_MAX, a snapshot
#    directory that cannot be made.
#
# usage: test_slurm_restart.sh <source dir> <dsm-ckpt-demo> <dsm-info>
# Exit status: 0 passed, 1 failed, 77 skipped (Slurm or munge not installed, or not root).
set -u

SRC=$1
DEMO=$2
INFO=$3
# shellcheck source=cluster.sh source-path=SCRIPTDIR
. "$(dirname "$0")/cluster.sh"
for p in "$DEMO" "$INFO"; do
	if [ ! -x "$p" ]; then
		echo "FAIL $p is not an executable file"
		exit 1
	fi
done
# Each step is cut at 60 s, all of them at 100 s: ctest's timeout is 150 s.
cluster_init 100 60

T=$SRC/slurm/dsm-restart.sbatch
mkdir -p "$tmp/out"
# What every job of this test gets: a short demo, no counters at finalize.
export DSM_PROGRAM="$DEMO" DSM_INFO="$INFO" DSM_STATS=0

# wait_job <id>: until the job has ended; prints "<state> <exit code>:<signal>", or
# "gone" once Slurm has forgotten it (MinJobAge) or the step's time is out.
wait_job() {
	local end=$(($(date +%s) + $(limit))) s
	while [ "$(date +%s)" -lt "$end" ]; do
		s=$(scontrol show job "$1" -o 2>/dev/null) || break
		case "$s" in
		*JobState=PENDING* | *JobState=RUNNING* | *JobState=CONFIGURING* | *JobState=COMPLETING*) ;;
		*JobState=*)
			echo "$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$s") $(sed -n 's/.*ExitCode=\([0-9:]*\).*/\1/p' <<<"$s")"
			return 0
			;;
		esac
		sleep 0.25
	done
	echo gone
}
# bg_submit <output file> <env assignments> sbatch <args...>: submit() started in the
# background; bg_check <name> <expected status> <output file> waits for it and checks.
bg_submit() {
	local out=$1
	shift
	timeout "$(limit)" env "$@" >"$out.sbatch" 2>&1 &
	echo $! >"$out.pid"
}
bg_check() {
	local name=$1 want=$2 out=$3
	wait "$(cat "$out.pid")"
	rc=$?
	[ $rc -eq "$want" ] && return 0
	bad "$name: sbatch --wait exit $rc, expected $want"
	show "$out.sbatch"
	show "$out"
	return 1
}
# section <file> <id>: the lines of job <id> in an output file that several jobs append to
section() {
	awk -v id="$2" '/^dsm-restart: job / { p = ($3 == id) } p' "$1"
}
# resubmitted <file>: the job id that the output says it resubmitted as
resubmitted() {
	sed -n 's/^dsm-restart: resubmitted (.*) as job \([0-9]*\), .*/\1/p' "$1" | tail -n 1
}

# --- a chain of two jobs: exit 99, resubmitted, restarted, finished -----------------------
ck=$tmp/ck-chain
out=$tmp/out/chain.out
if submit "chain, first job" 99 "$out" DSM_CKPT_DIR="$ck" DSM_ARGS="--stop-after 25" \
	sbatch --wait -o "$out" "$T"; then
	job1=$(sed -n 's/^Submitted batch job \([0-9]*\).*/\1/p' "$out.sbatch")
	job2=$(resubmitted "$out")
	section "$out" "$job1" >"$out.1"
	expect_lines "chain: the first job starts afresh, stops after 25 steps with exit 99 and resubmits itself (as job ${job2:-?}, after job $job1)" \
		"$out.1" "^dsm-restart: job $job1 (resubmission 0 of at most 5)" \
		"^dsm-restart: fresh start: no complete snapshot in $ck/a or $ck/b" \
		"^dsm-ckpt-demo: step 20: snapshot #2 in $ck/b" \
		"^dsm-ckpt-demo: stopped at step 25 of 40 after 25 steps of this run (--stop-after): snapshot #3 in $ck/a; exit 99" \
		"^dsm-restart: resubmitted (the program exited 99: checkpointed, not finished) as job [0-9]*, resubmission 1 of at most 5" \
		"sbatch .*--dependency=afterany:$job1 .*--output=$out $T\$" \
		"^dsm-restart: exit status 99"
	if [ -z "$job2" ]; then
		bad "chain: no resubmitted job named in the first job's output"
	else
		state=$(wait_job "$job2")
		section "$out" "$job2" >"$out.2"
		if [ "$state" = "COMPLETED 0:0" ]; then
			ok "chain: the resubmitted job $job2 ran to the end: $state"
		else
			bad "chain: the resubmitted job $job2: '$state', expected 'COMPLETED 0:0'"
			show "$out"
		fi
		expect_lines "chain: job $job2 restarts from the newer snapshot ($ck/a, #3, step 25, not b: #2), finishes and checks the result, in the same output file" \
			"$out.2" "^dsm-restart: job $job2 (resubmission 1 of at most 5)" \
			"^dsm-restart: $ck/a: snapshot #3, of 2 ranks, complete and intact" \
			"^dsm-restart: $ck/b: snapshot #2, of 2 ranks, complete and intact" \
			"^dsm-restart: restarting from $ck/a (snapshot #3): DSM_RESTART=$ck/a" \
			"^dsm-ckpt-demo: restarted from $ck/a at step 25 of 40 (snapshot #3, taken on 2 ranks, now 2): the array's checksum matches" \
			"^dsm-ckpt-demo: step 30: snapshot #4 in $ck/b" \
			"^dsm-ckpt-demo: 40 steps done (restarted from step 25), result checked" \
			"^dsm-restart: exit status 0"
		if grep -q 'resubmitted' "$out.2" || [ -n "$(squeue -h -o %A)" ]; then
			bad "chain: a finished job resubmitted itself"
			squeue | sed 's/^/     | /'
			show "$out.2"
		else
			ok "chain: nothing is resubmitted after the finished job"
		fi
	fi
fi

# Two refusals run beside the next jobs (they stop before launching anything); checked below.
bg_submit "$tmp/out/badmax.out" DSM_RESUBMIT_MAX=lots sbatch --wait -o "$tmp/out/badmax.out" "$T"
: >"$tmp/out/a-file"
bg_submit "$tmp/out/nodir.out" DSM_CKPT_DIR="$tmp/out/a-file/ck" \
	sbatch --wait -o "$tmp/out/nodir.out" "$T"

# --- the time limit: SIGUSR1 to the script, the program told to stop -----------------------
# signal_at_snapshot <name> <step> <env...>: submits the template with the environment @env
# (and DSM_CKPT_DIR=$ck), output to $tmp/out/<name>-%j.out ($pattern), waits until its first
# snapshot at step <step> is taken, then sends the batch script the time limit's SIGUSR1.
# Sets job1 and out1.
signal_at_snapshot() {
	name=$1
	step=$2
	shift 2
	pattern=$tmp/out/$name-%j.out
	job1=$(env DSM_CKPT_DIR="$ck" "$@" timeout "$(limit)" sbatch --parsable -o "$pattern" \
		"$T" 2>"$tmp/out/$name.sbatch")
	out1=${pattern/\%j/$job1}
	end=$(($(date +%s) + $(limit)))
	until grep -q "^dsm-ckpt-demo: step $step: snapshot #1" "$out1" 2>/dev/null ||
		[ "$(date +%s)" -ge "$end" ]; do
		sleep 0.1
	done
	scancel --batch --signal=USR1 "$job1"
}

ck=$tmp/ck-signal
signal_at_snapshot signal 5 DSM_LAUNCHER=mpiexec DSM_ARGS="--steps 30 --every 5 --step-ms 100"
state=$(wait_job "$job1")
job2=$(resubmitted "$out1")
# "stopped at step S of 30 after S steps of this run (SIGUSR1): snapshot #K in DIR; exit 99"
stopped=$(sed -n 's/^dsm-ckpt-demo: stopped at step \([0-9]*\) of 30 .*(SIGUSR1): snapshot #\([0-9]*\) in \(.*\); exit 99$/\1 \2 \3/p' "$out1")
read -r step snap dir <<<"$stopped"
if [ "$state" = "FAILED 99:0" ] && [ -n "$stopped" ] && [ -n "$job2" ]; then
	expect_lines "time limit: on SIGUSR1 job $job1 resubmits itself, signals the tasks under mpiexec, which stop at step $step (snapshot #$snap in $dir); exit 99" \
		"$out1" "^dsm-restart: mpiexec -n 2 " "^dsm-restart: the time limit is near (SIGUSR1)" \
		"^dsm-restart: resubmitted (the time limit is near) as job $job2, resubmission 1 of at most 5" \
		"^dsm-restart: asking the program to take a snapshot and stop: scancel --signal=USR1 $job1" \
		"^dsm-restart: exit status 99"
	out2=${pattern/\%j/$job2}
	state=$(wait_job "$job2")
	if [ "$state" = "COMPLETED 0:0" ]; then
		expect_lines "time limit: job $job2 writes its own output (the -o pattern), restarts from $dir at step $step and finishes: $state" \
			"$out2" "^dsm-restart: job $job2 (resubmission 1 of at most 5)" \
			"^dsm-restart: restarting from $dir (snapshot #$snap)" \
			"^dsm-ckpt-demo: restarted from $dir at step $step of 30 (snapshot #$snap, taken on 2 ranks, now 2): the array's checksum matches" \
			"^dsm-ckpt-demo: 30 steps done (restarted from step $step), result checked" \
			"^dsm-restart: exit status 0"
	else
		bad "time limit: the resubmitted job $job2: '$state', expected 'COMPLETED 0:0'"
		show "$out2"
	fi
else
	bad "time limit: job ${job1:-?} after SIGUSR1: '$state', stopped '$stopped', resubmitted as '$job2'; expected 'FAILED 99:0', a stop by SIGUSR1 and a job"
	show "$tmp/out/signal.sbatch"
	show "$out1"
fi

# Not told (DSM_STOP_SIGNAL empty), the program finishes before the limit: the job
# resubmitted at the signal is cancelled.
ck=$tmp/ck-finish
signal_at_snapshot finish 4 DSM_STOP_SIGNAL= DSM_ARGS="--steps 12 --every 4 --step-ms 100"
state=$(wait_job "$job1")
job2=$(resubmitted "$out1")
state2=$( [ -n "$job2" ] && wait_job "$job2")
if [ "$state" = "COMPLETED 0:0" ] && [ "$state2" = "CANCELLED 0:0" ]; then
	expect_lines "time limit, program not told (DSM_STOP_SIGNAL empty): it finishes, the job resubmitted at the signal ($job2) is cancelled" \
		"$out1" "^dsm-restart: resubmitted (the time limit is near) as job $job2" \
		"^dsm-ckpt-demo: 12 steps done (fresh start), result checked" \
		"^dsm-restart: the program ended with status 0 before the time limit: resubmitted job $job2 cancelled" \
		"^dsm-restart: exit status 0"
	! grep -q 'asking the program' "$out1" || bad "time limit, DSM_STOP_SIGNAL empty: the program was signalled"
else
	bad "time limit, DSM_STOP_SIGNAL empty: job ${job1:-?} '$state', resubmitted job ${job2:-?} '$state2'; expected 'COMPLETED 0:0' and 'CANCELLED 0:0'"
	show "$tmp/out/finish.sbatch"
	show "$out1"
fi

# --- a damaged newest snapshot; no resubmission past DSM_RESUBMIT_MAX ---------------------
# The chain left a (#3, step 25) and b (#4, step 30): b loses the end of a rank's file.
ck=$tmp/ck-damaged
out=$tmp/out/damaged.out
cp -r "$tmp/ck-chain" "$ck"
truncate -s -4096 "$ck/b/rank-1.dsmckpt"
submit "damaged snapshot" 99 "$out" DSM_CKPT_DIR="$ck" DSM_ARGS="--stop-after 3" \
	DSM_RESUBMIT_COUNT=2 DSM_RESUBMIT_MAX=2 sbatch --wait -o "$out" "$T" &&
	expect_lines "damaged newest snapshot not used, the older one is; exit 99 with DSM_RESUBMIT_MAX resubmissions done resubmits nothing" \
		"$out" "^dsm-restart: $ck/b: not used: rank 1 DAMAGED: " \
		"^dsm-restart: restarting from $ck/a (snapshot #3)" \
		"^dsm-ckpt-demo: restarted from $ck/a at step 25 of 40" \
		"^dsm-ckpt-demo: stopped at step 28 of 40" \
		"^dsm-restart: not resubmitted (the program exited 99: checkpointed, not finished): 2 resubmissions done, DSM_RESUBMIT_MAX=2" \
		"^dsm-restart: exit status 99"
if [ -n "$(squeue -h -o %A)" ]; then
	bad "jobs left in the queue: $(squeue -h -o '%A %j %T' | paste -sd ' ')"
fi

# --- refusals ------------------------------------------------------------------------------
outside_slurm dsm-restart "$T"
out=$tmp/out/badmax.out
bg_check "malformed DSM_RESUBMIT_MAX" 2 "$out" &&
	one_line "malformed DSM_RESUBMIT_MAX: exit 2" "$out" "^dsm-restart: DSM_RESUBMIT_MAX must be a whole number, not 'lots'"
out=$tmp/out/nodir.out
bg_check "snapshot directory that cannot be made" 1 "$out" &&
	one_line "snapshot directory that cannot be made: exit 1" "$out" "^dsm-restart: cannot write snapshots to $tmp/out/a-file/ck"

# --- teardown ----------------------------------------------------------------------------
cluster_finish
