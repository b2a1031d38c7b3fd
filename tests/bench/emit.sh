#!/bin/bash
# SPDX-License-Identifier: MIT
# bench_emit/bench_fail write valid JSON, escaped, with ratio = value / baseline.
#   emit.sh <bench_emit_test>
set -u
out=$("$1") || { echo "FAIL: bench_emit_test exited non-zero"; exit 1; }
echo "$out"
[ "$(echo "$out" | wc -l)" -eq 3 ] || { echo "FAIL: expected 3 lines (rank 1 prints none)"; exit 1; }
echo "$out" | sed -n 1p | jq -e '.workload == "lat\"ency\\" and .metric == "read\nmiss\t\u0001"
	and .provider == "tcp;ofi_rxm" and .ranks == 2 and .threads == 1 and .line_size == 4096
	and .value == 30 and .baseline_name == "floor" and .baseline == 20 and .ratio == 1.5
	and .k == 3' >/dev/null || { echo "FAIL: line 1"; exit 1; }
echo "$out" | sed -n 2p | jq -e '.value == null' >/dev/null || { echo "FAIL: NaN is not null"; exit 1; }
echo "$out" | sed -n 3p | jq -e '.workload == "w" and .error == "expected 1, got \"two\"" and .rank == 0' \
	>/dev/null || { echo "FAIL: the failure line"; exit 1; }
echo PASS
