/* SPDX-License-Identifier: MIT */
/*
 * dsm-ckpt-demo: a computation that outlives its job. STEPS steps of a three-point stencil
 * on a shared array of doubles (dsm_all_alloc, block): each rank updates its block from the
 * previous step's values, the edges of its neighbours' blocks coming by remote misses, with
 * dsm_barrier between steps. Its state (the step, the two arrays, a checksum) is a struct
 * in the heap named by dsm_set_root. Every EVERY steps it takes a snapshot, in turn into
 * $DSM_CKPT_DIR/a and $DSM_CKPT_DIR/b (the one being written is incomplete until its
 * MANIFEST is there, the other stays usable), and waits until it is durable. Under
 * DSM_RESTART it checks the restored array against the snapshot's checksum and goes on
 * from the snapshot's step, on as many ranks as it is given. When all steps are done,
 * rank 0 redoes the whole computation serially and compares every element, so a restart
 * that lost or mixed up data fails. slurm/dsm-restart.sbatch runs it across jobs.
 *
 *   DSM_CKPT_DIR=ck mpiexec -n 2 build/tools/dsm-ckpt-demo --stop-after 25        # exit 99
 *   DSM_CKPT_DIR=ck DSM_RESTART=ck/a mpiexec -n 2 build/tools/dsm-ckpt-demo       # 25 to 40
 *
 * --stop-after N (and SIGUSR1, which dsm-restart.sbatch sends when the job's time runs
 * out) makes it take a snapshot at the end of the step and exit 99.
 * Exit status: 0 all steps done and the result checked; 99 checkpointed, not finished;
 * 1 a libdsm call failed or the result is wrong; 2 usage.
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dsm.h>

#define ME           "dsm-ckpt-demo"
#define STATE_MAGIC  0x3154504b434d5344ull /* "DSMCKPT1" */
#define EXIT_STOPPED 99

/* The root of the heap: what a restarted run needs to go on. Rank 0 writes the plain
 * fields, before a barrier or a checkpoint (which orders like one). */
struct state {
	uint64_t magic;
	long n, steps;        /* the computation, fixed at the fresh start */
	long step;            /* steps done when the last snapshot was taken */
	long ckpts;           /* snapshots taken; the last went to "a" if odd, "b" if even */
	int nranks;           /* of the job that took the last snapshot */
	int failed;           /* rank 0 found the restored array wrong: every rank exits */
	uint64_t checksum;    /* of x[step % 2] at step */
	_Atomic uint64_t acc; /* the ranks' partial checksums add up here, 0 between uses */
	_Atomic int stop;     /* a rank got SIGUSR1: stop at the end of this step */
	double *x[2];         /* x[s % 2]: the values after s steps */
};

static volatile sig_atomic_t got_stop_signal;

static void on_stop_signal(int sig)
{
	(void)sig;
	got_stop_signal = 1;
}

/* One step on [lo, hi) of the n elements (the ends wrap). Not inlined: the parallel run
 * and rank 0's serial check execute the same instructions, so they agree bit for bit. */
static __attribute__((noinline)) void stencil(const double *src, double *dst, long lo, long hi,
                                              long n, long s)
{
	for (long i = lo; i < hi; i++) {
		double l = src[i == 0 ? n - 1 : i - 1], r = src[i == n - 1 ? 0 : i + 1];

		dst[i] = 0.25 * l + 0.5 * src[i] + 0.25 * r + 1.0 / (double)(s + 1);
	}
}

static double initial(long i)
{
	return (double)((i * 7919) % 1009);
}

/* Independent of the order of the sum, so blocks of any number of ranks add up alike. */
static uint64_t element_sum(const double *x, long lo, long hi)
{
	uint64_t sum = 0;

	for (long i = lo; i < hi; i++) {
		uint64_t v;

		memcpy(&v, &x[i], sizeof(v));
		v ^= (uint64_t)i * 0x9e3779b97f4a7c15ull;
		v = (v ^ (v >> 31)) * 0xbf58476d1ce4e5b9ull;
		sum += v ^ (v >> 29);
	}
	return sum;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " ME " [--steps N] [--every N] [--elements N] [--stop-after N] "
	        "[--step-ms N]\n"
	        "  --steps N       steps of the computation (40; a restart keeps the snapshot's)\n"
	        "  --every N       take a snapshot every N steps (10)\n"
	        "  --elements N    doubles in the shared array (65536; a restart keeps the "
	        "snapshot's)\n"
	        "  --stop-after N  after N steps of this run, take a snapshot and exit 99\n"
	        "  --step-ms N     sleep N ms in each step, standing in for more work (0)\n"
	        "Snapshots go to $DSM_CKPT_DIR/a and $DSM_CKPT_DIR/b (default dsm-ckpt/a, /b);\n"
	        "DSM_RESTART=DIR starts from one. SIGUSR1: a snapshot at the end of the step, "
	        "exit 99.\n");
}

