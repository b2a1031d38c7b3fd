#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Settings that every rank must share, set differently on some ranks (mpiexec's per-rank
# -env): dsm_init fails on every rank within seconds (dsm-demo exits 1, never a hang or a
# crash), rank 0's line names the setting and which ranks have which value, and each rank
# that differs from rank 0 says its own value. Then the same job with the settings alike
# runs (the check itself lets a good job through).
#
#   settings_mismatch.sh <mpiexec> <dsm-demo>
set -u
mpiexec=${1:?usage: settings_mismatch.sh <mpiexec> <dsm-demo>}
demo=${2:?}
fail=0
# <variable>|<value on ranks 0, 2, 3>|<value on rank 1>|<what rank 0 says>
cases=(
	'DSM_HEAP_SIZE|64G|32G|the heap size (DSM_HEAP_SIZE, dsm_config_t.heap_size) differs between ranks: 64 GiB on ranks 0, 2-3; 32 GiB on rank 1.'
	'DSM_LINE_SIZE|4096|8192|the line size (DSM_LINE_SIZE, dsm_config_t.line_size) differs between ranks: 4096 on ranks 0, 2-3; 8192 on rank 1.'
	'DSM_DATA|inline|rdma|the data path (DSM_DATA, whose auto depends on the line size) differs between ranks: inline on ranks 0, 2-3; rdma on rank 1.'
)
export DSM_PROVIDER=${DSM_PROVIDER:-shm}
for c in "${cases[@]}"; do
	IFS='|' read -r var a b says <<<"$c"
	t0=$(date +%s%N)
	err=$(timeout 60 "$mpiexec" -n 1 -env "$var" "$a" "$demo" 64 : -n 1 -env "$var" "$b" "$demo" 64 : \
		-n 2 -env "$var" "$a" "$demo" 64 2>&1 >/dev/null)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	own=$(grep -c '^libdsm \[1\] .* here and .* on rank 0, which lists every rank' <<<"$err")
	others=$(grep -c '^libdsm \[[23]\] .* here and' <<<"$err")
	refused=$(grep -c 'dsm_init: Invalid argument' <<<"$err")
	if [ $rc -ne 1 ] || ! grep '^libdsm \[0\] ' <<<"$err" | grep -qF "$says" ||
		[ "$own" -ne 1 ] || [ "$others" -ne 0 ] || [ "$refused" -ne 4 ] || [ $ms -gt 30000 ]; then
		echo "settings_mismatch: FAILED: $var=$a on ranks 0, 2, 3 and $b on rank 1: status $rc after $ms ms, $refused of 4 ranks refused:"
		echo "$err" | sed 's/^/  /'
		fail=1
	else
		echo "settings_mismatch: $var: refused on all 4 ranks in $ms ms: $(grep -m1 -o 'differs between ranks: [^.]*' <<<"$err")"
	fi
	out=$(timeout 60 "$mpiexec" -n 4 -env "$var" "$a" "$demo" 64 2>&1)
	if [ $? -ne 0 ]; then
		echo "settings_mismatch: FAILED: $var=$a on every rank did not run:"
		echo "$out" | tail -n 20 | sed 's/^/  /'
		fail=1
	fi
done
exit $fail
