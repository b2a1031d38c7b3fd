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
# of bench/plot.sh, summary.md (the table), and each run's stderr in <...>.err; then
# bench/tp_run.sh's transport floor beside fi_pingpong in transport.ndjson (and a table).
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
# The transport floor beside fi_pingpong (its own file: its lines are not dsm-bench's).
if ! command -v fi_pingpong >/dev/null; then
	echo "run.sh: fi_pingpong not found (Debian's libfabric-bin): no transport floor" >&2
elif "$here/tp_run.sh" "$build" "$out/transport.ndjson" >/dev/null; then
	{
		echo
		echo "Transport (tp_bench; fi_pingpong run right after it), 4 KiB, medians (p99):"
		echo
		echo "| provider | message round trip, polling | peer asleep | RDMA read, polling | target asleep | fi_pingpong round trip | ours / fi_pingpong |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		jq -s -r 'group_by(.provider)[] | . as $g | def row(b; m): ($g | map(select(.bench == b and .mode == m))[0]) as $r | if $r then "\($r.p50_us) µs (\($r.p99_us))" else "" end;
			"| \($g[0].provider) | \(row("msg_rtt"; "polling")) | \(row("msg_rtt"; "peer_asleep")) | \(row("rma_read"; "polling")) | \(row("rma_read"; "target_asleep")) | \(($g | map(select(.bench == "fi_pingpong"))[0].rtt_us) // "") µs | \(($g | map(select(.bench == "msg_rtt_vs_fi_pingpong"))[0].ratio) // "") |"' \
			"$out/transport.ndjson"
	} >>"$out/summary.md"
else
	echo "run.sh: bench/tp_run.sh failed" >&2
	[ $status -eq 0 ] && status=1
fi
echo "run.sh: results, charts and summary.md in $out"
exit $status
