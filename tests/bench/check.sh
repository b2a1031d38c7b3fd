#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs one dsm-bench workload in smoke mode under mpiexec and checks its JSON lines with jq:
# every line parses, a meta line comes first, each result has the common members with a
# positive value, ratio = value / baseline where a baseline is given, no line reports an
# error, and the metrics the workload promises are there. Times are never asserted.
#
#   check.sh <mpiexec> <ranks> <dsm-bench> <workload> [dsm-bench args...]
# Exit status: 0 pass, 1 fail, 77 skipped (an application workload not built in).
set -u
mpiexec=$1 ranks=$2 bench=$3 wl=$4
shift 4
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
fail() {
	echo "FAIL ($wl): $*"
	echo "--- stdout"; cat "$out"; echo "--- stderr"; tail -n 30 "$err"
	exit 1
}

echo "running: $mpiexec -n $ranks $bench --smoke $* $wl"
"$mpiexec" -n "$ranks" "$bench" --smoke "$@" "$wl" >"$out" 2>"$err"
rc=$?
if grep -q '"skipped"' "$out"; then
	echo "skipped: $(jq -r 'select(.skipped) | "\(.workload): \(.skipped)"' "$out")"
	exit 77
fi
[ $rc -eq 0 ] || fail "dsm-bench exited with status $rc"
jq -e . "$out" >/dev/null 2>&1 || fail "stdout is not JSON lines"
[ "$(head -n1 "$out" | jq -r .workload)" = meta ] || fail "the first line is not the meta line"
head -n1 "$out" | jq -e --argjson n "$ranks" '.ranks == $n and .hosts >= 1 and (.kernel | length > 0)
	and .line_size > 0 and (.provider | length > 0)' >/dev/null || fail "meta line incomplete"
! jq -e 'select(.error)' "$out" >/dev/null || fail "a check failed: $(jq -c 'select(.error)' "$out")"

results=$(jq -c 'select(.workload != "meta")' "$out")
[ -n "$results" ] || fail "no results"
# The common members, a positive finite value, and a consistent ratio.
bad=$(jq -c --arg wl "$wl" --argjson n "$ranks" 'select(.workload != "meta") | select(
	(.workload != $wl) or (.ranks != $n) or ((.provider | type) != "string") or
	((.threads | type) != "number") or .threads < 1 or ((.line_size | type) != "number") or
	((.metric | type) != "string") or ((.unit | type) != "string") or
	((.value | type) != "number") or .value <= 0 or
	(has("baseline_name") and (((.baseline | type) != "number") or .baseline <= 0 or
		((.ratio | type) != "number") or
		(((.ratio - .value / .baseline) | fabs) > 1e-4 * .ratio + 1e-9))))' "$out")
[ -z "$bad" ] || fail "malformed results: $bad"

