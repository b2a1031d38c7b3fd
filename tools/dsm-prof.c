/* SPDX-License-Identifier: MIT */
/*
 * dsm-prof: where a job's lines move, and why. Reads the files that DSM_PROFILE=PATH made
 * (PATH.RANK.dsmprof, one per rank; docs/PROFILE.md has the format), merges them, and says
 * which allocations and lines cost the most, between which ranks they move, and whether
 * that is false sharing (ranks writing different words of one line: multiple-writer memory
 * or padding helps) or true sharing (ranks using the same words: only a change of algorithm
 * does). It draws a heat map of the heap's touched lines as a PNG.
 *
 *   dsm-prof [--top N] [--png FILE | --no-png] PATH|FILE...
 *
 * PATH stands for every PATH.*.dsmprof. Exit status: 0, 1 a file is missing, truncated or
 * does not match the others (one line on stderr says which), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

#define MAX_WORDS 8 /* as the runtime records (runtime/profile.c) */
#define MAX_PEERS 3

/* One rank's record of one line. */
struct rec {
	int rank;
	uint32_t rf, wf, inv, dg, recv, sent, dout, din;
	uint32_t word[MAX_WORDS], wn[MAX_WORDS]; /* word << 1 | write, and faults at it */
	uint32_t nwords, words_more;
	struct {
		int peer;
		uint32_t n;
	} from[MAX_PEERS];
	uint32_t nfrom, from_more;
};

enum pattern { PAT_PRIVATE, PAT_READ, PAT_ONE_WRITER, PAT_FALSE, PAT_TRUE, PAT_PAGES, PAT_N };
static const char *const pat_name[PAT_N] = {"private",       "read-shared",  "one writer",
                                            "false sharing", "true sharing", "write-shared"};

struct line {
	uint64_t line;
	struct rec *r; /* one per rank that recorded it */
	unsigned n, cap;
	uint64_t faults, invals, moves, events;
	enum pattern pat;
	long alloc; /* index into allocs, -1: none */
};

struct alloc {
	uint64_t base, size, seq;
	char kind[16];
	int dist, rank; /* rank: whose file it came from (the first) */
	char site[512];
	uint64_t lines, faults, invals, moves, events;
	uint64_t pat_events[PAT_N];
	bool freed;
};

/* A pair of ranks a line moved between, summed over an allocation or the job. */
struct edge {
	int from, to;
	uint64_t n;
};

static struct {
	int nranks, files;
	uint64_t line_size, heap_base, heap_lines;
	bool inexact; /* fault addresses were pages, not words: no word-level pattern */
	bool *seen;
	struct line *l;
	size_t nl, lcap;
	size_t *hash; /* line index + 1 by line number */
	size_t hmask;
	struct alloc *a;
	size_t na, acap;
	uint64_t lost_lines, lost_allocs;
} g;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("dsm-prof: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		die("out of memory");
	return p;
}

static struct line *line_get(uint64_t line)
{
	size_t i;

	if (2 * (g.nl + 1) > g.hmask + 1) {
		size_t cap = g.hmask ? (g.hmask + 1) * 2 : 4096;

		free(g.hash);
		g.hash = calloc(cap, sizeof(*g.hash));
		if (g.hash == NULL)
			die("out of memory");
		g.hmask = cap - 1;
		for (size_t k = 0; k < g.nl; k++) {
			for (i = dsm_hash64(g.l[k].line) & g.hmask; g.hash[i];
			     i = (i + 1) & g.hmask)
				;
			g.hash[i] = k + 1;
		}
	}
	for (i = dsm_hash64(line) & g.hmask; g.hash[i]; i = (i + 1) & g.hmask)
		if (g.l[g.hash[i] - 1].line == line)
			return &g.l[g.hash[i] - 1];
	if (g.nl == g.lcap) {
		g.lcap = g.lcap ? g.lcap * 2 : 4096;
		g.l = xrealloc(g.l, g.lcap * sizeof(*g.l));
	}
	g.hash[i] = g.nl + 1;
	g.l[g.nl] = (struct line){.line = line, .alloc = -1};
	return &g.l[g.nl++];
}

/* ---- reading ------------------------------------------------------------------------- */

/* "12w,13r,+5" */
static bool parse_words(char *s, struct rec *r)
{
	if (strcmp(s, "-") == 0)
		return true;
	for (char *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
		char *end;
		unsigned long v;

		if (*t == '+') {
			r->words_more = (uint32_t)strtoul(t + 1, &end, 10);
			if (*end)
				return false;
			continue;
		}
		v = strtoul(t, &end, 10);
		if ((*end != 'w' && *end != 'r') || r->nwords == MAX_WORDS)
			return false;
		r->word[r->nwords] = (uint32_t)(v << 1 | (*end == 'w'));
		r->wn[r->nwords] = 1;
		if (end[1] == '*')
			r->wn[r->nwords] = (uint32_t)strtoul(end + 2, &end, 10);
		else
			end++;
		if (*end || r->wn[r->nwords] == 0)
			return false;
		r->nwords++;
	}
	return true;
}

