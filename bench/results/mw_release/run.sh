#!/usr/bin/env bash
# What a release costs (mw_release), each way of finding writes: 2 ranks on shm with 4 KiB
# lines and 4 on tcp with 64 KiB lines, N runs each. Writes <setup>-<track>.<i>.json;
# summary.py reads them. Usage: run.sh BUILD_DIR [runs]
set -euo pipefail
b=${1:?build dir}; n=${2:-3}
cd "$(dirname "$0")"
for i in $(seq 1 "$n"); do
  for t in twin async; do
    FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER=shm DSM_LINE_SIZE=4096 \
      DSM_MW_TRACK=$t mpiexec -n 2 "$b/bench/dsm-bench" mw_release > "shm-4k-$t.$i.json"
    FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER="tcp;ofi_rxm" \
      DSM_LINE_SIZE=65536 DSM_MW_TRACK=$t mpiexec -n 4 "$b/bench/dsm-bench" mw_release \
      > "tcp-64k-$t.$i.json"
  done
done
