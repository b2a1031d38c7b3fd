/* SPDX-License-Identifier: MIT */
/*
 * dsm-bench: the libdsm benchmark suite. Run under mpiexec or srun with at
 * least 2 ranks:
 *
 *   dsm-bench [--smoke] [--size F] [-t N] [--list] [workload ...]
 *
 * It measures the floors first (before dsm_init, on a transport of its own),
 * calls dsm_init once (and again where a workload needs other settings: the
 * heap of scale, DSM_PREFETCH for random), runs each chosen workload
 * collectively, and prints one JSON object per result on rank 0's stdout,
 * after a first "meta" line that says where it ran. Exit status: 0, 1 when a check failed, 2 for a
 * usage error. Line size and provider come from libdsm's settings (DSM_LINE_SIZE, DSM_PROVIDER):
 * run it once per line size to compare them.
 */
#include <dsm.h>
#include <errno.h>
#include <getopt.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench/driver.h"
#include "common/settings.h"

/* The application workloads live in bench/apps/; a dsm-bench built without one says so. */
#pragma weak bench_app_jacobi
#pragma weak bench_app_matmul
#pragma weak bench_app_histogram
#pragma weak bench_app_mutex_sum
#pragma weak bench_app_radix
#pragma weak bench_app_fft

#define SCALE_HEAP (16ull << 40)

struct workload {
	const char *name;
	const char *what;
	int (*run)(const struct bench_opts *o, const struct bench_ctx *c);
	int (*app)(const struct bench_opts *o);
	bool needs_floor;
	bool selected;
};

static struct workload workloads[] = {
        {"floor", "raw userfaultfd and transport round trips: the floors of a remote miss", NULL,
         NULL, true, false},
        {"latency", "remote read miss, write miss, upgrade, write miss invalidating k sharers",
         bench_latency, NULL, true, false},
        {"random", "remote reads in a random order, read-ahead on and off", bench_random, NULL,
         true, false},
        {"bandwidth", "sequential scan of remote memory against RDMA read bandwidth",
         bench_bandwidth, NULL, true, false},
        {"pingpong", "two ranks alternately writing one line, against MPI send/recv",
         bench_pingpong, NULL, false, false},
        {"threads", "read faults per second with 1, 2, 4, 8 threads in one rank", bench_threads,
         NULL, false, false},
        {"sync", "empty barrier; dsm_mutex pair at the home, remote, and contended", bench_sync,
         NULL, true, false},
        {"hotword", "every rank increments one atomic word: total, shares, longest wait",
         bench_hotword, NULL, false, false},
        {"mw_rounds",
         "every rank writes a slot of the same lines of multiple-writer memory, "
         "against MPI_Allgather",
         bench_mw, NULL, false, false},
        {"mw_release",
         "a barrier and a release over multiple-writer memory with nothing written, and a "
         "release after writing N lines, per line against RDMA read bandwidth",
         bench_mw_release, NULL, true, false},
        {"cache",
         "a scan and random reads of remote arrays 4x the cache (DSM_CACHE_SIZE), against "
         "the same with an unlimited cache",
         bench_cache, NULL, false, false},
        {"checkpoint",
         "dsm_checkpoint of 1 GiB per rank: the pause, the background write against dd, a "
         "stencil's time while it streams",
         bench_ckpt, NULL, false, false},
        {"jacobi", "2D Jacobi stencil, against plain MPI and pthreads", NULL, bench_app_jacobi,
         false, false},
        {"matmul", "dense matrix multiply, against plain MPI and pthreads", NULL, bench_app_matmul,
         false, false},
        {"histogram", "histogram with atomic increments, against plain MPI and pthreads", NULL,
         bench_app_histogram, false, false},
        {"mutex_sum", "parallel sum under dsm_mutex, against plain MPI and pthreads", NULL,
         bench_app_mutex_sum, false, false},
        {"radix", "LSD radix sort of 64-bit keys, against plain MPI and pthreads", NULL,
         bench_app_radix, false, false},
        {"fft", "2D complex FFT by rows and transposes, against plain MPI and pthreads", NULL,
         bench_app_fft, false, false},
        {"scale", "16 TiB heap, sparse touches: resident against touched memory", bench_scale, NULL,
         false, false},
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static bool is_app(const struct workload *w)
{
	return w->run == NULL && strcmp(w->name, "floor") != 0;
}

/* ---- the command line --------------------------------------------------------------------- */

/* The launcher's rank before MPI is up, to print usage errors once. */
static bool launcher_rank0(void)
{
	static const char *const vars[] = {"PMI_RANK", "PMIX_RANK", "SLURM_PROCID",
	                                   "OMPI_COMM_WORLD_RANK"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		if (v)
			return atoi(v) == 0;
	}
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: dsm-bench [--smoke] [--size F] [-t N] [--list] [workload ...]\n"
	           "  run under mpiexec or srun with at least 2 ranks; no workload: all of them\n"
	           "  --smoke     the smallest sizes, seconds in all (also DSM_BENCH_SMOKE=1)\n"
	           "  --size F    multiply the problem sizes and sample counts by F (default 1)\n"
	           "  -t N        application threads per rank (threads: only N; apps: passed on)\n"
	           "  --list      list the workloads and exit\n"
	           "  settings come from libdsm's environment: DSM_LINE_SIZE, DSM_PROVIDER, "
	           "DSM_HEAP_SIZE, ...\n");
}

