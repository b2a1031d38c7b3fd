#!/bin/bash
# The batching runs of BENCHMARKS.md ("Bulk data", batches): 5 rounds; in each, for shm
# 4 KiB, tcp 4 KiB and shm 64 KiB lines, the build before batched grants (BEFORE, commit
# 10b27b7) and this one, one after the other.
# usage: bench/results/batch/run.sh BEFORE/bench/dsm-bench AFTER/bench/dsm-bench OUTDIR
B=$1 A=$2 OUT=$3
mkdir -p "$OUT"
export FI_TCP_IFACE=lo HYDRA_IFACE=lo UCX_NET_DEVICES=lo DSM_HEAP_SIZE=64G
for i in 1 2 3 4 5; do
 for cfg in shm4k tcp4k shm64k; do
  case $cfg in shm4k) P=shm; L=4096;; shm64k) P=shm; L=65536;; tcp4k) P="tcp;ofi_rxm"; L=4096;; esac
  for lab in before after; do
   bin=$A; [ $lab = before ] && bin=$B
   DSM_PROVIDER=$P DSM_LINE_SIZE=$L timeout 300 mpiexec -n 2 $bin floor latency bandwidth pingpong matmul jacobi histogram 2>/dev/null | grep '^{' > "$OUT/$lab.$cfg.$i.json"
   DSM_PROVIDER=$P DSM_LINE_SIZE=$L timeout 300 mpiexec -n 2 $bin threads 2>/dev/null | grep '^{' >> "$OUT/$lab.$cfg.$i.json"
  done
 done
done
