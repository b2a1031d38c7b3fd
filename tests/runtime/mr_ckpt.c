/* SPDX-License-Identifier: MIT */
/*
 * Live checkpoint and restart (ckpt.sh runs it).
 *
 *   mr_ckpt take DIR [nolocal] [kill]
 *     Fills the heap: array A (dsm_all_alloc, block) of which rank r writes the lines
 *     i % nranks == r (so most are held modified away from their home) and whose last
 *     quarter nobody touches; array B (cyclic) that each home writes and every rank then
 *     reads (shared: the home segments are current); array M (dsm_all_alloc_mw, block)
 *     whose lines every rank writes a share of (fill_m) and every rank reads; unless
 *     nolocal, a dsm_alloc object and a 3-line dsm_alloc block per rank, which the others
 *     read. A root struct (dsm_set_root) names them. Then dsm_checkpoint(DIR), and at once
 *     THREADS threads per rank overwrite every line of A, B and M, racing the background
 *     writer, and M is released before dsm_checkpoint_wait; the new values are checked.
 *     With kill, two more snapshots (the last taken after B alone was rewritten: its TAKE
 *     protects only the pages writable), every rank writes more while the last streams,
 *     and SIGKILLs itself.
 *   mr_ckpt restart
 *     Under DSM_RESTART: dsm_restarted() is 1, dsm_root() is the saved root, and every word
 *     of A, B, M (and the dsm_alloc memory, with as many ranks) holds the checkpoint's value,
 *     whatever was written after it. Then the restored heap is written and read across the
 *     ranks, and a second checkpoint is taken and waited for.
 * Prints "N passed, M failed" on rank 0; exits 1 if dsm_init fails.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dsm.h>

#include "mr.h"

#define A_LINES  512 /* per rank */
#define B_LINES  64  /* per rank */
#define M_LINES  64  /* per rank */
#define THREADS  3
#define OBJ_SIZE 1000
#define MAXR     64

struct root {
	uint64_t magic;
	uint64_t nranks; /* of the job that took the snapshot */
	uint64_t a_lines, b_lines;
	uint64_t *a, *b;
	unsigned char *obj[MAXR]; /* dsm_alloc, OBJ_SIZE bytes, one per rank */
	uint64_t *blk[MAXR];      /* dsm_alloc, 3 lines, one per rank */
	uint64_t m_lines;         /* of m: multiple-writer memory (block) */
	uint64_t *m;
	uint64_t chained; /* the snapshot is the third of a chain (take ... kill) */
};

#define ROOT_MAGIC 0x524f4f5444534d31ull

static size_t ls, words;
static int rank, nranks;

static uint64_t val(uint64_t arr, uint64_t line, uint64_t w, uint64_t gen)
{
	return (arr << 56) ^ (gen << 48) ^ (line * 1000003u) ^ (w * 7u) ^ 0x5a5a;
}

static void fill_line(uint64_t *p, uint64_t arr, uint64_t line, uint64_t gen)
{
	for (size_t w = 0; w < words; w++)
		p[w] = val(arr, line, w, gen);
}

/* The lines of @p whose words are not @gen's: counted, the first few named. */
static long bad_words(const uint64_t *p, uint64_t arr, uint64_t line, uint64_t gen)
{
	long bad = 0;

	for (size_t w = 0; w < words; w++) {
		uint64_t want = gen == 0 ? 0 : val(arr, line, w, gen);

		if (p[w] != want && bad++ < 2)
			fprintf(stderr,
			        "[rank %d] array %llu line %llu word %zu: %#llx, want %#llx\n",
			        rank, (unsigned long long)arr, (unsigned long long)line, w,
			        (unsigned long long)p[w], (unsigned long long)want);
	}
	return bad;
}

static struct root *R;

/* The generation the snapshot holds for A's line @i: 1 if rank i % n wrote it, 0 in the
 * untouched last quarter. */
static uint64_t a_gen(uint64_t i)
{
	return i >= R->a_lines * 3 / 4 ? 0 : 1;
}