/* "1:30,3:2,+4" */
static bool parse_from(char *s, struct rec *r)
{
	if (strcmp(s, "-") == 0)
		return true;
	for (char *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
		char *end;

		if (*t == '+') {
			r->from_more = (uint32_t)strtoul(t + 1, &end, 10);
			if (*end)
				return false;
			continue;
		}
		if (r->nfrom == MAX_PEERS)
			return false;
		r->from[r->nfrom].peer = (int)strtol(t, &end, 10);
		if (*end != ':')
			return false;
		r->from[r->nfrom].n = (uint32_t)strtoul(end + 1, &end, 10);
		if (*end)
			return false;
		r->nfrom++;
	}
	return true;
}

/* file:line of @off in @file by addr2line, when it is installed and the file has them. */
static void resolve_site(const char *file, uint64_t off, const char *sym, char *out, size_t len)
{
	char cmd[PATH_MAX + 64], fn[256] = "", where[PATH_MAX] = "";
	FILE *p;

	snprintf(out, len, "%s (%s+%#" PRIx64 ")", sym, file, off);
	if (strchr(file, '\'') || off == 0)
		return;
	/* The return address: the call is the byte before it. */
	snprintf(cmd, sizeof(cmd), "addr2line -f -e '%s' %#" PRIx64 " 2>/dev/null", file, off - 1);
	p = popen(cmd, "r");
	if (p == NULL)
		return;
	if (fgets(fn, sizeof(fn), p) && fgets(where, sizeof(where), p)) {
		fn[strcspn(fn, "\n")] = '\0';
		where[strcspn(where, "\n")] = '\0';
		if (where[0] != '?' && fn[0] != '?') {
			const char *base = strrchr(where, '/');

			snprintf(out, len, "%s (%s)", fn, base ? base + 1 : where);
		}
	}
	pclose(p);
}

struct site {
	uint64_t addr;
	char text[512];
};

/* Whether an equal collective allocation was read already (from another rank's file); if
 * not, it is remembered. A hash of (base, size, kind). */
static bool coll_seen(const struct alloc *a)
{
	static struct {
		uint64_t base, size;
		char kind[16];
	} * t;
	static size_t cap, n;
	size_t i;

	if (2 * (n + 1) > cap) {
		size_t nc = cap ? cap * 2 : 1024;
		__typeof__(t) nt = calloc(nc, sizeof(*t));

		if (nt == NULL)
			die("out of memory");
		for (size_t k = 0; k < cap; k++)
			if (t[k].size) {
				for (i = dsm_hash64(t[k].base ^ t[k].size) & (nc - 1); nt[i].size;
				     i = (i + 1) & (nc - 1))
					;
				nt[i] = t[k];
			}
		free(t);
		t = nt;
		cap = nc;
	}
	for (i = dsm_hash64(a->base ^ a->size) & (cap - 1); t[i].size; i = (i + 1) & (cap - 1))
		if (t[i].base == a->base && t[i].size == a->size && strcmp(t[i].kind, a->kind) == 0)
			return true;
	t[i].base = a->base;
	t[i].size = a->size;
	snprintf(t[i].kind, sizeof(t[i].kind), "%s", a->kind);
	n++;
	return false;
}