# What each workload promises.
has() { # <jq filter selecting the lines that must exist> <what>
	jq -e -s "map(select($1)) | length > 0" "$out" >/dev/null || fail "missing: $2"
}
# An application: the MPI time, the pthreads time (one process, a thread per DSM thread of
# every rank), and the DSM time with MPI as its baseline and the pthreads time beside it.
app_versions() {
	has ".workload == \"$wl\" and .metric == \"time\" and .version == \"mpi\"" "the mpi version"
	has ".workload == \"$wl\" and .metric == \"time\" and .version == \"pthreads\" and
		.processes == 1 and .threads >= $ranks" "the pthreads version"
	has ".workload == \"$wl\" and .metric == \"time\" and .version == \"dsm\" and
		.baseline_name == \"mpi\" and .pthreads > 0 and
		((.ratio_pthreads - .value / .pthreads) | fabs) <= 1e-4 * .ratio_pthreads + 1e-9" \
		"the dsm version with its mpi baseline and the pthreads time"
}
case $wl in
floor)
	for m in uffd_missing uffd_wp msg_rtt_64_polling msg_rtt_64_asleep msg_rtt_4k_polling \
		msg_rtt_4k_asleep rma_read_4k_polling rma_read_4k_asleep rma_read_bw \
		miss_floor_polling miss_floor_asleep upgrade_floor_polling upgrade_floor_asleep; do
		has ".metric == \"$m\"" "$m"
	done
	# The floors are the sums of their parts.
	jq -e -s 'map(select(.metric) | {key: .metric, value: .value}) | from_entries as $m
		| ($m.msg_rtt_line_polling // $m.msg_rtt_4k_polling) as $rtt
		| (($m.miss_floor_polling - ($m.uffd_missing + $rtt)) | fabs) < 1e-3 * $m.miss_floor_polling
		and (($m.upgrade_floor_polling - ($m.uffd_wp + $m.msg_rtt_64_polling)) | fabs)
			< 1e-3 * $m.upgrade_floor_polling' "$out" >/dev/null ||
		fail "a floor is not the sum of its parts"
	;;
latency)
	for m in read_miss read_miss_dirty write_miss upgrade; do
		has ".metric == \"$m\" and .baseline_name and .samples > 0" "$m with its floor"
		has ".metric == \"${m}_p99\"" "${m}_p99"
	done
	for ((k = 1; k < ranks; k++)); do
		has ".metric == \"write_inv$k\" and .k == $k" "write_inv$k"
	done
	jq -e -s 'map(select(.stat == "median")) | all(.p99_us >= .value)' "$out" >/dev/null ||
		fail "a p99 below its median"
	;;
bandwidth) has '.metric == "scan_read" and .unit == "MB/s" and .baseline_name == "rma_read_bw"' "scan_read" ;;
pingpong) has '.metric == "round_trips_per_s" and .baseline_name == "mpi_send_recv"' "round_trips_per_s" ;;
threads)
	for t in 1 2 4 8; do has ".metric == \"faults_per_s\" and .threads == $t" "faults_per_s at $t threads"; done
	;;
sync)
	for m in barrier mutex_pair_home mutex_pair_remote; do
		has ".metric == \"$m\" and .baseline_name == \"msg_rtt_64_polling\" and .samples > 0 and .p99_us >= .value and .mean_us > 0" "$m with its floor"
	done
	has '.metric == "mutex_contended_per_acquisition" and .acquisitions > 0' "the contended mutex"
	;;
hotword)
	has '.metric == "increments_per_s" and .total > 0 and (.per_rank | length) == '"$ranks"' and
		(.per_rank | add) == .total and .share_min_over_max > 0 and .max_gap_us > 0' \
		"every rank's share of the hot word"
	;;
random)
	for p in auto off; do
		has ".metric == \"read_random\" and .prefetch == \"$p\" and .baseline_name == \"miss_floor_polling\"
			and .samples > 0 and .p99_us >= .value and (.prefetched | type) == \"number\"
			and .read_faults >= 0" "read_random with prefetch $p, its floor and counters"
		has ".metric == \"read_random_p99\" and .prefetch == \"$p\"" "read_random_p99 with prefetch $p"
	done
	has '.metric == "read_random" and .prefetch == "off" and .prefetched == 0' \
		"no line prefetched with DSM_PREFETCH=off"
	has '.metric == "read_random_prefetch_ratio" and
		((.value - .auto_us / .off_us) | fabs) <= 1e-4 * .value' "read_random_prefetch_ratio"
	;;
scale)
	has '.metric == "rss_growth" and .heap_size >= 17592186044416 and .baseline_name == "touched"' \
		"rss_growth in a 16 TiB heap"
	;;
radix)
	app_versions
	has '.version == "dsm" and .keys > 0 and .keys_per_rank * .ranks == .keys and .passes == 8' \
		"the keys sorted, 8 bits a pass"
	;;
fft)
	app_versions
	has '.version == "pthreads" and .dft_points_checked > 0' "the check against the direct DFT"
	has '.version == "dsm" and .n >= 8 and (.n | log2 | . == floor)' "n a power of two"
	;;
