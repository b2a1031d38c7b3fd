#!/bin/bash
# SPDX-License-Identifier: MIT
#
# What the binaries are linked against, read from the binaries themselves:
#   - the model checker and the engine's tests: neither MPI nor libfabric, not as a
#     library they need (readelf -d) nor as a symbol they take from one (nm -u);
#   - dsm-bench: libdsm.so, from which it takes the public API (dsm_init, dsm_query)
#     instead of a copy of its own.
#
#   link_test.sh <dsm-bench> <coherence binary>...
set -u -o pipefail
bench=${1:?usage: link_test.sh <dsm-bench> <coherence binary>...}
shift
fail=0
for bin in "$bench" "$@"; do
	[ -x "$bin" ] || { echo "link_test: FAILED: $bin is not built"; exit 1; }
	readelf -d "$bin" >/dev/null && nm -u "$bin" >/dev/null ||
		{ echo "link_test: FAILED: cannot read $bin"; exit 1; }
done
for bin in "$@"; do
	needed=$(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
	foreign=$(nm -u "$bin" | awk '{print $NF}' | grep -E '^(P?MPI_|fi_|ofi_|hwloc_)' | head -5 | tr '\n' ' ')
	if grep -qE 'libmpi|libfabric|libhwloc' <<<"$needed" || [ -n "$foreign" ]; then
		echo "link_test: FAILED: $(basename "$bin") needs [$needed] and takes [$foreign]"
		fail=1
	else
		echo "link_test: $(basename "$bin"): needs only [$needed], no MPI or libfabric symbol"
	fi
done
needed=$(readelf -d "$bench" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
takes=$(nm -u "$bench" | awk '{print $NF}' | grep -cE '^dsm_(init|query|finalize|all_alloc)$')
if ! grep -q 'libdsm.so' <<<"$needed" || [ "$takes" -ne 4 ] || nm "$bench" | grep -qE ' T dsm_init$'; then
	echo "link_test: FAILED: dsm-bench needs [$needed], takes $takes of dsm_init, dsm_query," \
		"dsm_finalize, dsm_all_alloc from a library"
	fail=1
else
	echo "link_test: dsm-bench needs [$needed] and takes the public API from libdsm.so"
fi
exit $fail