static void read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[8192];
	int rank = -1, nranks, exact = -1;
	unsigned long long ls, base, hsize;
	const char *ex;
	bool ended = false;
	size_t nlines = 0, nsite = 0;
	struct site *sites = NULL;
	uint64_t end_n = 0;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	if (!fgets(buf, sizeof(buf), f))
		die("%s: empty: its rank did not reach dsm_finalize", path);
	if (strcmp(buf, "dsmprof 1\n"))
		die("%s: not a profile of this version (the first line is not 'dsmprof 1')", path);
	if (!fgets(buf, sizeof(buf), f) ||
	    sscanf(buf, "rank %d nranks %d line_size %llu heap_base %llx heap_size %llu", &rank,
	           &nranks, &ls, &base, &hsize) != 5 ||
	    rank < 0 || nranks <= 0 || rank >= nranks || ls == 0 || (ls & (ls - 1)) || hsize < ls ||
	    base + hsize < base)
		die("%s: a malformed header", path);
	ex = strstr(buf, " exact ");
	if (ex)
		exact = ex[7] == '1';
	if (g.files == 0) {
		g.nranks = nranks;
		g.line_size = ls;
		g.heap_base = base;
		g.heap_lines = hsize / ls;
		g.inexact = exact == 0;
		g.seen = calloc((size_t)nranks, 1);
		if (g.seen == NULL)
			die("out of memory");
	} else if (nranks != g.nranks || ls != g.line_size || base != g.heap_base) {
		die("%s: from another job (%d ranks, %llu-byte lines, heap at %#llx; the first "
		    "file: %d, %" PRIu64 ", %#" PRIx64 ")",
		    path, nranks, ls, base, g.nranks, g.line_size, g.heap_base);
	}
	if (g.seen[rank])
		die("%s: rank %d comes twice", path, rank);
	g.seen[rank] = true;
	g.files++;
	while (fgets(buf, sizeof(buf), f)) {
		char *nl = strchr(buf, '\n');

		if (nl == NULL && feof(f))
			die("%s: truncated (its last line is cut short)", path);
		if (nl == NULL)
			die("%s: a line longer than %zu bytes", path, sizeof(buf));
		*nl = '\0';
		if (ended)
			die("%s: data after its end", path);
		if (strncmp(buf, "line ", 5) == 0) {
			struct rec r = {.rank = rank};
			unsigned long long ln;
			char words[2048], from[512];
			struct line *l;

			if (sscanf(buf, "line %llu %u %u %u %u %u %u %u %u %2047s %511s", &ln,
			           &r.rf, &r.wf, &r.inv, &r.dg, &r.recv, &r.sent, &r.dout, &r.din,
			           words, from) != 11 ||
			    !parse_words(words, &r) || !parse_from(from, &r) || ln >= g.heap_lines)
				die("%s: a malformed record: %.80s", path, buf);
			for (unsigned k = 0; k < r.nfrom; k++)
				if (r.from[k].peer < 0 || r.from[k].peer >= g.nranks)
					die("%s: a malformed record: %.80s", path, buf);
			l = line_get(ln);
			if (l->n == l->cap) {
				l->cap = l->cap ? l->cap * 2 : 2;
				l->r = xrealloc(l->r, l->cap * sizeof(*l->r));
			}
			l->r[l->n++] = r;
			nlines++;
		} else if (strncmp(buf, "alloc ", 6) == 0) {
			struct alloc a = {.rank = rank};
			unsigned long long seq, b, sz, site;
			size_t i;

			if (sscanf(buf, "alloc %llu %llx %llu %15s %d %llx", &seq, &b, &sz, a.kind,
			           &a.dist, &site) != 6 ||
			    b < g.heap_base || sz == 0 || sz > g.heap_lines * g.line_size ||
			    b - g.heap_base > g.heap_lines * g.line_size - sz ||
			    (strcmp(a.kind, "alloc") && strcmp(a.kind, "all_alloc") &&
			     strcmp(a.kind, "all_alloc_mw")))
				die("%s: a malformed record: %.80s", path, buf);
			a.seq = seq;
			a.base = b;
			a.size = sz;
			snprintf(a.site, sizeof(a.site), "%#llx", site);
			for (i = 0; i < nsite; i++)
				if (sites[i].addr == site)
					snprintf(a.site, sizeof(a.site), "%s", sites[i].text);
			/* A collective allocation is in every rank's file: once. */
			if (strcmp(a.kind, "alloc") && coll_seen(&a))
				continue;
			(void)i;
			if (g.na == g.acap) {
				g.acap = g.acap ? g.acap * 2 : 64;
				g.a = xrealloc(g.a, g.acap * sizeof(*g.a));
			}
			g.a[g.na++] = a;
		} else if (strncmp(buf, "site ", 5) == 0) {
			unsigned long long addr, off;
			char sym[256], *file;
			int used = 0;

			if (sscanf(buf, "site %llx %llx %255s %n", &addr, &off, sym, &used) != 3 ||
			    used == 0)
				die("%s: a malformed record: %.80s", path, buf);
			file = buf + used;
			sites = xrealloc(sites, (nsite + 1) * sizeof(*sites));
			sites[nsite].addr = addr;
			if (strcmp(file, "-") == 0)
				snprintf(sites[nsite].text, sizeof(sites[nsite].text), "%#llx",
				         addr);
			else
				resolve_site(file, off, sym, sites[nsite].text,
				             sizeof(sites[nsite].text));
			nsite++;
		} else if (strncmp(buf, "free ", 5) == 0) {
			unsigned long long seq, b;

			if (sscanf(buf, "free %llu %llx", &seq, &b) != 2)
				die("%s: a malformed record: %.80s", path, buf);
			for (size_t i = g.na; i-- > 0;)
				if (g.a[i].base == b) {
					g.a[i].freed = true;
					break;
				}
		} else if (strncmp(buf, "lost ", 5) == 0) {
			unsigned long long a, b;

			if (sscanf(buf, "lost %llu %llu", &a, &b) != 2)
				die("%s: a malformed record: %.80s", path, buf);
			g.lost_lines += a;
			g.lost_allocs += b;
		} else if (strncmp(buf, "end ", 4) == 0) {
			unsigned long long n;

			if (sscanf(buf, "end %llu", &n) != 1)
				die("%s: a malformed record: %.80s", path, buf);
			end_n = n;
			ended = true;
		} else {
			die("%s: an unknown record: %.80s", path, buf);
		}
	}
	if (ferror(f))
		die("%s: %s", path, strerror(errno));
	fclose(f);
	free(sites);
	if (!ended)
		die("%s: truncated (no end record): did rank %d reach dsm_finalize?", path, rank);
	if (end_n != nlines)
		die("%s: says %" PRIu64 " lines and holds %zu", path, end_n, nlines);
}

