#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Turns dsm-bench's JSON lines into PNG charts, with jq and gnuplot (Debian: gnuplot-nox).
#
#   bench/plot.sh <out-dir> <results.jsonl>...
#
# Each input file is one dsm-bench run (one provider, one line size); runs at several line
# sizes and providers are drawn together:
#   latency-<provider>.png  remote miss latencies (median, p99 as error bar) beside their floor,
#                           per line size
#   bandwidth.png           DSM sequential scan against the transport's RDMA read bandwidth,
#                           by size
#   threads.png             read faults per second against application threads
#   apps.png                each application's time under libdsm beside plain MPI
# A chart whose results are missing is left out, with a note on stderr.
set -eu
[ $# -ge 2 ] || {
	echo "usage: $0 <out-dir> <results.jsonl>..." >&2
	exit 2
}
out=$1
shift
command -v gnuplot >/dev/null || {
	echo "plot: gnuplot not found (apt-get install gnuplot-nox; tools/install-deps.sh)" >&2
	exit 1
}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
all=$tmp/all.jsonl
cat "$@" | jq -c 'select(.metric and (.value | type) == "number")' >"$all"
host=$(cat "$@" | jq -r 'select(.workload == "meta") | "\(.hosts) host(s), \(.cpu), \(.cores) cores, Linux \(.kernel)"' | head -n1)

term='set terminal pngcairo size 900,520 font "DejaVu Sans,10" noenhanced'