/*
 * Multiple-writer memory: line i of M, if i % 4 == 0, is written whole by its home only
 * (its master copy there, which a store never faults on); the others by every rank, each
 * the words w % nranks == rank (false sharing: merged from diffs at the home). Threads of a
 * rank take the lines t, t + THREADS, ...
 */
static void fill_m(int t, int nthreads, uint64_t gen)
{
	uint64_t per = R->m_lines / (uint64_t)nranks;

	for (uint64_t i = (uint64_t)t; i < R->m_lines; i += (uint64_t)nthreads) {
		uint64_t *p = R->m + i * words;

		if (i % 4 == 0) {
			if (i / per == (uint64_t)rank)
				fill_line(p, 3, i, gen);
			continue;
		}
		for (size_t w = (size_t)rank; w < words; w += (size_t)nranks)
			p[w] = val(3, i, w, gen);
	}
}

struct racer {
	int t;
	uint64_t gen;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	uint64_t na = R->a_lines, nb = R->b_lines;

	/* Each thread of each rank its own lines of A and B: every line is written once. */
	for (uint64_t i = (uint64_t)(rank * THREADS + r->t); i < na;
	     i += (uint64_t)(nranks * THREADS))
		fill_line(R->a + i * words, 0, i, r->gen);
	for (uint64_t i = (uint64_t)(rank * THREADS + r->t); i < nb;
	     i += (uint64_t)(nranks * THREADS))
		fill_line(R->b + i * words, 1, i, r->gen);
	fill_m(r->t, THREADS, r->gen);
	return NULL;
}

static void check_all(uint64_t gen_a_override, uint64_t gen_b, uint64_t gen_m, const char *what)
{
	long bad = 0;

	for (uint64_t i = 0; i < R->a_lines; i++)
		bad += bad_words(R->a + i * words, 0, i,
		                 gen_a_override ? gen_a_override : a_gen(i)) != 0;
	for (uint64_t i = 0; i < R->b_lines; i++)
		bad += bad_words(R->b + i * words, 1, i, gen_b) != 0;
	for (uint64_t i = 0; i < R->m_lines; i++)
		bad += bad_words(R->m + i * words, 3, i, gen_m) != 0;
	if (bad)
		fprintf(stderr, "[rank %d] %s: %ld lines wrong\n", rank, what, bad);
	CHECK(bad == 0);
}

