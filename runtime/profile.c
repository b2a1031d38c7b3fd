/* SPDX-License-Identifier: MIT */
#include "runtime/profile.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/settings.h"

#define PROF_WORDS      8          /* distinct words a line remembers faults at, per rank */
#define PROF_PEERS      3          /* peers a line remembers it came from, per rank */
#define PROF_ALLOCS_MAX (1u << 20) /* allocations recorded; later ones are only counted */

/* One line, on this rank. */
struct prof_line {
	uint64_t key; /* line + 1; 0: a free slot */
	uint32_t rfaults, wfaults, invals, downgrades, recv, sent, diffs_out, diffs_in;
	struct {
		uint32_t w; /* word index << 1 | write */
		uint32_t n; /* faults at it */
	} word[PROF_WORDS];
	uint32_t nwords, words_more; /* faults at words beyond the PROF_WORDS remembered */
	struct {
		int32_t peer;
		uint32_t n;
	} from[PROF_PEERS];
	uint32_t from_more; /* lines and diffs from peers beyond those */
};

struct prof_alloc {
	uint64_t seq; /* of the allocations and frees on this rank */
	uint64_t base, size;
	const void *site;
	int16_t kind; /* enum dsm_rt_prof_kind; -1: a free of base */
	int16_t dist;
};

struct dsm_rt_prof {
	FILE *f;
	char path[4096];
	/* The lines: the loop's (the baton). */
	struct prof_line *v;
	size_t mask, n;
	bool full; /* a table that could not grow: later lines are only counted */
	uint64_t lost;
	/* The allocations and frees: application threads'. */
	pthread_mutex_t lock;
	struct prof_alloc *a;
	size_t na, cap;
	uint64_t seq, allocs_lost;
};

