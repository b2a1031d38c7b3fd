#!/bin/bash
# SPDX-License-Identifier: MIT
#
# dsm_init refuses a malformed setting of each type, on every rank, before MPI starts:
# the program sees -EINVAL (dsm-demo exits 1) within seconds, and stderr has the line that
# names the variable, the value and what is allowed. Before MPI, a rank has no number yet:
# the line comes without the "libdsm [N]" prefix that every line after the bootstrap has.
#
#   settings_refused.sh <mpiexec> <dsm-demo>
set -u
mpiexec=${1:?usage: settings_refused.sh <mpiexec> <dsm-demo>}
demo=${2:?}
fail=0
cases=(
	'DSM_LINE_SIZE=3000|DSM_LINE_SIZE='"'"'3000'"'"' is not valid: want a power of two'
	'DSM_TP_HEARTBEAT_MS=abc|DSM_TP_HEARTBEAT_MS='"'"'abc'"'"' is not valid: want an integer from 0 to 3600000 (ms)'
	'DSM_DATA=carrier-pigeon|DSM_DATA='"'"'carrier-pigeon'"'"' is not valid: want one of: auto inline rdma'
	'DSM_HOLD_EARLY=maybe|DSM_HOLD_EARLY='"'"'maybe'"'"' is not valid: want 1 or 0'
)
for c in "${cases[@]}"; do
	IFS='|' read -r setting says <<<"$c"
	t0=$(date +%s%N)
	err=$(env "$setting" timeout 60 "$mpiexec" -n 2 "$demo" 64 2>&1 >/dev/null)
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	lines=$(grep -cF "$says" <<<"$err")
	early=$(grep -F "$says" <<<"$err" | grep -c '^libdsm [^[]')
	if [ $rc -ne 1 ] || [ "$lines" -ne 2 ] || [ "$early" -ne 2 ] || [ $ms -gt 20000 ] ||
		! grep -q 'dsm_init: Invalid argument' <<<"$err"; then
		echo "settings_refused: FAILED: $setting: status $rc after $ms ms, $lines of 2 ranks said it:"
		echo "$err" | sed 's/^/  /'
		fail=1
	else
		echo "settings_refused: $setting: refused on both ranks in $ms ms: $(grep -m1 -oF "$says" <<<"$err")"
	fi
done
exit $fail
