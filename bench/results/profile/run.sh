#!/usr/bin/env bash
# What DSM_PROFILE costs: the same workloads with the profile off and on, in turn, 2 ranks on
# shm with 4 KiB lines, 5 runs each: latency (a cold miss, against the raw userfaultfd
# fault), pingpong (a line handed back and forth), histogram (20x the default draws) and
# jacobi (default and multiple-writer memory beside MPI). Writes off.<i>.json and
# on.<i>.json; summary.py reads them. The profile's files go to a temporary directory.
# Usage: run.sh BUILD_DIR [runs]
set -euo pipefail
b=${1:?build dir}; n=${2:-5}
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # run <off|on> <i>
  local env=()
  [ "$1" = on ] && env=(DSM_PROFILE="$tmp/p$2")
  env FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER=shm DSM_LINE_SIZE=4096 \
    "${env[@]}" mpiexec -n 2 "$b/bench/dsm-bench" latency pingpong jacobi > "$1.$2.json"
  env FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER=shm DSM_LINE_SIZE=4096 \
    "${env[@]}" mpiexec -n 2 "$b/bench/dsm-bench" --size 20 histogram >> "$1.$2.json"
}
for i in $(seq 1 "$n"); do
  run off "$i"
  run on "$i"
done
"$b/tools/dsm-prof" --no-png --top 3 "$tmp/p1" > dsm-prof.txt