static int parse_long(const char *s, long min, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min)
		return -1;
	*out = v;
	return 0;
}

/* The partial checksums of every rank's block of @x, summed on rank 0 (others get 0).
 * st->acc is 0 on entry and on return. */
static uint64_t checksum(struct state *st, const double *x, long lo, long hi, int rank)
{
	uint64_t sum = 0;

	atomic_fetch_add(&st->acc, element_sum(x, lo, hi));
	dsm_barrier();
	if (rank == 0) {
		sum = atomic_load(&st->acc);
		atomic_store(&st->acc, 0);
	}
	return sum;
}

/* A snapshot of the state at @step, into the directory after the last one's. */
static int take_snapshot(struct state *st, const char *ckdir, long step, long *ckpts, long lo,
                         long hi, int rank, int nranks, char *dir, size_t dirlen)
{
	uint64_t sum = checksum(st, st->x[step % 2], lo, hi, rank);
	double t0, t1, t2;
	int ret;

	++*ckpts;
	snprintf(dir, dirlen, "%s/%s", ckdir, *ckpts % 2 ? "a" : "b");
	if (rank == 0) {
		st->step = step;
		st->ckpts = *ckpts;
		st->nranks = nranks;
		st->checksum = sum;
	}
	t0 = now_ms();
	ret = dsm_checkpoint(dir);
	t1 = now_ms();
	if (ret == 0)
		ret = dsm_checkpoint_wait();
	t2 = now_ms();
	if (ret < 0) {
		fprintf(stderr, ME ": [rank %d] step %ld: snapshot in %s: %s\n", rank, step, dir,
		        dsm_strerror(ret));
		return ret;
	}
	if (rank == 0) {
		printf(ME ": step %ld: snapshot #%ld in %s (consistent in %.1f ms, durable in "
		          "%.1f ms)\n",
		       step, *ckpts, dir, t1 - t0, t2 - t0);
		fflush(stdout);
	}
	return 0;
}