/* ---- analysis ------------------------------------------------------------------------- */

static enum pattern classify(const struct line *l)
{
	unsigned touched = 0, writers = 0;

	for (unsigned i = 0; i < l->n; i++) {
		const struct rec *r = &l->r[i];

		touched += r->rf + r->wf + r->recv + r->din + r->dout > 0;
		writers += r->wf + r->dout > 0;
	}
	if (touched <= 1)
		return PAT_PRIVATE;
	if (writers == 0)
		return PAT_READ;
	/* One rank writes, the others read what it wrote (a producer and its consumers, a
	 * stencil's edge): the data moves because it is used, as with true sharing. */
	if (writers == 1)
		return PAT_ONE_WRITER;
	/* Two writers or more; without the words (faults at pages) nothing tells false sharing
	 * from true. */
	if (g.inexact)
		return PAT_PAGES;
	/*
	 * True sharing: the faults of one rank at words it wrote that another rank also
	 * faulted at, counted as the smaller of the two ranks' faults at each such word, make
	 * at least half of the faults of the rank with fewer. Ranks writing their own words
	 * meet once in a while (a histogram's bins that both hit, a final read of the others'
	 * results): still false sharing, as the line moved for the other words; ranks taking
	 * turns at the same words (a counter, a flag) meet at nearly every fault.
	 */
	for (unsigned i = 0; i < l->n; i++) {
		const struct rec *a = &l->r[i];
		uint64_t fa = 0;

		for (unsigned k = 0; k < a->nwords; k++)
			fa += a->wn[k];
		for (unsigned j = 0; j < l->n; j++) {
			const struct rec *b = &l->r[j];
			uint64_t fb = 0, both = 0;

			if (j == i)
				continue;
			for (unsigned m = 0; m < b->nwords; m++)
				fb += b->wn[m];
			for (unsigned k = 0; k < a->nwords; k++) {
				uint64_t nb = 0;

				if (!(a->word[k] & 1))
					continue;
				for (unsigned m = 0; m < b->nwords; m++)
					if (b->word[m] >> 1 == a->word[k] >> 1)
						nb += b->wn[m];
				both += nb < a->wn[k] ? nb : a->wn[k];
			}
			if (fa && fb && 2 * both >= (fa < fb ? fa : fb))
				return PAT_TRUE;
		}
	}
	return PAT_FALSE;
}

