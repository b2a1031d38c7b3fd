#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The Slurm templates on a real (one-node) Slurm cluster: brings one up with
# slurm/local-cluster.sh, runs a 2-rank MPI program and a 2-rank DSM program with
# `srun --mpi=pmi2 -n 2`, submits each template with `sbatch --wait` (the multi-node one
# on the one node there is, the benchmark one in smoke mode), checks their output and exit
# statuses, then the bad submissions: outside Slurm, a missing provider, too few tasks.
# Stops every daemon it started and checks that nothing of the cluster is left.
#
# usage: test_slurm.sh <source dir> <mpi hello program> <dsm program | none>
#   <mpi hello program>  prints "hello from rank R of N" (tests/install/hello.c)
#   <dsm program>        a libdsm program that prints a line with "OK" on rank 0 and exits 0
#                        (build/tools/dsm-demo); "none" until it is built: its steps then
#                        run the MPI hello program and say so.
# Exit status: 0 passed, 1 failed, 77 skipped (Slurm or munge not installed, or not root).
set -u

SRC=$1
HELLO=$2
DSM_PROG=${3:-none}
# shellcheck source=cluster.sh source-path=SCRIPTDIR
. "$(dirname "$0")/cluster.sh"
# Every step is cut at 90 s, and all of them together at 220 s: ctest's timeout is 300 s.
cluster_init 220 90

if [ "$DSM_PROG" = none ]; then
	echo "note: no DSM program is built yet (dsm-demo): its steps run the MPI hello program"
	PROG=$HELLO
	EXPECT='hello from rank 0 of 2'
elif [ -x "$DSM_PROG" ]; then
	PROG=$DSM_PROG
	EXPECT='OK'
else
	echo "FAIL the DSM program $DSM_PROG is not an executable file"
	exit 1
fi

# --- programs under srun -------------------------------------------------------------------
# srun --mpi=pmi2 must give MPICH one 2-rank world: each rank sees "of 2". Without a PMI
# server (--mpi=none) every task would be a singleton "rank 0 of 1".
timeout "$(limit)" srun --mpi=pmi2 -n 2 "$HELLO" >"$tmp/srun-hello.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q 'hello from rank 0 of 2' "$tmp/srun-hello.out" &&
	grep -q 'hello from rank 1 of 2' "$tmp/srun-hello.out"; then
	ok "srun --mpi=pmi2 -n 2 mpi-hello: one MPI world of 2 ranks"
else
	bad "srun --mpi=pmi2 -n 2 mpi-hello (exit $rc)"
	show "$tmp/srun-hello.out"
fi

DSM_PROVIDER=shm DSM_HEAP_SIZE=64G timeout "$(limit)" srun --mpi=pmi2 -n 2 "$PROG" >"$tmp/srun-dsm.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "$EXPECT" "$tmp/srun-dsm.out"; then
	ok "srun --mpi=pmi2 -n 2 $(basename "$PROG"): exit 0, '$EXPECT' printed"
else
	bad "srun --mpi=pmi2 -n 2 $(basename "$PROG") (exit $rc, expected exit 0 and '$EXPECT')"
	show "$tmp/srun-dsm.out"
fi

# --- templates ---------------------------------------------------------------------------
T=$SRC/slurm
single="$tmp/out/single-srun.out"
mkdir -p "$tmp/out"
submit "single node, srun" 0 "$single" DSM_PROGRAM="$PROG" \
	sbatch --wait -o "$single" "$T/dsm-single-node.sbatch" &&
	expect_lines "single-node template, srun: sbatch --wait exit 0, output where -o said" "$single" \
		"dsm-single-node: srun --mpi=pmi2 --ntasks=2" "$EXPECT" "dsm-single-node: exit status 0"

out="$tmp/out/single-mpiexec.out"
submit "single node, mpiexec" 0 "$out" DSM_PROGRAM="$PROG" DSM_LAUNCHER=mpiexec \
	sbatch --wait -o "$out" "$T/dsm-single-node.sbatch" &&
	expect_lines "single-node template, mpiexec inside the allocation: exit 0" "$out" \
		"dsm-single-node: mpiexec -n 2" "$EXPECT" "dsm-single-node: exit status 0"

out="$tmp/out/multi.out"
submit "multi node" 0 "$out" DSM_PROGRAM="$PROG" "DSM_PROVIDER=tcp;ofi_rxm" \
	sbatch --wait -N 1 -n 2 --ntasks-per-node=2 -o "$out" "$T/dsm-multi-node.sbatch" &&
	expect_lines "multi-node template on the one node, tcp;ofi_rxm checked by srun on each node: exit 0" "$out" \
		"dsm-multi-node: job [0-9]*, 2 tasks on 1 node" "DSM_PROVIDER=tcp;ofi_rxm" "$EXPECT" \
		"dsm-multi-node: exit status 0"

