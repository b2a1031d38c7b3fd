/* SPDX-License-Identifier: MIT */
/*
 * What every workload uses to report: one JSON object per line on rank 0's
 * stdout, so that `jq` and the plot script read the output as it comes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/time.h"

static atomic_int failures; /* workloads' threads may fail checks too */

double bench_now(void)
{
	return (double)dsm_now_ns() * 1e-9;
}

long bench_count(const struct bench_opts *o, long normal, long smoke)
{
	double v = o->smoke ? (double)smoke : (double)normal * o->size_factor;

	return v < 1 ? 1 : (long)v;
}

double bench_budget(const struct bench_opts *o)
{
	return o->smoke ? 1.0 : 2.0 * (o->size_factor > 1 ? o->size_factor : 1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_quantile(double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

void bench_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
		switch (*c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*c < 0x20)
				fprintf(f, "\\u%04x", *c);
			else
				fputc(*c, f);
		}
	}
	fputc('"', f);
}

/* JSON has no NaN or infinity: such a value is written as null (and the tests reject it). */
void bench_json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

/* The members every line starts with. */
static void emit_head(FILE *f, const struct bench_opts *o, const char *workload)
{
	fputs("{\"workload\": ", f);
	bench_json_str(f, workload);
	fputs(", \"provider\": ", f);
	bench_json_str(f, o->provider);
	fprintf(f, ", \"ranks\": %d", o->nranks);
}

void bench_emit(const struct bench_opts *o, const struct bench_result *r)
{
	FILE *f = stdout;

	if (o->rank != 0)
		return;
	emit_head(f, o, r->workload);
	fprintf(f,
	        ", \"threads\": %d, \"line_size\": %zu, \"metric\": ", r->threads ? r->threads : 1,
	        r->line_size ? r->line_size : o->line_size);
	bench_json_str(f, r->metric);
	fputs(", \"value\": ", f);
	bench_json_num(f, r->value);
	fputs(", \"unit\": ", f);
	bench_json_str(f, r->unit);
	if (r->size)
		fprintf(f, ", \"size\": %zu", r->size);
	if (r->baseline_name) {
		fputs(", \"baseline_name\": ", f);
		bench_json_str(f, r->baseline_name);
		fputs(", \"baseline\": ", f);
		bench_json_num(f, r->baseline);
		fputs(", \"ratio\": ", f);
		bench_json_num(f, r->baseline != 0 ? r->value / r->baseline : NAN);
	}
	if (o->smoke)
		fputs(", \"smoke\": true", f);
	if (r->extra && r->extra[0])
		fprintf(f, ", %s", r->extra);
	fputs("}\n", f);
	fflush(f);
}

void bench_fail(const struct bench_opts *o, const char *workload, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	/* Rank 0's line is the result; another rank's goes to its stderr, and the driver adds a
	 * line on rank 0 once it learns of it. */
	FILE *f = o->rank == 0 ? stdout : stderr;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	failures++;
	if (o->rank != 0)
		fprintf(f, "dsm-bench [rank %d]: ", o->rank);
	emit_head(f, o, workload);
	fprintf(f, ", \"rank\": %d, \"error\": ", o->rank);
	bench_json_str(f, msg);
	fputs("}\n", f);
	fflush(f);
}

int bench_failures(void)
{
	return failures;
}
