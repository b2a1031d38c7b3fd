#!/bin/bash
# The read-ahead window runs of BENCHMARKS.md ("Windows for large lines"): 5 rounds; in
# each, for shm and tcp with 64 KiB lines, the build with windows of 4 such lines (BEFORE,
# commit b7b756b) and the one with 16, one after the other.
# usage: bench/results/window/run.sh BEFORE/bench/dsm-bench AFTER/bench/dsm-bench OUTDIR
B=$1 A=$2 OUT=$3
mkdir -p "$OUT"
export FI_TCP_IFACE=lo HYDRA_IFACE=lo UCX_NET_DEVICES=lo DSM_HEAP_SIZE=64G
for i in 1 2 3 4 5; do
 for cfg in shm64k tcp64k; do
  case $cfg in shm64k) P=shm;; tcp64k) P="tcp;ofi_rxm";; esac
  for lab in before after; do
   bin=$A; [ $lab = before ] && bin=$B
   DSM_PROVIDER=$P DSM_LINE_SIZE=65536 timeout 300 mpiexec -n 2 $bin bandwidth jacobi matmul fft radix 2>/dev/null | grep '^{' > "$OUT/$lab.$cfg.$i.json"
  done
 done
done
