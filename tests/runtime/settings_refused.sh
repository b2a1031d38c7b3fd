#!/bin/bash
# SPDX-License-Identifier: MIT
#
# dsm_init refuses a malformed setting of each type, on every rank, before MPI starts:
# the program sees -EINVAL (dsm-demo exits 1) within seconds, and stderr has the line that
# names the variable, the value and what is allowed. Before MPI, a rank has no number yet:
# the line comes without the "libdsm [N]" prefix that every line after the bootstrap has.
# Then a line size this machine cannot give transport buffers for: refused with the reason.
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
# A valid line size too large for this machine's transport buffers: refused with the reason
# on every rank, not a bare "Cannot allocate memory".
err=$(env DSM_LINE_SIZE=1G timeout 60 "$mpiexec" -n 2 "$demo" 64 2>&1 >/dev/null)
rc=$?
lines=$(grep -c 'no memory for .* buffers of .*lower DSM_LINE_SIZE or DSM_TP_SEND_BUFS' <<<"$err")
if [ $rc -ne 1 ] || [ "$lines" -ne 2 ]; then
	echo "settings_refused: FAILED: DSM_LINE_SIZE=1G: status $rc, $lines of 2 ranks said why:"
	echo "$err" | sed 's/^/  /'
	fail=1
else
	echo "settings_refused: DSM_LINE_SIZE=1G: refused on both ranks: $(grep -m1 -o 'no memory for [^:]*' <<<"$err")"
fi
exit $fail