static long alloc_of(uint64_t addr)
{
	size_t lo = 0, hi = g.na;
	long best = -1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (g.a[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Those below it that could still reach it: a reused range's allocations sit
	 * together. */
	for (size_t i = lo; i-- > 0 && lo - i <= 64;) {
		const struct alloc *a = &g.a[i];

		if (addr - a->base >= a->size)
			continue;
		if (best < 0 || (g.a[best].freed && !a->freed) ||
		    (g.a[best].freed == a->freed && a->seq >= g.a[best].seq))
			best = (long)i;
	}
	return best;
}

static int cmp_alloc_base(const void *x, const void *y)
{
	const struct alloc *a = x, *b = y;

	return a->base < b->base ? -1 : a->base > b->base;
}

static void analyse(void)
{
	/* Allocations by address, for the lookup of each line and for the map. */
	if (g.na)
		qsort(g.a, g.na, sizeof(*g.a), cmp_alloc_base);
	for (size_t i = 0; i < g.nl; i++) {
		struct line *l = &g.l[i];
		uint64_t at = g.heap_base + l->line * g.line_size;

		for (unsigned k = 0; k < l->n; k++) {
			const struct rec *r = &l->r[k];

			l->faults += r->rf + r->wf;
			l->invals += r->inv;
			l->moves += r->recv + r->din;
		}
		l->events = l->faults + l->invals + l->moves;
		l->pat = classify(l);
		/* Attributed by the first word faulted at (a line may hold several small
		 * objects), else by its first byte. */
		for (unsigned k = 0; k < l->n; k++)
			if (l->r[k].nwords) {
				at += (uint64_t)(l->r[k].word[0] >> 1) * 8;
				break;
			}
		l->alloc = alloc_of(at);
		if (l->alloc >= 0) {
			struct alloc *a = &g.a[l->alloc];

			a->lines++;
			a->faults += l->faults;
			a->invals += l->invals;
			a->moves += l->moves;
			a->events += l->events;
			a->pat_events[l->pat] += l->events;
		}
	}
}

static void edges_add(struct edge **e, size_t *n, int from, int to, uint64_t c)
{
	for (size_t i = 0; i < *n; i++)
		if ((*e)[i].from == from && (*e)[i].to == to) {
			(*e)[i].n += c;
			return;
		}
	*e = xrealloc(*e, (*n + 1) * sizeof(**e));
	(*e)[(*n)++] = (struct edge){from, to, c};
}

static int cmp_edge(const void *x, const void *y)
{
	const struct edge *a = x, *b = y;

	return a->n < b->n ? 1 : a->n > b->n ? -1 : 0;
}

/* The pairs of ranks the lines of @alloc (-2: all) moved between, most first. */
static void print_edges(long alloc, const struct line *only, unsigned top)
{
	struct edge *e = NULL;
	size_t n = 0;

	for (size_t i = 0; i < g.nl; i++) {
		const struct line *l = &g.l[i];

		if (only ? l != only : alloc != -2 && l->alloc != alloc)
			continue;
		for (unsigned k = 0; k < l->n; k++)
			for (unsigned j = 0; j < l->r[k].nfrom; j++)
				if (l->r[k].from[j].peer >= 0)
					edges_add(&e, &n, l->r[k].from[j].peer, l->r[k].rank,
					          l->r[k].from[j].n);
	}
	qsort(e, n, sizeof(*e), cmp_edge);
	for (size_t i = 0; i < n && i < top; i++)
		printf("%s%d->%d %" PRIu64, i ? ", " : "", e[i].from, e[i].to, e[i].n);
	if (n > top)
		printf(", and %zu more pairs", n - top);
	if (n == 0)
		printf("none");
	free(e);
}

static enum pattern alloc_pattern(const struct alloc *a)
{
	enum pattern p = PAT_PRIVATE;

	for (int k = 0; k < PAT_N; k++)
		if (a->pat_events[k] > a->pat_events[p])
			p = (enum pattern)k;
	return p;
}

static const char *size_str(uint64_t b, char *buf, size_t len)
{
	static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned i = 0;
	double v = (double)b;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
	return buf;
}

static size_t *order;
static int cmp_line_events(const void *x, const void *y)
{
	const struct line *a = &g.l[*(const size_t *)x], *b = &g.l[*(const size_t *)y];

	if (a->events != b->events)
		return a->events < b->events ? 1 : -1;
	return a->line < b->line ? -1 : a->line > b->line;
}

static int cmp_alloc_events(const void *x, const void *y)
{
	const struct alloc *a = &g.a[*(const size_t *)x], *b = &g.a[*(const size_t *)y];

	return a->events < b->events ? 1 : a->events > b->events ? -1 : 0;
}

static void words_of(const struct line *l, char *out, size_t len)
{
	size_t at = 0;

	out[0] = '\0';
	for (unsigned k = 0; k < l->n && at + 32 < len; k++) {
		const struct rec *r = &l->r[k];

		if (r->nwords == 0)
			continue;
		at += (size_t)snprintf(out + at, len - at, "%sr%d:", at ? " " : "", r->rank);
		for (unsigned i = 0; i < r->nwords && at + 24 < len; i++) {
			at += (size_t)snprintf(out + at, len - at, "%s%u%c", i ? "," : "",
			                       (r->word[i] >> 1) * 8, (r->word[i] & 1) ? 'w' : 'r');
			if (r->wn[i] > 1)
				at += (size_t)snprintf(out + at, len - at, "*%u", r->wn[i]);
		}
		if (r->words_more && at + 16 < len)
			at += (size_t)snprintf(out + at, len - at, ",+%u", r->words_more);
	}
}

static void report(unsigned top)
{
	size_t *ao = malloc((g.na + 1) * sizeof(*ao));
	uint64_t tot_f = 0, tot_i = 0, tot_m = 0;
	char b1[32];

	order = malloc((g.nl + 1) * sizeof(*order));
	if (ao == NULL || order == NULL)
		die("out of memory");
	for (size_t i = 0; i < g.nl; i++) {
		order[i] = i;
		tot_f += g.l[i].faults;
		tot_i += g.l[i].invals;
		tot_m += g.l[i].moves;
	}
	printf("dsm-prof: %d of %d ranks, %" PRIu64 "-byte lines, %zu lines touched, %zu "
	       "allocations\n",
	       g.files, g.nranks, g.line_size, g.nl, g.na);
	printf("totals: %" PRIu64 " faults, %" PRIu64 " invalidations, %" PRIu64
	       " lines or diffs moved\n",
	       tot_f, tot_i, tot_m);
	if (g.files < g.nranks) {
		printf("missing ranks:");
		for (int r = 0; r < g.nranks; r++)
			if (!g.seen[r])
				printf(" %d", r);
		printf(" (their side of every line is left out)\n");
	}
	if (g.lost_lines || g.lost_allocs)
		printf("incomplete: %" PRIu64 " line events and %" PRIu64
		       " allocations were not recorded (a rank ran out of memory for them)\n",
		       g.lost_lines, g.lost_allocs);

	for (size_t i = 0; i < g.na; i++)
		ao[i] = i;
	qsort(ao, g.na, sizeof(*ao), cmp_alloc_events);
	printf("\nallocations, hottest first (events: faults + invalidations + moves, all "
	       "ranks)\n");
	for (size_t k = 0; k < g.na && k < top; k++) {
		const struct alloc *a = &g.a[ao[k]];
		enum pattern p = alloc_pattern(a);

		if (a->events == 0)
			break;
		printf("%2zu. %s at %#" PRIx64 ", %s, homes %s, from %s%s\n", k + 1, a->kind,
		       a->base, size_str(a->size, b1, sizeof(b1)),
		       a->dist == 0   ? "block"
		       : a->dist == 1 ? "cyclic"
		       : a->dist == 2 ? "on rank 0"
		                      : "on its caller",
		       a->site, a->freed ? " (freed)" : "");
		printf("    %" PRIu64 " lines touched, %" PRIu64 " events: %" PRIu64
		       " faults, %" PRIu64 " invalidations, %" PRIu64 " moves\n",
		       a->lines, a->events, a->faults, a->invals, a->moves);
		printf("    pattern: %s (%.0f%% of its events)\n", pat_name[p],
		       a->events ? 100.0 * (double)a->pat_events[p] / (double)a->events : 0.0);
		printf("    moves between ranks (from->to lines): ");
		print_edges((long)ao[k], NULL, 6);
		printf("\n");
		if (p == PAT_FALSE && strcmp(a->kind, "all_alloc_mw"))
			printf("    hint: ranks write different words of the same lines: allocate "
			       "it "
			       "with dsm_all_alloc_mw (multiple-writer memory), or pad each rank's "
			       "part to a line\n");
		else if (p == PAT_PAGES)
			printf("    note: this kernel gave the pages of the faults, not their "
			       "words "
			       "(no UFFD_FEATURE_EXACT_ADDRESS): false and true sharing look "
			       "alike\n");
		else if (p == PAT_TRUE && a->moves > a->lines * 4)
			printf("    hint: ranks use the same words: the line moves with each use; "
			       "batch the updates per rank, or keep them in a lock-protected line "
			       "bound to its mutex\n");
	}
	qsort(order, g.nl, sizeof(*order), cmp_line_events);
	printf("\nlines, hottest first\n");
	printf("%12s %18s %8s %8s %8s  %-13s  %s\n", "line", "address", "faults", "invals", "moves",
	       "pattern", "words faulted at, per rank (byte offset, r/w)");
	for (size_t k = 0; k < g.nl && k < top; k++) {
		const struct line *l = &g.l[order[k]];
		char w[512];

		words_of(l, w, sizeof(w));
		printf("%12" PRIu64 " %#18" PRIx64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
		       "  %-13s  %s\n",
		       l->line, g.heap_base + l->line * g.line_size, l->faults, l->invals, l->moves,
		       pat_name[l->pat], w);
		printf("%12s moves: ", "");
		print_edges(-1, l, 4);
		printf("%s\n", l->alloc >= 0 ? "" : "; in no recorded allocation");
	}
	printf("\nmoves between ranks, whole job (from->to lines): ");
	print_edges(-2, NULL, 16);
	printf("\n");
	free(ao);
}

/* ---- the heat map --------------------------------------------------------------------- */

static uint32_t crc_table[256];

static uint32_t crc32_of(uint32_t c, const unsigned char *p, size_t n)
{
	if (crc_table[1] == 0)
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;

			for (int k = 0; k < 8; k++)
				v = v & 1 ? 0xedb88320u ^ (v >> 1) : v >> 1;
			crc_table[i] = v;
		}
	c = ~c;
	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void chunk(FILE *f, const char *type, const unsigned char *data, size_t n)
{
	unsigned char h[8];
	uint32_t c;

	put32(h, (uint32_t)n);
	memcpy(h + 4, type, 4);
	c = crc32_of(0, h + 4, 4);
	c = crc32_of(c, data, n);
	fwrite(h, 1, 8, f);
	fwrite(data, 1, n, f);
	put32(h, c);
	fwrite(h, 1, 4, f);
}

/* An 8-bit RGB PNG of @w x @h pixels, its rows uncompressed (zlib's stored blocks). */
static int png_write(const char *path, const unsigned char *rgb, unsigned w, unsigned h)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	size_t row = (size_t)w * 3 + 1, raw = row * h, nblk = (raw + 65534) / 65535;
	size_t zlen = 2 + raw + nblk * 5 + 4, at = 0, done = 0;
	unsigned char ihdr[13], *z = malloc(zlen);
	uint32_t s1 = 1, s2 = 0;
	FILE *f;

	if (z == NULL)
		return -ENOMEM;
	put32(ihdr, w);
	put32(ihdr + 4, h);
	ihdr[8] = 8; /* bits per channel */
	ihdr[9] = 2; /* RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	z[at++] = 0x78;
	z[at++] = 0x01;
	while (done < raw) {
		size_t n = raw - done < 65535 ? raw - done : 65535;

		z[at++] = done + n == raw; /* BFINAL, stored */
		z[at++] = (unsigned char)n;
		z[at++] = (unsigned char)(n >> 8);
		z[at++] = (unsigned char)~n;
		z[at++] = (unsigned char)(~n >> 8);
		for (size_t i = 0; i < n; i++, done++) {
			size_t y = done / row, x = done % row;
			unsigned char b = x == 0 ? 0 : rgb[y * (size_t)w * 3 + x - 1];

			z[at++] = b;
			s1 = (s1 + b) % 65521;
			s2 = (s2 + s1) % 65521;
		}
	}
	put32(z + at, s2 << 16 | s1);
	at += 4;
	f = fopen(path, "wb");
	if (f == NULL) {
		free(z);
		return -errno;
	}
	fwrite(sig, 1, sizeof(sig), f);
	chunk(f, "IHDR", ihdr, sizeof(ihdr));
	chunk(f, "IDAT", z, at);
	chunk(f, "IEND", NULL, 0);
	free(z);
	return fclose(f) ? -errno : 0;
}

