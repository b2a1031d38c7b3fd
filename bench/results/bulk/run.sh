#!/bin/bash
# The bulk-data runs of BENCHMARKS.md ("Bulk data"): 5 rounds; in each, for shm 4 KiB,
# shm 64 KiB and tcp 4 KiB, the build before read-ahead (BEFORE, commit ba99a59) and this
# one with DSM_PREFETCH=off and auto, one after the other.
# usage: bench/results/bulk/run.sh BEFORE/bench/dsm-bench AFTER/bench/dsm-bench OUTDIR
B=$1 A=$2 OUT=$3
mkdir -p "$OUT"
export FI_TCP_IFACE=lo HYDRA_IFACE=lo UCX_NET_DEVICES=lo DSM_HEAP_SIZE=64G
for i in 1 2 3 4 5; do
 for cfg in shm4k shm64k tcp4k; do
  case $cfg in shm4k) P=shm; L=4096;; shm64k) P=shm; L=65536;; tcp4k) P="tcp;ofi_rxm"; L=4096;; esac
  for lab in before off auto; do
   bin=$A; pf=auto; [ $lab = before ] && bin=$B; [ $lab = off ] && pf=off
   DSM_PROVIDER=$P DSM_LINE_SIZE=$L DSM_PREFETCH=$pf timeout 300 mpiexec -n 2 $bin floor latency bandwidth pingpong matmul jacobi 2>/dev/null | grep '^{' > "$OUT/$lab.$cfg.$i.json"
   DSM_PROVIDER=$P DSM_LINE_SIZE=$L DSM_PREFETCH=$pf timeout 300 mpiexec -n 2 $bin threads 2>/dev/null | grep '^{' >> "$OUT/$lab.$cfg.$i.json"
  done
 done
done