out="$tmp/out/multi-mpiexec.out"
submit "multi node, mpiexec" 0 "$out" DSM_PROGRAM="$PROG" "DSM_PROVIDER=tcp;ofi_rxm" DSM_LAUNCHER=mpiexec \
	sbatch --wait -N 1 -n 2 --ntasks-per-node=2 -o "$out" "$T/dsm-multi-node.sbatch" &&
	expect_lines "multi-node template, mpiexec inside the allocation: exit 0" "$out" \
		"dsm-multi-node: mpiexec -n 2" "$EXPECT" "dsm-multi-node: exit status 0"

out="$tmp/out/bench.out"
submit "benchmark suite, smoke" 0 "$out" DSM_BENCH="$PROG" DSM_BENCH_SMOKE=1 \
	DSM_BENCH_SMOKE_SECONDS=30 "DSM_PROVIDER=shm tcp;ofi_rxm" DSM_BENCH_OUT="$tmp/bench-results" \
	sbatch --wait -N 1 -n 2 --ntasks-per-node=2 -o "$out" "$T/dsm-bench.sbatch" &&
	expect_lines "benchmark template, smoke mode ($(basename "$PROG") as the driver), two providers: exit 0" "$out" \
		"DSM_BENCH_SMOKE=1" "DSM_PROVIDER=shm: exit status 0" "DSM_PROVIDER=tcp;ofi_rxm: exit status 0" \
		"dsm-bench: exit status 0" &&
	expect_lines "benchmark results in DSM_BENCH_OUT, one file per provider" "$tmp/bench-results/shm.jsonl" "$EXPECT" &&
	expect_lines "benchmark results for tcp;ofi_rxm" "$tmp/bench-results/tcp+ofi_rxm.jsonl" "$EXPECT"

# A failing program fails the job, with its status.
out="$tmp/out/false.out"
submit "failing program" 1 "$out" DSM_PROGRAM=false \
	sbatch --wait -o "$out" "$T/dsm-single-node.sbatch" &&
	expect_lines "a failing program fails the job: sbatch --wait exit 1" "$out" "dsm-single-node: exit status 1"

# --- bad input ---------------------------------------------------------------------------
for t in dsm-single-node dsm-multi-node dsm-bench; do
	outside_slurm "$t" "$T/$t.sbatch"
done

out="$tmp/out/noprov-single.out"
submit "missing provider (single node)" 1 "$out" DSM_PROGRAM="$PROG" DSM_PROVIDER=nosuchprov \
	sbatch --wait -o "$out" "$T/dsm-single-node.sbatch" &&
	one_line "single-node template, missing provider: exit 1" "$out" "provider 'nosuchprov' not available"

out="$tmp/out/noprov-multi.out"
submit "missing provider (multi node)" 1 "$out" DSM_PROGRAM="$PROG" DSM_PROVIDER=nosuchprov \
	sbatch --wait -N 1 -n 2 --ntasks-per-node=2 -o "$out" "$T/dsm-multi-node.sbatch" &&
	one_line "multi-node template, missing provider: exit 1" "$out" "provider 'nosuchprov' not available .* on: "

out="$tmp/out/noprov-bench.out"
submit "missing provider (bench)" 1 "$out" DSM_BENCH="$PROG" "DSM_PROVIDER=shm nosuchprov" \
	DSM_BENCH_OUT="$tmp/bench-none" sbatch --wait -N 1 -n 2 --ntasks-per-node=2 -o "$out" "$T/dsm-bench.sbatch" &&
	one_line "benchmark template, one of two providers missing: exit 1" "$out" ":nosuchprov"

out="$tmp/out/fewtasks-single.out"
submit "too few tasks (single node)" 2 "$out" DSM_PROGRAM="$PROG" \
	sbatch --wait -n 1 -o "$out" "$T/dsm-single-node.sbatch" &&
	one_line "single-node template, 1 task: exit 2" "$out" "too few tasks: 1"

out="$tmp/out/fewtasks-multi.out"
submit "too few tasks (multi node)" 2 "$out" DSM_PROGRAM="$PROG" \
	sbatch --wait -N 1 -n 1 --ntasks-per-node=1 -o "$out" "$T/dsm-multi-node.sbatch" &&
	one_line "multi-node template, 1 task: exit 2" "$out" "too few tasks: 1"

out="$tmp/out/noprog.out"
submit "missing program" 1 "$out" DSM_PROGRAM="$tmp/no-such-program" \
	sbatch --wait -o "$out" "$T/dsm-single-node.sbatch" &&
	one_line "single-node template, missing program: exit 1" "$out" "program not found"

# --- teardown ----------------------------------------------------------------------------
cluster_finish