jacobi | histogram)
	app_versions
	# The multiple-writer version, against MPI and beside the default-memory one.
	has ".workload == \"$wl\" and .metric == \"time\" and .version == \"dsm_mw\" and
		.baseline_name == \"mpi\" and .dsm > 0 and .mw_faults > 0" \
		"the dsm_mw version with its mpi baseline and its counters"
	;;
matmul | mutex_sum)
	app_versions
	;;
mw_rounds)
	has ".metric == \"round\" and .baseline_name == \"mpi_allgather\" and .rounds > 0 and
		(.mw_track == \"async\" or .mw_track == \"twin\") and .faults_per_round > 0 and
		.diffs_per_round > 0" "a round with its MPI_Allgather baseline and its counters"
	;;
mw_release)
	has '.metric == "barrier_plain" and .samples > 0 and .p99_us >= .value' "the plain barrier"
	for m in barrier_mw_untouched barrier_mw_no_writes; do
		has ".metric == \"$m\" and .baseline_name == \"barrier_plain\" and .samples > 0 and
			.p99_us >= .value and (.releases_per_barrier | type) == \"number\" and
			(.mw_track == \"async\" or .mw_track == \"twin\")" "$m against the plain barrier"
	done
	# Both against the plain barrier of the same run; untouched memory has nothing to release.
	jq -e -s 'map(select(.metric == "barrier_plain"))[0].value as $plain
		| map(select(.baseline_name == "barrier_plain")) | length == 2 and all(.baseline == $plain)' \
		"$out" >/dev/null || fail "a barrier over multiple-writer memory not against the plain one"
	has '.metric == "barrier_mw_untouched" and .releases_per_barrier == 0 and
		.acquires_per_barrier == 0' "no release at a barrier over untouched memory"
	has '.metric == "release_no_writes" and .samples > 0 and .p99_us >= .value' "release_no_writes"
	for n in 1 8 64 256; do
		for h in remote here; do
			has ".metric == \"release_per_line_$h$n\" and .homed == \"$h\" and .lines == $n and
				.baseline_name == \"line_at_rma_read_bw\" and .rounds > 0 and
				.samples == .rounds * $ranks and .p99_us >= .value and
				((.release_us / .lines - .value) | fabs) <= 1e-4 * .value + 1e-12 and
				.release_p99_us >= .release_us and .rma_read_bw_MBps > 0 and
				((.baseline - .line_size / .rma_read_bw_MBps) | fabs) <= 1e-4 * .baseline and
				(.diffs_per_release | type) == \"number\"" "release_per_line_$h$n"
		done
		# Each line homed elsewhere that a rank wrote is one diff of its release.
		has ".metric == \"release_per_line_remote$n\" and .diffs_per_release == $n and
			.diff_bytes_per_release >= 8 * $n" "one diff per line written, homed elsewhere ($n)"
	done
	;;
cache)
	for m in scan_bw random_read; do
		has ".metric == \"$m\" and .baseline_name == \"unlimited_cache\" and .value > 0 and
			.baseline > 0 and .array_bytes == 4 * .cache_bytes" "$m against an unlimited cache"
	done
	# The bounded run evicted and the unlimited one did not; random reads miss more bounded.
	has '.metric == "scan_bw" and .evictions > 0 and .evictions_unlimited == 0' \
		"evictions with the bounded cache only"
	has '.metric == "random_read" and .misses_per_read > .misses_per_read_unlimited and
		.misses_per_read <= 1.01' "random reads miss more with the bounded cache"
	has '.metric == "rss_growth_max" and .baseline_name == "cache_plus_32MiB" and
		.value <= .baseline' "resident memory within the cache plus 32 MiB"
	;;
*) # an application: a DSM time beside the MPI one
	has ".workload == \"$wl\" and .baseline_name" "a result with its MPI baseline"
	;;
esac
echo "PASS ($wl): $(echo "$results" | wc -l) results"