/* Rank 0: the whole computation again, serially; 0 if x matches it everywhere. */
static int check_result(const struct state *st)
{
	long n = st->n;
	double *a = malloc((size_t)n * sizeof(*a)), *b = malloc((size_t)n * sizeof(*b));
	const double *x = st->x[st->steps % 2];
	long bad = 0, first = -1;

	if (a == NULL || b == NULL) {
		fprintf(stderr, ME ": no memory for the serial check (%ld elements)\n", n);
		free(a);
		free(b);
		return -1;
	}
	for (long i = 0; i < n; i++)
		a[i] = initial(i);
	for (long s = 0; s < st->steps; s++) {
		double *t;

		stencil(a, b, 0, n, n, s);
		t = a;
		a = b;
		b = t;
	}
	for (long i = 0; i < n; i++)
		if (memcmp(&x[i], &a[i], sizeof(*x)) != 0 && bad++ == 0)
			first = i;
	if (bad)
		fprintf(stderr,
		        ME ": result WRONG: %ld of %ld elements differ from the serial run, the "
		           "first at %ld: %.17g, serially %.17g\n",
		        bad, n, first, x[first], a[first]);
	free(a);
	free(b);
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"steps", required_argument, NULL, 's'},
	        {"every", required_argument, NULL, 'e'},
	        {"elements", required_argument, NULL, 'n'},
	        {"stop-after", required_argument, NULL, 'S'},
	        {"step-ms", required_argument, NULL, 'm'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	long steps = 40, every = 10, n = 65536, stop_after = 0, step_ms = 0;
	const char *ckdir = getenv("DSM_CKPT_DIR");
	char dir[4096];
	struct sigaction sa;
	struct state *st;
	int c, idx = 0, rank, nranks, ret, stop = 0, status = 0;

	while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
		long *v = NULL;

		switch (c) {
		case 's':
			v = &steps;
			break;
		case 'e':
			v = &every;
			break;
		case 'n':
			v = &n;
			break;
		case 'S':
			v = &stop_after;
			break;
		case 'm':
			v = &step_ms;
			break;
		}
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (v == NULL) {
			usage(stderr);
			return 2;
		}
		if (parse_long(optarg, v == &stop_after || v == &step_ms ? 0 : 1, v) < 0) {
			fprintf(stderr, ME ": --%s wants a number%s, not '%s'\n", opts[idx].name,
			        v == &stop_after || v == &step_ms ? "" : " from 1", optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, ME ": unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (ckdir == NULL || *ckdir == '\0')
		ckdir = "dsm-ckpt";

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	ret = dsm_init(NULL);
	if (ret < 0) {
		fprintf(stderr, ME ": dsm_init: %s\n", dsm_strerror(ret));
		return 1;
	}
	rank = dsm_rank();
	nranks = dsm_nranks();

	if (dsm_restarted()) {
		st = dsm_root();
		if (st == NULL || st->magic != STATE_MAGIC) {
			fprintf(stderr, ME ": [rank %d] the snapshot in %s holds no " ME " state\n",
			        rank, getenv("DSM_RESTART"));
			return 1;
		}
		n = st->n;
		steps = st->steps;
	} else {
		st = dsm_all_alloc(sizeof(*st), DSM_DIST_LOCAL);
		double *x0 = dsm_all_alloc((size_t)n * sizeof(double), DSM_DIST_BLOCK);
		double *x1 = dsm_all_alloc((size_t)n * sizeof(double), DSM_DIST_BLOCK);

		if (st == NULL || x0 == NULL || x1 == NULL) {
			fprintf(stderr, ME ": [rank %d] dsm_all_alloc of 2 x %ld doubles failed\n",
			        rank, n);
			return 1;
		}
		if (rank == 0) {
			st->n = n;
			st->steps = steps;
			st->x[0] = x0;
			st->x[1] = x1;
			st->step = 0;
			st->ckpts = 0;
			st->magic = STATE_MAGIC;
		}
		for (long i = n * rank / nranks; i < n * (rank + 1) / nranks; i++)
			x0[i] = initial(i);
		ret = dsm_set_root(st);
		if (ret < 0) {
			fprintf(stderr, ME ": dsm_set_root: %s\n", dsm_strerror(ret));
			return 1;
		}
	}
	long lo = n * rank / nranks, hi = n * (rank + 1) / nranks;
	dsm_barrier();

	long step = st->step, first = step, ckpts = st->ckpts;
	if (dsm_restarted()) {
		uint64_t sum = checksum(st, st->x[step % 2], lo, hi, rank);

		if (rank == 0) {
			st->failed = sum != st->checksum;
			atomic_store(&st->stop, 0); /* the snapshot may have been taken stopping */
			printf(ME ": restarted from %s at step %ld of %ld (snapshot #%ld, taken on "
			          "%d rank%s, now %d): the array's checksum %s\n",
			       getenv("DSM_RESTART"), step, steps, ckpts, st->nranks,
			       st->nranks == 1 ? "" : "s", nranks,
			       st->failed ? "DIFFERS" : "matches");
			fflush(stdout);
		}
		dsm_barrier();
		if (st->failed) {
			status = 1;
			goto out;
		}
	} else if (rank == 0) {
		printf(ME ": fresh start: %ld steps on %ld doubles, %d ranks, a snapshot every %ld "
		          "steps into %s/a and %s/b\n",
		       steps, n, nranks, every, ckdir, ckdir);
		fflush(stdout);
	}

	while (step < steps && !stop) {
		stencil(st->x[step % 2], st->x[(step + 1) % 2], lo, hi, n, step);
		if (step_ms > 0)
			nanosleep(&(struct timespec){step_ms / 1000, step_ms % 1000 * 1000000L},
			          NULL);
		if (got_stop_signal)
			atomic_store(&st->stop, 1);
		dsm_barrier();
		step++;
		/* Read between two barriers, so every rank sees the same: a rank signalled now
		 * raises the flag next step, after everyone has read it. */
		stop = atomic_load(&st->stop) || step - first == stop_after;
		dsm_barrier();
		if (step < steps && (step % every == 0 || stop)) {
			ret = take_snapshot(st, ckdir, step, &ckpts, lo, hi, rank, nranks, dir,
			                    sizeof(dir));
			if (ret < 0) { /* on every rank alike */
				status = 1;
				goto out;
			}
		}
	}

	if (step < steps) {
		if (rank == 0) {
			printf(ME ": stopped at step %ld of %ld after %ld steps of this run (%s): "
			          "snapshot #%ld in %s; exit %d\n",
			       step, steps, step - first,
			       step - first == stop_after ? "--stop-after" : "SIGUSR1", ckpts, dir,
			       EXIT_STOPPED);
			fflush(stdout);
		}
		status = EXIT_STOPPED;
	} else if (rank == 0) {
		status = check_result(st) < 0 ? 1 : 0;
		if (status == 0) {
			if (dsm_restarted())
				printf(ME ": %ld steps done (restarted from step %ld), result "
				          "checked\n",
				       steps, first);
			else
				printf(ME ": %ld steps done (fresh start), result checked\n",
				       steps);
		}
		fflush(stdout);
	}
out:
	dsm_barrier();
	ret = dsm_finalize();
	if (ret < 0) {
		fprintf(stderr, ME ": dsm_finalize: %s\n", dsm_strerror(ret));
		return 1;
	}
	return status;
}
