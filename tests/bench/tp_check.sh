#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs bench/tp_run.sh (tp_bench beside fi_pingpong) briefly on one provider and checks its
# JSON lines with jq: the round trips and RDMA reads in both modes, bandwidth from 4 KiB to
# 4 MiB both ways, fi_pingpong's round trip and the ratio, all positive. Times are never
# asserted.
#   tp_check.sh <mpiexec> <source-dir> <build-dir> <provider> ("+" for ";": tcp+ofi_rxm)
set -u
mpiexec=$1 src=$2 build=$3 prov=${4//+/;}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail() {
	echo "FAIL: $*"
	cat "$out"
	exit 1
}
DSM_TP_BENCH_LAUNCH="$mpiexec -n 2" DSM_BENCH_PROVIDERS=$prov DSM_BENCH_ITERS=${DSM_BENCH_ITERS:-0.05} FI_PINGPONG_ITERS=${FI_PINGPONG_ITERS:-2000} \
	"$src/bench/tp_run.sh" "$build" "$out" >/dev/null || fail "tp_run.sh exited with status $?"
jq -e . "$out" >/dev/null 2>&1 || fail "not JSON lines"
n=0
for sel in 'msg_rtt polling' 'msg_rtt peer_asleep' 'rma_read polling' 'rma_read target_asleep'; do
	set -- $sel
	jq -e --arg b "$1" --arg m "$2" --arg p "$prov" -s 'map(select(.bench == $b and .mode == $m
		and .provider == $p and .iters > 0 and .p50_us > 0 and .p99_us >= .p50_us)) | length == 1' \
		"$out" >/dev/null || fail "no valid $1 row in mode $2"
	n=$((n + 1))
done
for op in write read; do
	for size in 4096 16384 65536 262144 1048576 4194304; do
		jq -e --arg op "$op" --argjson s "$size" -s 'map(select(.bench == "rma_bw" and .op == $op
			and .size == $s and .MBps > 0)) | length == 1' "$out" >/dev/null ||
			fail "no valid rma_bw row for $op of $size bytes"
		n=$((n + 1))
	done
done
jq -e -s 'map(select(.bench == "fi_pingpong" and .rtt_us > 0)) | length == 1' "$out" >/dev/null ||
	fail "no fi_pingpong row"
jq -e -s 'map(select(.bench == "msg_rtt_vs_fi_pingpong" and .ratio > 0
	and ((.ours_us / .fi_pingpong_us) - .ratio | fabs) < 0.01)) | length == 1' "$out" >/dev/null ||
	fail "no consistent ratio row"
n=$((n + 2))
jq -c 'select(.bench == "msg_rtt_vs_fi_pingpong")' "$out"
echo "$n rows checked ($prov)"