static void list_workloads(FILE *f)
{
	for (size_t i = 0; i < NWORKLOADS; i++)
		fprintf(f, "%-10s %s%s\n", workloads[i].name, workloads[i].what,
		        is_app(&workloads[i]) && workloads[i].app == NULL
		                ? " (not built into this dsm-bench)"
		                : "");
}

/* Returns 0, or 2 after a message (usage error), or -1 for "done, exit 0". */
static int parse_args(int argc, char **argv, struct bench_opts *o, bool *explicit_p)
{
	static const struct option longopts[] = {
	        {"smoke", no_argument, NULL, 's'},         {"size", required_argument, NULL, 'f'},
	        {"threads", required_argument, NULL, 't'}, {"list", no_argument, NULL, 'l'},
	        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
	bool loud = launcher_rank0();
	const char *env = getenv("DSM_BENCH_SMOKE");
	char *end;
	int c;

	o->size_factor = 1;
	o->smoke = env && strcmp(env, "1") == 0;
	while ((c = getopt_long(argc, argv, "t:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->smoke = 1;
			break;
		case 'f':
			o->size_factor = strtod(optarg, &end);
			if (*end || !(o->size_factor > 0)) {
				if (loud)
					fprintf(stderr,
					        "dsm-bench: --size wants a number > 0, not '%s'\n",
					        optarg);
				return 2;
			}
			break;
		case 't':
			o->threads = (int)strtol(optarg, &end, 10);
			if (*end || o->threads < 1 || o->threads > 64) {
				if (loud)
					fprintf(stderr,
					        "dsm-bench: -t wants 1..64 threads, not '%s'\n",
					        optarg);
				return 2;
			}
			break;
		case 'l':
			if (loud)
				list_workloads(stdout);
			return -1;
		case 'h':
			if (loud)
				usage(stdout);
			return -1;
		default:
			if (loud)
				usage(stderr);
			return 2;
		}
	}
	*explicit_p = optind < argc;
	for (int i = optind; i < argc; i++) {
		size_t k;
		for (k = 0; k < NWORKLOADS; k++)
			if (strcmp(argv[i], workloads[k].name) == 0)
				break;
		if (k == NWORKLOADS) {
			if (loud) {
				fprintf(stderr,
				        "dsm-bench: unknown workload '%s'; known workloads:",
				        argv[i]);
				for (k = 0; k < NWORKLOADS; k++)
					fprintf(stderr, " %s", workloads[k].name);
				fprintf(stderr, "\n");
			}
			return 2;
		}
		workloads[k].selected = true;
	}
	if (!*explicit_p)
		for (size_t k = 0; k < NWORKLOADS; k++)
			workloads[k].selected = true;
	return 0;
}

/* ---- the meta line ------------------------------------------------------------------------ */

static int count_hosts(void)
{
	char me[256] = {0}, *all;
	int n, hosts = 0;

	MPI_Comm_size(MPI_COMM_WORLD, &n);
	all = calloc((size_t)n, sizeof(me));
	gethostname(me, sizeof(me) - 1);
	MPI_Allgather(me, sizeof(me), MPI_CHAR, all, sizeof(me), MPI_CHAR, MPI_COMM_WORLD);
	for (int r = 0; r < n; r++) {
		bool seen = false;
		for (int q = 0; q < r && !seen; q++)
			seen = strcmp(all + (size_t)q * sizeof(me), all + (size_t)r * sizeof(me)) ==
			       0;
		hosts += !seen;
	}
	free(all);
	return hosts;
}

static void cpu_model(char *out, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(out, len, "?");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (strncmp(line, "model name", 10) == 0 && colon) {
			snprintf(out, len, "%s", colon + 2);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

static void emit_meta(const struct bench_opts *o, const struct bench_ctx *c, int hosts,
                      const char *uffd_mode)
{
	struct utsname u;
	char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = "", cpu[128], load[64] = "", date[32];
	int len = 0;
	time_t now = time(NULL);
	FILE *f;

	if (o->rank != 0)
		return;
	uname(&u);
	MPI_Get_library_version(mpi, &len);
	mpi[strcspn(mpi, "\n")] = '\0';
	cpu_model(cpu, sizeof(cpu));
	f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fgets(load, sizeof(load), f) == NULL)
			load[0] = '\0';
		fclose(f);
		/* the three load averages only */
		for (int sp = 0, i = 0; load[i]; i++)
			if (load[i] == ' ' && ++sp == 3)
				load[i] = '\0';
		load[strcspn(load, "\n")] = '\0';
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

	printf("{\"workload\": \"meta\", \"provider\": ");
	bench_json_str(stdout, o->provider);
	printf(", \"ranks\": %d, \"hosts\": %d, \"line_size\": %zu, \"heap_size\": %zu, "
	       "\"kernel\": ",
	       o->nranks, hosts, o->line_size, c->heap_size);
	bench_json_str(stdout, u.release);
	printf(", \"cpu\": ");
	bench_json_str(stdout, cpu);
	printf(", \"cores\": %ld, \"loadavg\": ", sysconf(_SC_NPROCESSORS_ONLN));
	bench_json_str(stdout, load);
	printf(", \"uffd_mode\": ");
	bench_json_str(stdout, uffd_mode);
	printf(", \"mpi\": ");
	bench_json_str(stdout, mpi);
	printf(", \"libdsm\": \"%d.%d.%d\", \"smoke\": %s, \"size_factor\": %g, \"date\": "
	       "\"%s\"}\n",
	       DSM_VERSION_MAJOR, DSM_VERSION_MINOR, DSM_VERSION_PATCH, o->smoke ? "true" : "false",
	       o->size_factor, date);
	fflush(stdout);
}

/* ---- running ------------------------------------------------------------------------------ */

/* What the running libdsm uses, as it says (the provider as the transport names it). */
static void from_runtime(struct bench_opts *o, struct bench_ctx *c)
{
	static dsm_info_t info = {.struct_size = sizeof(info)};

	dsm_query(&info);
	o->provider = info.provider;
	o->line_size = info.line_size;
	c->heap_size = info.heap_size;
	c->strict = info.overcommit_strict;
}

/* dsm_config_t.cache_size of the running libdsm: 0, the environment's (bench_restart_cache). */
static size_t cache_size;

static int start_dsm(const struct bench_opts *o, size_t heap_size)
{
	dsm_config_t cfg = DSM_CONFIG_INIT;
	int ret;

	cfg.heap_size = heap_size;
	cfg.cache_size = cache_size;
	ret = dsm_init(&cfg);
	if (ret < 0)
		bench_fail(o, "init", "dsm_init: %s", dsm_strerror(ret));
	return ret;
}

/* DSM_PREFETCH as the run's environment had it (NULL: unset), and whether a restart failed. */
static char *env_prefetch;
static bool dsm_down;

int bench_restart_prefetch(const struct bench_opts *o, size_t heap_size, const char *prefetch)
{
	const char *want = prefetch ? prefetch : env_prefetch;
	uint64_t before, after;
	int ret;

	/* Compared as libdsm reads them: unset and "auto" are the same. */
	if (dsm_setting_u64(DSM_SETTING_PREFETCH, &before, NULL) < 0)
		before = UINT64_MAX;
	if (want)
		setenv("DSM_PREFETCH", want, 1);
	else
		unsetenv("DSM_PREFETCH");
	if (dsm_setting_u64(DSM_SETTING_PREFETCH, &after, NULL) < 0) {
		bench_fail(o, "init", "DSM_PREFETCH=%s is not a setting libdsm takes", want);
		return -EINVAL;
	}
	if (after == before)
		return 0;
	dsm_finalize();
	ret = start_dsm(o, heap_size);
	dsm_down = ret < 0;
	return ret;
}

int bench_restart_cache(const struct bench_opts *o, size_t heap_size, size_t bytes)
{
	int ret;

	if (bytes == cache_size)
		return 0;
	cache_size = bytes;
	dsm_finalize();
	ret = start_dsm(o, heap_size);
	dsm_down = ret < 0;
	return ret;
}

static int run_one(struct bench_opts *o, struct bench_ctx *c, const struct workload *w,
                   bool explicit)
{
	if (strcmp(w->name, "floor") == 0) {
		bench_floor_emit(o, c->floor);
		return 0;
	}
	if (w->run)
		return w->run(o, c);
	if (w->app == NULL) {
		if (o->rank == 0) {
			fprintf(stderr, "dsm-bench: %s: not built into this dsm-bench\n", w->name);
			printf("{\"workload\": \"%s\", \"skipped\": \"not built into this "
			       "dsm-bench\"}\n",
			       w->name);
			fflush(stdout);
		}
		/* Asked for by name, its absence is an error; in "all" it is a note. */
		return explicit ? -2 : 0;
	}
	return w->app(o);
}

int main(int argc, char **argv)
{
	struct bench_opts o = {0};
	struct bench_floor floor = {0};
	struct bench_ctx ctx = {.floor = &floor};
	const char *provider, *prefetch;
	uint64_t line_size;
	bool explicit = false, need_floor = false, set, stats;
	int provided, ret, status = 0, hosts;

	ret = parse_args(argc, argv, &o, &explicit);
	if (ret)
		return ret < 0 ? 0 : ret;
	prefetch = getenv("DSM_PREFETCH");
	env_prefetch = prefetch && *prefetch ? strdup(prefetch) : NULL;

	MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &o.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &o.nranks);
	if (o.nranks < 2) {
		fprintf(stderr, "dsm-bench: it measures between ranks: run it with at least 2 "
		                "(mpiexec -n 2 dsm-bench, or srun -n 2 dsm-bench)\n");
		MPI_Finalize();
		return 2;
	}
	/* Only JSON on stdout: libdsm's counter table at finalize would land in it. */
	if (dsm_setting_bool(DSM_SETTING_STATS, &stats) == 0 && stats) {
		if (o.rank == 0)
			fprintf(stderr, "dsm-bench: ignoring DSM_STATS (stdout is for JSON)\n");
		unsetenv("DSM_STATS");
	}
	/* The settings libdsm will use, read from its registry, to measure the floors for the
	 * same line size and provider before it starts. */
	if (dsm_settings_check() < 0 || dsm_setting_u64(DSM_SETTING_LINE_SIZE, &line_size, &set)) {
		status = 2;
		goto out_mpi;
	}
	if (!set)
		line_size = (uint64_t)sysconf(_SC_PAGESIZE);
	provider = dsm_setting_string(DSM_SETTING_PROVIDER);
	o.line_size = line_size;
	o.provider = provider ? provider : "default";
	for (size_t i = 0; i < NWORKLOADS; i++)
		need_floor |= workloads[i].selected && workloads[i].needs_floor;
	hosts = count_hosts();
	if (need_floor)
		bench_floor_measure(&o, line_size, provider ? provider : "", &floor);

	if (start_dsm(&o, 0) < 0) {
		status = 1;
		goto out_mpi;
	}
	from_runtime(&o, &ctx);
	if (floor.have && strcmp(floor.provider, o.provider) != 0)
		fprintf(stderr,
		        "dsm-bench: the floors were measured over %s, libdsm runs over %s\n",
		        floor.provider, o.provider);
	emit_meta(&o, &ctx, hosts, floor.have ? floor.uffd_mode : "");

	for (size_t i = 0; i < NWORKLOADS; i++) {
		struct workload *w = &workloads[i];
		int before = bench_failures(), mine, all;
		double t0 = bench_now();

		if (!w->selected)
			continue;
		/* The scale workload wants its 16 TiB heap: restart libdsm for it if needed. */
		if (w->run == bench_scale && ctx.heap_size < SCALE_HEAP) {
			dsm_finalize();
			if (start_dsm(&o, SCALE_HEAP) < 0) {
				status = 1;
				goto out_mpi;
			}
			from_runtime(&o, &ctx);
		}
		ret = run_one(&o, &ctx, w, explicit);
		if (dsm_down) {
			status = 1;
			goto out_mpi;
		}
		if (ret < 0 && ret != -2 && bench_failures() == before)
			bench_fail(&o, w->name, "failed (%d) without saying why", ret);
		mine = bench_failures() - before + (ret == -2);
		MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
		if (all > 0) {
			status = 1;
			if (o.rank == 0 && mine == 0)
				bench_fail(&o, w->name,
				           "a check failed on another rank (its stderr "
				           "says which)");
		}
		if (o.rank == 0)
			fprintf(stderr, "dsm-bench: %s: %s in %.1f s\n", w->name,
			        all ? "FAILED" : "done", bench_now() - t0);
		dsm_barrier();
	}
	dsm_finalize();
out_mpi:
	MPI_Finalize();
	free(env_prefetch);
	return status;
}