# ---- latency: one chart per provider --------------------------------------------------------
for prov in $(jq -r 'select(.workload == "latency") | .provider | gsub(" "; "_")' "$all" | sort -u); do
	dat=$tmp/lat-${prov//;/+}.dat
	# rows: metric; columns: per line size the median, p99 and the floor
	jq -r -s --arg p "$prov" '
		map(select(.workload == "latency" and .provider == $p and .stat == "median"))
		| (map(.line_size) | unique) as $ls
		| (map(.metric) | unique | sort_by(if . == "read_miss" then 0 elif . == "read_miss_dirty" then 1
			elif . == "write_miss" then 2 elif . == "upgrade" then 3 else 4 end)) as $ms
		| $ms[] as $m | [$m] + [$ls[] as $l | (first(.[] | select(.metric == $m and .line_size == $l))
			// {value: 0, p99_us: 0, baseline: 0}) | .value, .p99_us, (.baseline // 0)]
		| map(tostring) | @tsv' "$all" >"$dat"
	read -r -a sizes <<<"$(jq -r -s --arg p "$prov" 'map(select(.workload == "latency" and .provider == $p)) | map(.line_size) | unique | map(tostring) | join(" ")' "$all")"
	plot=""
	for ((i = 0; i < ${#sizes[@]}; i++)); do
		c=$((2 + 3 * i)) k=$((sizes[i] / 1024))
		plot+="'$dat' using $c:$c:$((c + 1)):xtic(1) title '$k KiB lines: libdsm (median, bar to p99)' lc $((i + 1)), "
		plot+="'' using $((c + 2)):$((c + 2)):$((c + 2)) title '$k KiB lines: floor (polling)' lc $((i + 1)) fs pattern 4, "
	done
	gnuplot <<-EOF
		$term
		set output '$out/latency-${prov//;/+}.png'
		set title "Remote miss latency, provider $prov ($host)"
		set ylabel 'microseconds (log)'
		set logscale y
		set style data histograms
		set style histogram errorbars gap 2 lw 1
		set style fill solid 0.7 border -1
		set key top left
		set grid ytics
		set bars front
		plot ${plot%, }
	EOF
	echo "plot: $out/latency-${prov//;/+}.png"
done

# ---- bandwidth: RDMA read curve and DSM scan points per provider ----------------------------
if jq -e -s 'map(select(.metric == "scan_read")) | length > 0' "$all" >/dev/null; then
	plot=""
	n=0
	for prov in $(jq -r 'select(.metric == "scan_read" or .metric == "rma_read_bw") | .provider' "$all" | sort -u); do
		n=$((n + 1))
		f=${prov//;/+}
		jq -r --arg p "$prov" 'select(.metric == "rma_read_bw" and .provider == $p) | "\(.size) \(.value)"' "$all" |
			sort -n | awk '{v[$1] = $2} END {for (s in v) print s, v[s]}' | sort -n >"$tmp/rma-$f.dat"
		jq -r --arg p "$prov" 'select(.metric == "scan_read" and .provider == $p) | "\(.line_size) \(.value)"' "$all" |
			sort -n >"$tmp/scan-$f.dat"
		[ -s "$tmp/rma-$f.dat" ] && plot+="'$tmp/rma-$f.dat' using 1:2 with linespoints lc $n dt 2 title 'RDMA read, 16 in flight, $prov', "
		[ -s "$tmp/scan-$f.dat" ] && plot+="'$tmp/scan-$f.dat' using 1:2 with linespoints lc $n lw 2 pt 7 ps 1.5 title 'libdsm sequential scan, $prov', "
	done
	gnuplot <<-EOF
		$term
		set output '$out/bandwidth.png'
		set title "Reading remote memory ($host)"
		set xlabel 'transfer size = line size (bytes)'
		set ylabel 'MB/s (log)'
		set logscale xy
		set format x '%.0s%cB'
		set key top left
		set grid
		plot ${plot%, }
	EOF
	echo "plot: $out/bandwidth.png"
else
	echo "plot: no bandwidth results, bandwidth.png left out" >&2
fi

# ---- threads --------------------------------------------------------------------------------
if jq -e -s 'map(select(.workload == "threads")) | length > 0' "$all" >/dev/null; then
	plot=""
	n=0
	for key in $(jq -r 'select(.workload == "threads") | "\(.provider)@\(.line_size)"' "$all" | sort -u); do
		n=$((n + 1))
		prov=${key%@*} ls=${key#*@}
		f=$tmp/thr-${prov//;/+}-$ls.dat
		jq -r --arg p "$prov" --argjson l "$ls" 'select(.workload == "threads" and .provider == $p and .line_size == $l) | "\(.threads) \(.value)"' "$all" | sort -n >"$f"
		plot+="'$f' using 1:2 with linespoints lw 2 pt 7 lc $n title '$prov, $((ls / 1024)) KiB lines', "
	done
	gnuplot <<-EOF
		$term
		set output '$out/threads.png'
		set title "Read faults per second in one rank, lines homed at another ($host)"
		set xlabel 'application threads'
		set ylabel 'faults per second'
		set logscale x 2
		set xtics (1, 2, 4, 8)
		set yrange [0:*]
		set key top left
		set grid
		plot ${plot%, }
	EOF
	echo "plot: $out/threads.png"
else
	echo "plot: no threads results, threads.png left out" >&2
fi

# ---- applications: libdsm against plain MPI -------------------------------------------------
apps='["jacobi", "matmul", "histogram", "mutex_sum", "radix", "fft"]'
jq -r --argjson apps "$apps" 'select(.workload as $w | $apps | index($w)) | select(.baseline_name and .unit == "s")
	| "\(.workload):\(.line_size / 1024)K:\(.provider | gsub(";ofi_rxm"; ""))\t\(.value)\t\(.baseline)"' "$all" >"$tmp/apps.dat"
if [ -s "$tmp/apps.dat" ]; then
	gnuplot <<-EOF
		$term
		set output '$out/apps.png'
		set title "Applications: libdsm against plain MPI, same job ($host)"
		set ylabel 'seconds'
		set style data histograms
		set style histogram clustered gap 1
		set style fill solid 0.7 border -1
		set xtics rotate by -30
		set key top left
		set grid ytics
		set datafile separator '\t'
		plot '$tmp/apps.dat' using 2:xtic(1) title 'libdsm', '' using 3 title 'MPI'
	EOF
	echo "plot: $out/apps.png"
else
	echo "plot: no application results (with an MPI baseline, in seconds), apps.png left out" >&2
fi