/* Black, red, yellow, white as @t goes from 0 to 1. */
static void heat(double t, unsigned char *px)
{
	double r = t * 3, gg = t * 3 - 1, b = t * 3 - 2;

	px[0] = (unsigned char)(255 * (r < 0 ? 0 : r > 1 ? 1 : r));
	px[1] = (unsigned char)(255 * (gg < 0 ? 0 : gg > 1 ? 1 : gg));
	px[2] = (unsigned char)(255 * (b < 0 ? 0 : b > 1 ? 1 : b));
}

/*
 * One band per allocation with touched lines, in address order, and one for lines outside
 * any (by the span of those lines): each line a cell, the cell's colour its events on a log
 * scale (dark blue: untouched), a gray row between bands. The picture is MAP_W pixels wide
 * and at most MAP_H high: cells are 8 pixels square where that fits, down to 1, and then
 * several lines share a cell (their sum).
 */
#define MAP_W 1024
#define MAP_H 4096

struct band {
	uint64_t first, n;
};

/* Rows of cells the bands take with @per lines a cell and @cols cells a row. */
static uint64_t map_rows(const struct band *b, size_t nb, uint64_t per, uint64_t cols)
{
	uint64_t rows = 0;

	for (size_t i = 0; i < nb; i++)
		rows += ((b[i].n + per - 1) / per + cols - 1) / cols + 1;
	return rows;
}

