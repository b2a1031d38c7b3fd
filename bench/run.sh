#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The suite on this machine, as `make bench` runs it: dsm-bench once per provider and line
# size, then the charts and a table of the figures.
#
#   bench/run.sh [build-dir] [out-dir]        (defaults: build, <build-dir>/bench-results)
#
# Settings (environment):
#   DSM_BENCH_PROVIDERS   providers, separated by spaces     default: "shm tcp;ofi_rxm"
#   DSM_BENCH_LINE_SIZES  line sizes in bytes                default: "4096 65536"
#   DSM_BENCH_RANKS       ranks                              default: 2
#   DSM_BENCH_ARGS        dsm-bench arguments (--smoke, --size F, workload names)
#   DSM_BENCH_LAUNCH      the launcher, before the program   default: "mpiexec -n $DSM_BENCH_RANKS"
# Output: <out-dir>/<provider>-<line size>.jsonl (';' in a provider becomes '+'), the PNGs
# of bench/plot.sh, summary.md (the table), and each run's stderr in <...>.err.
# Exit status: the first failing run's, else the plot's.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
out=${2:-$build/bench-results}
bench=$build/bench/dsm-bench
[ -x "$bench" ] || { echo "run.sh: $bench not built (make, with -DDSM_BUILD_BENCH=ON)" >&2; exit 1; }
ranks=${DSM_BENCH_RANKS:-2}
read -r -a launch <<<"${DSM_BENCH_LAUNCH:-mpiexec -n $ranks}"
read -r -a providers <<<"${DSM_BENCH_PROVIDERS:-shm tcp;ofi_rxm}"
read -r -a sizes <<<"${DSM_BENCH_LINE_SIZES:-4096 65536}"
# shellcheck disable=SC2206 # split at spaces on purpose
args=(${DSM_BENCH_ARGS:-})
# One machine: keep every byte on loopback (libfabric tcp, hydra, UCX would take eth0).
export FI_TCP_IFACE=${FI_TCP_IFACE:-lo} HYDRA_IFACE=${HYDRA_IFACE:-lo} UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}
export DSM_HEAP_SIZE=${DSM_HEAP_SIZE:-64G}
mkdir -p "$out"
rm -f "$out"/*.jsonl "$out"/*.png "$out"/*.err

echo "run.sh: $(uptime)"
status=0
for prov in "${providers[@]}"; do
	for ls in "${sizes[@]}"; do
		f=$out/${prov//;/+}-$ls
		echo "run.sh: DSM_PROVIDER='$prov' DSM_LINE_SIZE=$ls ${launch[*]} $bench ${args[*]} > $f.jsonl"
		t0=$(date +%s)
		DSM_PROVIDER=$prov DSM_LINE_SIZE=$ls "${launch[@]}" "$bench" "${args[@]}" >"$f.jsonl" 2>"$f.err"
		rc=$?
		echo "run.sh:   exit status $rc, $(grep -c . "$f.jsonl") lines, $(($(date +%s) - t0)) s"
		if [ $rc -ne 0 ]; then
			grep '"error"' "$f.jsonl" | sed 's/^/run.sh:   /'
			tail -n 5 "$f.err" | sed 's/^/run.sh:   /'
			[ $status -eq 0 ] && status=$rc
		fi
	done
done
echo "run.sh: $(uptime)"

"$here/plot.sh" "$out" "$out"/*.jsonl || { [ $status -eq 0 ] && status=1; }

# The tables: one row per metric and a column per run (medians, p99, [ratio to the
# baseline]); then every result.
{
	jq -s -r -f "$here/summary.jq" "$out"/*.jsonl
	echo
	echo "| workload | metric | provider | line | threads | value | unit | baseline | ratio |"
	echo "| --- | --- | --- | ---: | ---: | ---: | --- | --- | ---: |"
	cat "$out"/*.jsonl | jq -r 'select(.metric and (.stat // "") != "p99") |
		"| \(.workload) | \(.metric) | \(.provider) | \(.line_size / 1024) KiB | \(.threads) | \(.value * 100 | round / 100)\(if .p99_us then " (p99 \(.p99_us | round))" else "" end) | \(.unit) | \(if .baseline_name then "\(.baseline_name) \(.baseline * 100 | round / 100)" else "" end) | \(if .ratio then (.ratio * 100 | round / 100) else "" end) |"'
} >"$out/summary.md"
echo "run.sh: results, charts and summary.md in $out"
exit $status
