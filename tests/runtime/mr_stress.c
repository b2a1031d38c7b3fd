/* SPDX-License-Identifier: MIT */
/*
 * Random stress: every rank runs 4 threads doing random reads and writes of
 * 64-bit words spread over 128 lines for MR_SECONDS (20 by default). Each
 * written value encodes (location, rank, thread, sequence). Afterwards the
 * write logs are exchanged and every rank checks each of its reads:
 *  - it returned 0 (never written) or a value that its writer really wrote
 *    to that location;
 *  - per location, the reads of a thread never go back in any writer's
 *    sequence (coherence: one order of the writes to each location), its
 *    own writes included.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <dsm.h>

#include "mr.h"

#define THREADS 4
#define LINES   128
#define WORDS   8 /* words used per line, spread over it */
#define LOCS    (LINES * WORDS)
#define MAXOPS  (1 << 22)

static int rank, nranks;
static double seconds;
static uint64_t *heap; /* relaxed atomic accesses: the threads of a rank race on purpose */
static size_t line_words;

/* value = loc << 40 | rank << 32 | thread << 28 | seq + 1 */
static uint64_t encode(unsigned loc, unsigned r, unsigned t, uint32_t seq)
{
	return (uint64_t)loc << 40 | (uint64_t)r << 32 | (uint64_t)t << 28 | (seq + 1);
}

static uint64_t *word(unsigned loc)
{
	return heap + (size_t)(loc / WORDS) * line_words + (loc % WORDS) * (line_words / WORDS);
}

struct op {
	uint32_t loc;
	uint32_t is_write;
	uint64_t value;
};

struct thr {
	int t;
	struct op *ops;
	long nops;
	uint32_t nwrites;
	uint32_t *wloc; /* seq -> location written */
};

static struct thr thr[THREADS];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *worker(void *arg)
{
	struct thr *w = arg;
	unsigned seed = (unsigned)(rank * 977 + w->t * 131 + 7);
	double end = now() + seconds;

	while (w->nops < MAXOPS && w->nwrites < MAXOPS && ((w->nops & 255) || now() < end)) {
		unsigned loc = (unsigned)rand_r(&seed) % LOCS;
		struct op *o = &w->ops[w->nops++];

		o->loc = loc;
		if (rand_r(&seed) & 1) {
			o->is_write = 1;
			o->value = encode(loc, (unsigned)rank, (unsigned)w->t, w->nwrites);
			w->wloc[w->nwrites++] = loc;
			__atomic_store_n(word(loc), o->value, __ATOMIC_RELAXED);
		} else {
			o->is_write = 0;
			o->value = __atomic_load_n(word(loc), __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *s;
	pthread_t th[THREADS];
	long total_ops = 0, reads = 0, bad_value = 0, bad_order = 0;

	mr_start(&argc, &argv);
	s = getenv("MR_SECONDS");
	seconds = s ? atof(s) : 20;
	if (getenv("DSM_TEST_TIER") && getenv("DSM_TEST_TIER")[0] == 'l')
		seconds *= 10;
	CHECK(dsm_init(NULL) == 0);
	rank = dsm_rank();
	nranks = dsm_nranks();
	{
		long ls = 4096;
		const char *e = getenv("DSM_LINE_SIZE");
		if (e)
			ls = strtol(e, NULL, 10) << (strchr(e, 'K') || strchr(e, 'k') ? 10 : 0);
		line_words = (size_t)ls / sizeof(uint64_t);
	}
	heap = dsm_all_alloc(LINES * line_words * sizeof(uint64_t), DSM_DIST_CYCLIC);
	CHECK(heap != NULL);
	for (int t = 0; t < THREADS; t++) {
		thr[t].t = t;
		thr[t].ops = malloc(sizeof(struct op) * MAXOPS);
		thr[t].wloc = malloc(sizeof(uint32_t) * MAXOPS);
	}
	dsm_barrier();
	for (int t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, worker, &thr[t]);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	dsm_barrier();

	/* Everyone's write logs, everywhere: nwrites[r][t], then the locations. */
	uint32_t mine[THREADS], *counts = malloc(sizeof(uint32_t) * THREADS * (size_t)nranks);
	for (int t = 0; t < THREADS; t++)
		mine[t] = thr[t].nwrites;
	MPI_Allgather(mine, THREADS, MPI_UINT32_T, counts, THREADS, MPI_UINT32_T, MPI_COMM_WORLD);
	uint32_t **wlog = malloc(sizeof(*wlog) * THREADS * (size_t)nranks);
	for (int r = 0; r < nranks; r++)
		for (int t = 0; t < THREADS; t++) {
			uint32_t n = counts[r * THREADS + t];
			wlog[r * THREADS + t] = malloc(sizeof(uint32_t) * (n ? n : 1));
			if (r == rank)
				memcpy(wlog[r * THREADS + t], thr[t].wloc, sizeof(uint32_t) * n);
			MPI_Bcast(wlog[r * THREADS + t], (int)n, MPI_UINT32_T, r, MPI_COMM_WORLD);
		}

	/* Check every read of this rank. last[loc][writer] = highest seq seen + 1. */
	uint32_t *last = malloc(sizeof(uint32_t) * LOCS * THREADS * (size_t)nranks);
	for (int t = 0; t < THREADS; t++) {
		memset(last, 0, sizeof(uint32_t) * LOCS * THREADS * (size_t)nranks);
		total_ops += thr[t].nops;
		for (long i = 0; i < thr[t].nops; i++) {
			struct op *o = &thr[t].ops[i];
			unsigned vloc = (unsigned)(o->value >> 40),
			         vr = (unsigned)(o->value >> 32) & 0xff;
			unsigned vt = (unsigned)(o->value >> 28) & 0xf;
			uint32_t vseq = (uint32_t)(o->value & 0x0fffffff);
			size_t writer = (size_t)vr * THREADS + vt;

			if (!o->is_write)
				reads++;
			if (o->value == 0)
				continue;
			if (!o->is_write && (vloc != o->loc || vr >= (unsigned)nranks ||
			                     vt >= THREADS || vseq == 0 || vseq > counts[writer] ||
			                     wlog[writer][vseq - 1] != o->loc)) {
				bad_value++;
				continue;
			}
			uint32_t *l = &last[(size_t)o->loc * THREADS * (size_t)nranks + writer];
			if (vseq < *l)
				bad_order++;
			else
				*l = vseq;
		}
	}
	long sums[4] = {total_ops, reads, bad_value, bad_order}, all[4];
	MPI_Allreduce(sums, all, 4, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	if (rank == 0)
		printf("mr_stress: %d ranks x %d threads for %.0f s over %d lines: %ld operations, "
		       "%ld reads checked, %ld bad values, %ld out of order\n",
		       nranks, THREADS, seconds, LINES, all[0], all[1], all[2], all[3]);
	for (int i = 0; i < THREADS * nranks; i++)
		free(wlog[i]);
	free(wlog);
	free(counts);
	free(last);
	for (int t = 0; t < THREADS; t++) {
		free(thr[t].ops);
		free(thr[t].wloc);
	}
	CHECK(bad_value == 0);
	CHECK(bad_order == 0);
	CHECK(all[1] > 1000); /* it really ran */
	CHECK(dsm_finalize() == 0);
	return mr_finish();
}