static int take(const char *dir, bool local, bool die)
{
	pthread_t th[THREADS];
	struct racer rc[THREADS];
	dsm_stats_t st = {.struct_size = sizeof(st)};

	R = dsm_all_alloc(sizeof(*R), DSM_DIST_LOCAL);
	uint64_t *a = dsm_all_alloc((size_t)nranks * A_LINES * ls, DSM_DIST_BLOCK);
	uint64_t *b = dsm_all_alloc((size_t)nranks * B_LINES * ls, DSM_DIST_CYCLIC);
	uint64_t *m = dsm_all_alloc_mw((size_t)nranks * M_LINES * ls, DSM_DIST_BLOCK);

	CHECK(R && a && b && m);
	if (!R || !a || !b || !m)
		return 1;
	if (rank == 0) {
		R->magic = ROOT_MAGIC;
		R->nranks = (uint64_t)nranks;
		R->a_lines = (uint64_t)nranks * A_LINES;
		R->b_lines = (uint64_t)nranks * B_LINES;
		R->a = a;
		R->b = b;
		R->m_lines = (uint64_t)nranks * M_LINES;
		R->m = m;
	}
	dsm_barrier();
	if (local) {
		unsigned char *o = dsm_alloc(OBJ_SIZE);
		uint64_t *k = dsm_alloc(3 * ls);

		CHECK(o && k);
		for (int i = 0; o && i < OBJ_SIZE; i++)
			o[i] = (unsigned char)(i * 31 + rank);
		for (size_t w = 0; k && w < 3 * words; w++)
			k[w] = val(2, (uint64_t)rank, w, 1);
		R->obj[rank] = o;
		R->blk[rank] = k;
	}
	for (uint64_t i = (uint64_t)rank; i < R->a_lines * 3 / 4; i += (uint64_t)nranks)
		fill_line(a + i * words, 0, i, 1);
	for (uint64_t i = (uint64_t)rank; i < R->b_lines; i += (uint64_t)nranks)
		fill_line(b + i * words, 1, i, 1); /* cyclic: these are homed here */
	fill_m(0, 1, 1);
	dsm_barrier();
	/* Every rank reads B (shared), and the others' dsm_alloc memory. */
	long seen = 0;

	for (uint64_t i = 0; i < R->b_lines; i++)
		seen += bad_words(b + i * words, 1, i, 1) == 0;
	for (uint64_t i = 0; i < R->m_lines; i++)
		seen += bad_words(m + i * words, 3, i, 1) == 0;
	CHECK(seen == (long)(R->b_lines + R->m_lines));
	for (int r = 0; local && r < nranks; r++)
		CHECK(R->obj[r] && R->obj[r][5] == (unsigned char)(5 * 31 + r));
	/* Refused, on every rank alike, before the real one. */
	char other[4200];
	int here;

	CHECK(dsm_checkpoint(NULL) == -EINVAL);
	CHECK(dsm_set_root(&here) == DSM_ERR_FOREIGN);
	snprintf(other, sizeof(other), "%s.rank%d", dir, rank);
	CHECK(dsm_checkpoint(rank == 0 ? dir : other) == DSM_ERR_MISMATCH);
	CHECK(dsm_set_root(rank == 0 ? (void *)R : (void *)a) == 0);
	CHECK(dsm_checkpoint(dir) == DSM_ERR_MISMATCH); /* the roots differ */
	CHECK(dsm_set_root(R) == 0);
	dsm_barrier();

	int ret = dsm_checkpoint(dir);

	CHECK(ret == 0);
	if (ret < 0)
		fprintf(stderr, "[rank %d] dsm_checkpoint: %s\n", rank, dsm_strerror(ret));
	/* Racing the writer: every line of A and B is overwritten, from every thread. */
	for (int t = 0; t < THREADS; t++) {
		rc[t] = (struct racer){t, 2};
		pthread_create(&th[t], NULL, race, &rc[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	/* The diffs of M reach the homes while the snapshot streams: each home copy is saved
	 * before the first merges into it. */
	dsm_release();
	ret = dsm_checkpoint_wait();
	CHECK(ret == 0);
	dsm_barrier();
	check_all(2, 2, 2, "after the racing writes");
	CHECK(dsm_stats(&st) == 0);
	CHECK(st.checkpoints == 1 && st.ckpt_lines > 0);
	/* MR_CKPT_SLOW: the writer is throttled (DSM_CKPT_RATE), so the racing writes reach
	 * lines it has not saved yet, and each is saved first. */
	if (getenv("MR_CKPT_SLOW"))
		CHECK(st.ckpt_copied > st.ckpt_lines / 4);
	printf("[rank %d] checkpoint: paused %.3f ms, %llu lines written here, %llu saved before a "
	       "change, written in %.1f ms\n",
	       rank, (double)st.ckpt_pause_ns / 1e6, (unsigned long long)st.ckpt_lines,
	       (unsigned long long)st.ckpt_copied, (double)st.ckpt_write_ns / 1e6);
	fflush(stdout);
	if (die) {
		/*
		 * Two more snapshots. The first comes right after the last one, into another
		 * directory; then B alone (a tenth of the heap) is rewritten, so the second's
		 * TAKE write-protects only the pages writable then (a scan of the page tables:
		 * ckpt.c, protect_scan), and the restart must see A and M as the racing writes
		 * left them, B as rewritten, and nothing of what comes after.
		 */
		char dir2[4200];

		snprintf(dir2, sizeof(dir2), "%s.2", dir);
		CHECK(dsm_checkpoint(dir2) == 0);
		CHECK(dsm_checkpoint_wait() == 0);
		for (uint64_t i = (uint64_t)rank; i < R->b_lines; i += (uint64_t)nranks)
			fill_line(R->b + i * words, 1, i, 3);
		if (rank == 0)
			R->chained = 1;
		dsm_barrier();
		CHECK(dsm_checkpoint(dir) == 0);
		/* Keep writing while it streams, then die: the restart must see the checkpoint,
		 * not this. */
		for (int t = 0; t < THREADS; t++) {
			rc[t] = (struct racer){t, 5};
			pthread_create(&th[t], NULL, race, &rc[t]);
		}
		for (int t = 0; t < THREADS; t++)
			pthread_join(th[t], NULL);
		dsm_release();
		CHECK(dsm_checkpoint_wait() == 0);
		dsm_barrier();
		printf("[rank %d] killed\n", rank);
		fflush(stdout);
		kill(getpid(), SIGKILL);
	}
	return 0;
}

static int restart(void)
{
	CHECK(dsm_restarted() == 1);
	R = dsm_root();
	CHECK(R != NULL);
	if (R == NULL)
		return 1;
	CHECK(R->magic == ROOT_MAGIC);
	if (R->magic != ROOT_MAGIC)
		return 1;
	if (rank == 0)
		printf("restart: a snapshot of %llu ranks on %d\n", (unsigned long long)R->nranks,
		       nranks);
	if (R->chained)
		check_all(2, 3, 2, "the restored heap (the third snapshot of a chain)");
	else
		check_all(0, 1, 1, "the restored heap");
	if (R->nranks == (uint64_t)nranks) {
		for (int r = 0; r < nranks; r++) {
			long bad = 0;

			CHECK(R->obj[r] != NULL && R->blk[r] != NULL);
			if (!R->obj[r] || !R->blk[r])
				continue;
			for (int i = 0; i < OBJ_SIZE; i++)
				bad += R->obj[r][i] != (unsigned char)(i * 31 + r);
			for (size_t w = 0; w < 3 * words; w++)
				bad += R->blk[r][w] != val(2, (uint64_t)r, w, 1);
			CHECK(bad == 0);
		}
		/* The allocator knows its objects: this rank's frees them, and allocates anew,
		 * once every rank has read them (an access after the free would end the rank). */
		dsm_barrier();
		if (R->obj[rank]) {
			CHECK(dsm_free(R->obj[rank]) == 0);
			CHECK(dsm_free(R->blk[rank]) == 0);
			void *o = dsm_alloc(OBJ_SIZE);

			CHECK(o != NULL);
			dsm_free(o);
		}
	}
	dsm_barrier();
	/* The restored heap under coherence: every rank writes its share, all read all. */
	struct racer rc = {0, 4};

	race(&rc);
	rc.t = 1;
	race(&rc);
	rc.t = 2;
	race(&rc);
	dsm_barrier();
	check_all(4, 4, 4, "written after the restart");
	dsm_barrier();
	CHECK(dsm_checkpoint_wait() == 0); /* none pending: returns at once */
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int ret;

	mr_start(&argc, &argv);
	ls = mr_line_size();
	words = ls / 8;
	ret = dsm_init(NULL);
	if (ret < 0) {
		fprintf(stderr, "[rank %d] dsm_init failed: %s\n", mr_rank, dsm_strerror(ret));
		MPI_Finalize();
		return 1;
	}
	rank = dsm_rank();
	nranks = dsm_nranks();
	if (strcmp(mode, "take") == 0 && argc > 2) {
		bool local = true, die = false;

		for (int i = 3; i < argc; i++) {
			local &= strcmp(argv[i], "nolocal") != 0;
			die |= strcmp(argv[i], "kill") == 0;
		}
		CHECK(dsm_restarted() == 0);
		take(argv[2], local, die);
	} else if (strcmp(mode, "restart") == 0) {
		restart();
	} else {
		fprintf(stderr, "usage: mr_ckpt take DIR [nolocal] [kill] | restart\n");
		CHECK(0);
	}
	dsm_finalize();
	return mr_finish();
}
