#!/usr/bin/env bash
# The bounded cache against an unlimited one (the cache workload restarts libdsm between the
# two in the same job): 2 ranks on shm with 4 KiB lines, and on tcp with 64 KiB lines by
# RDMA, 5 runs each. Writes shm-4k.<i>.json and tcp-64k.<i>.json; summary.py reads them.
# Usage: run.sh BUILD_DIR [runs]
set -euo pipefail
b=${1:?build dir}; n=${2:-5}
cd "$(dirname "$0")"
for i in $(seq 1 "$n"); do
  FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER=shm DSM_LINE_SIZE=4096 \
    mpiexec -n 2 "$b/bench/dsm-bench" cache > "shm-4k.$i.json"
  FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER="tcp;ofi_rxm" \
    DSM_LINE_SIZE=65536 DSM_DATA=rdma mpiexec -n 2 "$b/bench/dsm-bench" cache > "tcp-64k.$i.json"
done
