#!/bin/bash
# The application runs of BENCHMARKS.md ("Applications against pthreads and MPI"): 5 rounds
# of the six application workloads, shm and tcp, 4 KiB lines, 2 ranks.
# usage: bench/results/apps2/run.sh BUILD/bench/dsm-bench OUTDIR
A=$1 OUT=$2
mkdir -p "$OUT"
export FI_TCP_IFACE=lo HYDRA_IFACE=lo UCX_NET_DEVICES=lo DSM_HEAP_SIZE=64G
for i in 1 2 3 4 5; do
 for cfg in shm4k tcp4k; do
  case $cfg in shm4k) P=shm;; tcp4k) P="tcp;ofi_rxm";; esac
  DSM_PROVIDER=$P DSM_LINE_SIZE=4096 timeout 300 mpiexec -n 2 $A jacobi matmul histogram mutex_sum radix fft 2>/dev/null | grep '^{' > "$OUT/after.$cfg.$i.json"
 done
done
