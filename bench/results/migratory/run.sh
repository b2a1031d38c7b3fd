#!/bin/bash
# Interleaved A/B of migratory lines: DSM_MIGRATORY=0 (off) against 1 (on), 2 ranks,
# 4 KiB lines, shm and tcp;ofi_rxm.  Writes LABEL.PROV.ROUND.json for ab_summary.py:
#   ROUNDS=5 OUT=bench/results/migratory bench/results/migratory/run.sh
#   bench/results/ab_summary.py bench/results/migratory off,on shm,tcp
: "${ROUNDS:=5}" "${OUT:=bench/results/migratory}" "${BUILD:=build}"
for i in $(seq 1 "$ROUNDS"); do
	for prov in shm "tcp;ofi_rxm"; do
		for m in 0 1; do
			tag=$(echo "$prov" | cut -c1-3)
			lab=$([ $m = 0 ] && echo off || echo on)
			FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_MIGRATORY=$m DSM_HEAP_SIZE=64G \
				DSM_PROVIDER="$prov" DSM_LINE_SIZE=4096 timeout 300 \
				mpiexec -n 2 "$BUILD/bench/dsm-bench" floor pingpong sync mutex_sum \
				histogram jacobi >"$OUT/$lab.$tag.$i.json" 2>/dev/null
		done
	done
done
