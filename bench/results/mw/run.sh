#!/usr/bin/env bash
# Multiple-writer memory against default memory and MPI: histogram (20x the default draws, so
# that a run lasts milliseconds), jacobi and mw_rounds, 2 ranks on shm, 4 KiB lines, each way of finding
# writes (DSM_MW_TRACK), 5 runs each. Writes <track>.<i>.json; summary.py reads them.
# Usage: run.sh BUILD_DIR [runs]
set -euo pipefail
b=${1:?build dir}; n=${2:-5}
cd "$(dirname "$0")"
for i in $(seq 1 "$n"); do
  for track in async twin; do
    FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER=shm DSM_LINE_SIZE=4096 \
      DSM_MW_TRACK=$track mpiexec -n 2 "$b/bench/dsm-bench" --size 20 histogram > "$track.$i.json"
    FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER=shm DSM_LINE_SIZE=4096 \
      DSM_MW_TRACK=$track mpiexec -n 2 "$b/bench/dsm-bench" jacobi mw_rounds >> "$track.$i.json"
  done
done
