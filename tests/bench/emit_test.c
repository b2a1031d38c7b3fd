/* SPDX-License-Identifier: MIT */
/*
 * bench_emit and bench_fail on their own: prints results whose strings need escaping, a
 * baseline, a value JSON cannot hold, and a failure. emit.sh parses them with jq.
 */
#include <math.h>
#include <stdio.h>

#include "bench/bench.h"

int main(void)
{
	struct bench_opts o = {
	        .rank = 0, .nranks = 2, .provider = "tcp;ofi_rxm", .line_size = 4096};
	struct bench_opts other = o;
	struct bench_result r = {.workload = "lat\"ency\\",
	                         .metric = "read\nmiss\t\x01",
	                         .unit = "us",
	                         .value = 30,
	                         .baseline_name = "floor",
	                         .baseline = 20,
	                         .extra = "\"k\": 3"};
	double t0 = bench_now();

	bench_emit(&o, &r);
	r = (struct bench_result){.workload = "w", .metric = "nan", .unit = "s", .value = NAN};
	bench_emit(&o, &r);
	other.rank = 1; /* prints nothing */
	bench_emit(&other, &r);
	bench_fail(&o, "w", "expected %d, got \"%s\"", 1, "two");
	if (bench_failures() != 1 || !(bench_now() >= t0))
		return 1;
	return 0;
}