int dsm_rt_prof_init(struct dsm_rt *rt)
{
	const char *path = dsm_setting_string(DSM_SETTING_PROFILE);
	struct dsm_rt_prof *p;
	int n;

	if (path == NULL || *path == '\0' || strcmp(path, "off") == 0 || strcmp(path, "0") == 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	n = snprintf(p->path, sizeof(p->path), "%s.%d.dsmprof", path, rt->rank);
	if (n < 0 || (size_t)n >= sizeof(p->path)) {
		DSM_LOG(DSM_LOG_ERROR, "DSM_PROFILE: the path '%.64s...' is too long", path);
		free(p);
		return -ENAMETOOLONG;
	}
	p->mask = 4095;
	p->v = calloc(p->mask + 1, sizeof(*p->v));
	p->f = p->v ? fopen(p->path, "w") : NULL;
	if (p->f == NULL) {
		int err = p->v ? -errno : -ENOMEM;

		DSM_LOG(DSM_LOG_ERROR, "DSM_PROFILE: cannot write %s: %s", p->path, strerror(-err));
		free(p->v);
		free(p);
		return err;
	}
	pthread_mutex_init(&p->lock, NULL);
	rt->prof = p;
	DSM_LOG(DSM_LOG_INFO, "profiling lines into %s", p->path);
	return 0;
}

void dsm_rt_prof_fini(struct dsm_rt *rt)
{
	struct dsm_rt_prof *p = rt->prof;

	if (p == NULL)
		return;
	if (p->f) { /* dsm_init failed, or the rank ends without dsm_finalize */
		fclose(p->f);
		unlink(p->path);
	}
	pthread_mutex_destroy(&p->lock);
	free(p->v);
	free(p->a);
	free(p);
	rt->prof = NULL;
}

/* ---- lines ---------------------------------------------------------------------------- */

static bool grow_lines(struct dsm_rt_prof *p)
{
	size_t cap = (p->mask + 1) * 2;
	struct prof_line *v = calloc(cap, sizeof(*v));

	if (v == NULL)
		return false;
	for (size_t i = 0; i <= p->mask; i++) {
		size_t j;

		if (p->v[i].key == 0)
			continue;
		for (j = dsm_hash64(p->v[i].key) & (cap - 1); v[j].key; j = (j + 1) & (cap - 1))
			;
		v[j] = p->v[i];
	}
	free(p->v);
	p->v = v;
	p->mask = cap - 1;
	return true;
}

/* The record of @line, made on its first event; NULL once memory ran out. */
static struct prof_line *line_rec(struct dsm_rt_prof *p, uint64_t line)
{
	uint64_t key = line + 1;
	size_t i;

	for (i = dsm_hash64(key) & p->mask; p->v[i].key; i = (i + 1) & p->mask)
		if (p->v[i].key == key)
			return &p->v[i];
	if (!p->full && 2 * (p->n + 1) > p->mask + 1) {
		if (!grow_lines(p))
			p->full = true;
		else /* the slot moved */
			for (i = dsm_hash64(key) & p->mask; p->v[i].key; i = (i + 1) & p->mask)
				;
	}
	if (p->full) {
		p->lost++;
		return NULL;
	}
	p->v[i].key = key;
	p->n++;
	return &p->v[i];
}

void dsm_rt_prof_fault_slow(struct dsm_rt *rt, uint64_t line, uint64_t addr, bool write)
{
	struct prof_line *l = line_rec(rt->prof, line);
	uint64_t off = addr - dsm_coh_line_addr(&rt->layout, line);
	uint32_t w = (uint32_t)(off >> 3) << 1 | write;

	if (l == NULL)
		return;
	if (write)
		l->wfaults++;
	else
		l->rfaults++;
	for (uint32_t i = 0; i < l->nwords; i++)
		if (l->word[i].w == w) {
			l->word[i].n++;
			return;
		}
	if (l->nwords < PROF_WORDS) {
		l->word[l->nwords].w = w;
		l->word[l->nwords++].n = 1;
	} else {
		l->words_more++;
	}
}

static void came_from(struct prof_line *l, int peer)
{
	for (unsigned i = 0; i < PROF_PEERS; i++) {
		if (l->from[i].n && l->from[i].peer != peer)
			continue;
		l->from[i].peer = peer;
		l->from[i].n++;
		return;
	}
	l->from_more++;
}

void dsm_rt_prof_event_slow(struct dsm_rt *rt, uint64_t line, enum dsm_rt_prof_ev ev, int peer)
{
	struct prof_line *l = line_rec(rt->prof, line);

	if (l == NULL)
		return;
	switch (ev) {
	case DSM_RT_PROF_INVAL:
		l->invals++;
		break;
	case DSM_RT_PROF_DOWNGRADE:
		l->downgrades++;
		break;
	case DSM_RT_PROF_RECV:
		l->recv++;
		came_from(l, peer);
		break;
	case DSM_RT_PROF_SENT:
		l->sent++;
		break;
	case DSM_RT_PROF_DIFF_OUT:
		l->diffs_out++;
		break;
	case DSM_RT_PROF_DIFF_IN:
		l->diffs_in++;
		came_from(l, peer);
		break;
	}
}

/* ---- allocations ---------------------------------------------------------------------- */

static void alloc_push(struct dsm_rt_prof *p, const struct prof_alloc *a)
{
	pthread_mutex_lock(&p->lock);
	if (p->na == p->cap && p->cap < PROF_ALLOCS_MAX) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct prof_alloc *v = realloc(p->a, cap * sizeof(*v));

		if (v) {
			p->a = v;
			p->cap = cap;
		}
	}
	if (p->na < p->cap) {
		p->a[p->na] = *a;
		p->a[p->na++].seq = p->seq;
	} else {
		p->allocs_lost++;
	}
	p->seq++;
	pthread_mutex_unlock(&p->lock);
}

void dsm_rt_prof_alloc_slow(struct dsm_rt *rt, const void *ptr, size_t size,
                            enum dsm_rt_prof_kind kind, int dist, const void *site)
{
	alloc_push(rt->prof, &(struct prof_alloc){.base = (uint64_t)(uintptr_t)ptr,
	                                          .size = size,
	                                          .site = site,
	                                          .kind = (int16_t)kind,
	                                          .dist = (int16_t)dist});
}

void dsm_rt_prof_free_slow(struct dsm_rt *rt, const void *ptr)
{
	alloc_push(rt->prof, &(struct prof_alloc){.base = (uint64_t)(uintptr_t)ptr, .kind = -1});
}

/* ---- the file (docs/PROFILE.md) ------------------------------------------------------- */

static const char *kind_name(int k)
{
	return k == DSM_RT_PROF_ALLOC       ? "alloc"
	       : k == DSM_RT_PROF_ALL_ALLOC ? "all_alloc"
	                                    : "all_alloc_mw";
}

static int cmp_site(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const void *const *)a,
	          y = (uintptr_t) * (const void *const *)b;

	return x < y ? -1 : x > y;
}