static void heat_map(const char *path)
{
	struct band *bands = NULL;
	uint64_t maxev = 1, per = 1, lo = UINT64_MAX, hi = 0, cols, rows;
	unsigned cell = 8;
	unsigned char *img;
	size_t nb = 0, y = 0;
	int ret;

	for (size_t i = 0; i < g.na; i++)
		if (g.a[i].lines) {
			uint64_t n = (g.a[i].size + g.line_size - 1) / g.line_size;

			bands = xrealloc(bands, (nb + 1) * sizeof(*bands));
			bands[nb++] =
			        (struct band){(g.a[i].base - g.heap_base) / g.line_size, n ? n : 1};
		}
	for (size_t i = 0; i < g.nl; i++) {
		maxev = g.l[i].events > maxev ? g.l[i].events : maxev;
		if (g.l[i].alloc < 0) {
			lo = g.l[i].line < lo ? g.l[i].line : lo;
			hi = g.l[i].line > hi ? g.l[i].line : hi;
		}
	}
	if (lo <= hi) {
		bands = xrealloc(bands, (nb + 1) * sizeof(*bands));
		bands[nb++] = (struct band){lo, hi - lo + 1};
	}
	if (nb == 0) {
		printf("heat map: no lines touched, none drawn\n");
		return;
	}
	while (cell > 1 && map_rows(bands, nb, 1, MAP_W / cell) * cell > MAP_H)
		cell /= 2;
	cols = MAP_W / cell;
	while (map_rows(bands, nb, per, cols) * cell > MAP_H && per < (1ull << 40))
		per *= 2;
	rows = map_rows(bands, nb, per, cols);
	img = calloc(rows * cell * MAP_W * 3, 1);
	if (img == NULL)
		die("out of memory");
	for (size_t b = 0; b < nb; b++) {
		uint64_t ncell = (bands[b].n + per - 1) / per;
		uint64_t *ev = calloc(ncell, sizeof(*ev));
		bool *touched = calloc(ncell, 1);

		if (ev == NULL || touched == NULL)
			die("out of memory");
		for (size_t i = 0; i < g.nl; i++)
			if (g.l[i].line >= bands[b].first &&
			    g.l[i].line - bands[b].first < bands[b].n) {
				uint64_t c = (g.l[i].line - bands[b].first) / per;

				ev[c] += g.l[i].events;
				touched[c] = true;
			}
		for (uint64_t c = 0; c < ncell; c++) {
			size_t cy = y + c / cols, cx = c % cols;
			unsigned char px[3] = {16, 16, 48};

			if (touched[c])
				heat(0.15 + 0.85 * log1p((double)ev[c]) /
				                     log1p((double)maxev * (double)per),
				     px);
			for (unsigned dy = 0; dy < cell; dy++)
				for (unsigned dx = 0; dx < cell; dx++)
					memcpy(img + ((cy * cell + dy) * MAP_W + cx * cell + dx) *
					                       3,
					       px, 3);
		}
		y += (ncell + cols - 1) / cols;
		memset(img + y * cell * MAP_W * 3, 96, (size_t)cell * MAP_W * 3);
		y++;
		free(ev);
		free(touched);
	}
	ret = png_write(path, img, MAP_W, (unsigned)(y * cell));
	if (ret < 0)
		die("%s: %s", path, strerror(-ret));
	printf("heat map: %s (%u x %zu pixels: %zu band%s, one per allocation in address order%s; "
	       "%" PRIu64 " line%s a cell of %u pixels square, black to white by events)\n",
	       path, MAP_W, y * cell, nb, nb == 1 ? "" : "s",
	       lo <= hi ? ", then the lines in none" : "", per, per == 1 ? "" : "s", cell);
	free(img);
	free(bands);
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: dsm-prof [--top N] [--png FILE | --no-png] PATH|FILE...\n"
	           "  PATH: the DSM_PROFILE of a run (its files PATH.RANK.dsmprof)\n"
	           "  --top N     allocations and lines listed (default 10)\n"
	           "  --png FILE  the heat map (default: PATH.png, from the first argument)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"top", required_argument, NULL, 't'},
	                                     {"png", required_argument, NULL, 'p'},
	                                     {"no-png", no_argument, NULL, 'n'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *png = NULL;
	char png_def[PATH_MAX];
	bool no_png = false;
	unsigned top = 10;
	int c;

	while ((c = getopt_long(argc, argv, "t:p:nh", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 't':
			top = (unsigned)strtoul(optarg, &end, 10);
			if (*end || top == 0) {
				fprintf(stderr, "dsm-prof: --top takes a positive number\n");
				return 2;
			}
			break;
		case 'p':
			png = optarg;
			break;
		case 'n':
			no_png = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		const char *a = argv[i];
		size_t n = strlen(a);

		if (n > 8 && strcmp(a + n - 8, ".dsmprof") == 0) {
			read_file(a);
		} else {
			char pat[PATH_MAX];
			glob_t gl;

			snprintf(pat, sizeof(pat), "%s.*.dsmprof", a);
			if (glob(pat, 0, NULL, &gl) != 0)
				die("%s: no profile here (no %s)", a, pat);
			for (size_t k = 0; k < gl.gl_pathc; k++)
				read_file(gl.gl_pathv[k]);
			globfree(&gl);
		}
	}
	if (png == NULL) {
		const char *a = argv[optind];
		size_t n = strlen(a);

		if (n > 8 && strcmp(a + n - 8, ".dsmprof") == 0) {
			/* PATH.RANK.dsmprof: PATH */
			const char *dot = a + n - 8;

			while (dot > a && dot[-1] != '.')
				dot--;
			n = dot > a ? (size_t)(dot - a - 1) : n - 8;
		}
		snprintf(png_def, sizeof(png_def), "%.*s.png", (int)n, a);
		png = png_def;
	}
	analyse();
	report(top);
	if (!no_png)
		heat_map(png);
	return 0;
}
