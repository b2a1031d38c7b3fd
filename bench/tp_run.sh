#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The transport floor beside libfabric's own fi_pingpong (Debian's libfabric-bin), run back
# to back per provider so that both see the same machine at the same time:
#
#   bench/tp_run.sh [build-dir] [out-file]    (defaults: build, <build-dir>/bench-results/transport.ndjson)
#
# Settings (environment):
#   DSM_BENCH_PROVIDERS  providers, separated by spaces    default: "shm tcp;ofi_rxm"
#   DSM_BENCH_ITERS      scales tp_bench's iteration counts default: 1.0
#   DSM_TP_BENCH_LAUNCH  the launcher of tp_bench's 2 ranks default: "mpiexec -n 2"
#   FI_PINGPONG_ITERS    fi_pingpong iterations             default: 20000
# Output: tp_bench's JSON lines, then per provider one line
#   {"bench":"fi_pingpong","provider":...,"size":4096,"iters":N,"rtt_us":R}
# (fi_pingpong prints time per transfer, one direction: rtt_us is twice that), and one line
#   {"bench":"msg_rtt_vs_fi_pingpong","provider":...,"ratio":...}: our 4 KiB round trip
# (median, both sides polling) over fi_pingpong's. Exit status: non-zero if a run failed.
set -u
build=${1:-build}
out=${2:-$build/bench-results/transport.ndjson}
tpb=$build/bench/tp_bench
[ -x "$tpb" ] || { echo "tp_run.sh: $tpb not built" >&2; exit 1; }
command -v fi_pingpong >/dev/null || { echo "tp_run.sh: fi_pingpong not found (apt-get install libfabric-bin)" >&2; exit 1; }
read -r -a providers <<<"${DSM_BENCH_PROVIDERS:-shm tcp;ofi_rxm}"
read -r -a launch <<<"${DSM_TP_BENCH_LAUNCH:-mpiexec -n 2}"
iters=${FI_PINGPONG_ITERS:-20000}
export FI_TCP_IFACE=${FI_TCP_IFACE:-lo} HYDRA_IFACE=${HYDRA_IFACE:-lo} UCX_NET_DEVICES=${UCX_NET_DEVICES:-lo}
mkdir -p "$(dirname "$out")"
: >"$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

# fi_pingpong <provider>: one line of JSON, or nothing (and status 1). Its control port is
# below Linux's ephemeral range (32768-60999), so that no outgoing connection holds it.
fi_pp() {
	local prov=$1 port srv ok=0 line us
	port=$((10000 + RANDOM % 20000))
	: >"$tmp/cli"
	timeout 60 fi_pingpong -p "$prov" -e rdm -S 4096 -I "$iters" -B "$port" >"$tmp/srv" 2>&1 &
	srv=$!
	# The server may take a moment to listen: the client tries again while it runs.
	for _ in $(seq 1 25); do
		sleep 0.2
		kill -0 "$srv" 2>/dev/null || break
		if timeout 60 fi_pingpong -p "$prov" -e rdm -S 4096 -I "$iters" -P "$port" 127.0.0.1 \
			>>"$tmp/cli" 2>&1; then
			ok=1
			break
		fi
	done
	[ $ok -eq 1 ] || kill "$srv" 2>/dev/null
	wait "$srv"
	# bytes #sent #ack total time MB/sec usec/xfer Mxfers/sec
	line=$(grep -E '^4k ' "$tmp/cli" | tail -n 1)
	us=$(echo "$line" | awk '{print $7}')
	if [ $ok -ne 1 ] || [ -z "$us" ]; then
		echo "tp_run.sh: fi_pingpong -p '$prov' (port $port) failed:" >&2
		sed 's/^/tp_run.sh:   /' "$tmp/cli" "$tmp/srv" >&2
		return 1
	fi
	printf '{"bench":"fi_pingpong","provider":"%s","size":4096,"iters":%d,"rtt_us":%.2f}\n' \
		"$prov" "$iters" "$(echo "$us" | awk '{print 2 * $1}')"
}

echo "tp_run.sh: $(uptime)" >&2
for prov in "${providers[@]}"; do
	echo "tp_run.sh: DSM_PROVIDER='$prov' ${launch[*]} $tpb, then fi_pingpong -p '$prov' -e rdm -S 4096 -I $iters" >&2
	if ! DSM_PROVIDER=$prov timeout 300 "${launch[@]}" "$tpb" >"$tmp/tp" 2>"$tmp/tp.err"; then
		echo "tp_run.sh: tp_bench on '$prov' failed:" >&2
		tail -n 5 "$tmp/tp.err" | sed 's/^/tp_run.sh:   /' >&2
		status=1
		continue
	fi
	fi_pp "$prov" >"$tmp/fp" || status=1
	cat "$tmp/tp" "$tmp/fp" >>"$out"
	ours=$(jq -r 'select(.bench == "msg_rtt" and .mode == "polling") | .p50_us' "$tmp/tp")
	theirs=$(jq -r 'select(.bench == "fi_pingpong") | .rtt_us' "$tmp/fp" 2>/dev/null)
	if [ -n "$ours" ] && [ -n "$theirs" ]; then
		jq -n -c --arg p "$prov" --argjson a "$ours" --argjson b "$theirs" \
			'{bench: "msg_rtt_vs_fi_pingpong", provider: $p, ours_us: $a, fi_pingpong_us: $b, ratio: (($a / $b * 100 | round) / 100)}' >>"$out"
	fi
done
echo "tp_run.sh: $(uptime)" >&2
cat "$out"
exit $status