/* Each call site once: where it is in which file, for addr2line. */
static void write_sites(struct dsm_rt_prof *p)
{
	const void **s = malloc((p->na + 1) * sizeof(*s));
	size_t n = 0;

	if (s == NULL)
		return;
	for (size_t i = 0; i < p->na; i++)
		if (p->a[i].kind >= 0)
			s[n++] = p->a[i].site;
	qsort(s, n, sizeof(*s), cmp_site);
	for (size_t i = 0; i < n; i++) {
		Dl_info di;

		if (i && s[i] == s[i - 1])
			continue;
		if (s[i] && dladdr(s[i], &di) && di.dli_fname)
			fprintf(p->f, "site %#" PRIxPTR " %#" PRIxPTR " %s %s\n", (uintptr_t)s[i],
			        (uintptr_t)s[i] - (uintptr_t)di.dli_fbase,
			        di.dli_sname ? di.dli_sname : "-", di.dli_fname);
		else
			fprintf(p->f, "site %#" PRIxPTR " 0 - -\n", (uintptr_t)s[i]);
	}
	free(s);
}

static void write_line(FILE *f, const struct prof_line *l)
{
	fprintf(f, "line %" PRIu64 " %u %u %u %u %u %u %u %u ", l->key - 1, l->rfaults, l->wfaults,
	        l->invals, l->downgrades, l->recv, l->sent, l->diffs_out, l->diffs_in);
	if (l->nwords == 0)
		fputc('-', f);
	for (uint32_t i = 0; i < l->nwords; i++) {
		fprintf(f, "%s%u%c", i ? "," : "", l->word[i].w >> 1,
		        (l->word[i].w & 1) ? 'w' : 'r');
		if (l->word[i].n > 1)
			fprintf(f, "*%u", l->word[i].n);
	}
	if (l->words_more)
		fprintf(f, ",+%u", l->words_more);
	fputc(' ', f);
	if (l->from[0].n == 0 && l->from_more == 0)
		fputc('-', f);
	for (unsigned i = 0; i < PROF_PEERS && l->from[i].n; i++)
		fprintf(f, "%s%d:%u", i ? "," : "", l->from[i].peer, l->from[i].n);
	if (l->from_more)
		fprintf(f, "%s+%u", l->from[0].n ? "," : "", l->from_more);
	fputc('\n', f);
}

void dsm_rt_prof_write(struct dsm_rt *rt)
{
	struct dsm_rt_prof *p = rt->prof;
	char host[256] = "-";
	size_t lines = 0;
	int ret;

	if (p == NULL)
		return;
	gethostname(host, sizeof(host) - 1);
	fprintf(p->f, "dsmprof 1\n");
	fprintf(p->f,
	        "rank %d nranks %d line_size %zu heap_base %#" PRIxPTR " heap_size %zu pid %d "
	        "exact %d host %s\n",
	        rt->rank, rt->nranks, rt->cfg.line_size, (uintptr_t)rt->heap.base, rt->heap.size,
	        (int)getpid(), rt->region.exact, host);
	write_sites(p);
	for (size_t i = 0; i < p->na; i++) {
		const struct prof_alloc *a = &p->a[i];

		if (a->kind < 0)
			fprintf(p->f, "free %" PRIu64 " %#" PRIx64 "\n", a->seq, a->base);
		else
			fprintf(p->f,
			        "alloc %" PRIu64 " %#" PRIx64 " %" PRIu64 " %s %d %#" PRIxPTR "\n",
			        a->seq, a->base, a->size, kind_name(a->kind), a->dist,
			        (uintptr_t)a->site);
	}
	for (size_t i = 0; i <= p->mask; i++)
		if (p->v[i].key) {
			write_line(p->f, &p->v[i]);
			lines++;
		}
	if (p->lost || p->allocs_lost)
		fprintf(p->f, "lost %" PRIu64 " %" PRIu64 "\n", p->lost, p->allocs_lost);
	fprintf(p->f, "end %zu\n", lines);
	ret = fflush(p->f) ? -errno : 0;
	if (ret == 0 && fsync(fileno(p->f)) < 0)
		ret = -errno;
	if (fclose(p->f) && ret == 0)
		ret = -errno;
	p->f = NULL;
	if (ret < 0)
		DSM_LOG(DSM_LOG_ERROR, "DSM_PROFILE: writing %s failed: %s", p->path,
		        strerror(-ret));
	else
		DSM_LOG(DSM_LOG_INFO, "profile of %zu lines written to %s", lines, p->path);
}
