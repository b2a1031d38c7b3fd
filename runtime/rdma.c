/* SPDX-License-Identifier: MIT */
#include "runtime/rdma.h"

#include <stdlib.h>

#include "common/log.h"
#include "common/vec.h"
#include "runtime/fatal.h"
#include "runtime/rt.h"

/* Chunks of the home segment registered at a time, as lines are granted from them. */
#define HOME_REG_CHUNK ((size_t)16 << 20)

/* Every rank makes the same choice (same settings, same provider); the segment is a
 * collective of the transport, which logs what fails. */
int dsm_rt_rdma_init(struct dsm_rt *rt)
{
	size_t chunk = HOME_REG_CHUNK < rt->homeseg.size ? HOME_REG_CHUNK : rt->homeseg.size;

	rt->rdma.on = dsm_rt_config_data_rdma(&rt->cfg);
	if (!rt->rdma.on)
		return 0;
	return dsm_tp_seg_create(rt->tp, rt->home, rt->homeseg.size, chunk, &rt->rdma.seg);
}

void dsm_rt_rdma_fini(struct dsm_rt *rt)
{
	if (rt->rdma.seg)
		dsm_tp_seg_destroy(rt->rdma.seg);
	for (size_t i = 0; i < rt->rdma.n; i++) {
		if (rt->rdma.all[i]->mr)
			dsm_tp_mr_dereg(rt->tp, rt->rdma.all[i]->mr);
		free(rt->rdma.all[i]->buf);
		free(rt->rdma.all[i]);
	}
	free(rt->rdma.all);
	rt->rdma = (struct dsm_rt_rdma){0};
}

/* The home segment's copy of @line, opened first under strict overcommit (the loop must
 * not take a SIGSEGV). */
char *dsm_rt_home_line(struct dsm_rt *rt, uint64_t line)
{
	char *p = rt->home + (line << rt->layout.line_shift);

	if (dsm_rt_heap_open_addr(&rt->homeseg, p) < 0)
		dsm_rt_fatal(rt, "cannot open the home segment under strict overcommit: the commit "
		                 "limit is reached");
	return p;
}

/* A staging buffer for one line's read: from the free list, else a new registered one. */
static struct dsm_rt_staging *staging_get(struct dsm_rt *rt)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	struct dsm_rt_staging *s = rt->rdma.free;

	if (s) {
		rt->rdma.free = s->next;
		return s;
	}
	if (DSM_VEC_RESERVE(rt->rdma.all, rt->rdma.cap, rt->rdma.n + 1) < 0)
		dsm_rt_fatal(rt, "out of memory for RDMA staging buffers");
	s = calloc(1, sizeof(*s));
	if (s == NULL || posix_memalign(&s->buf, (size_t)rt->cfg.page_size, ls) != 0)
		dsm_rt_fatal(rt, "out of memory for RDMA staging buffers");
	/* The transport logs why it fails. */
	if (dsm_tp_mr_reg(rt->tp, s->buf, ls, &s->mr) < 0)
		dsm_rt_fatal(rt, "cannot register an RDMA staging buffer of %zu bytes", ls);
	rt->rdma.all[rt->rdma.n++] = s;
	return s;
}

void dsm_rt_rdma_done(struct dsm_rt *rt, struct dsm_rt_staging *s)
{
	s->next = rt->rdma.free;
	rt->rdma.free = s;
}

int dsm_rt_rdma_expose(struct dsm_rt *rt, uint64_t line)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;

	dsm_rt_home_line(rt, line); /* opened under strict overcommit */
	return dsm_tp_seg_populate(rt->rdma.seg, (size_t)line << rt->layout.line_shift, ls);
}

int dsm_rt_rdma_read(struct dsm_rt *rt, uint64_t line, int home)
{
	size_t ls = (size_t)1 << rt->layout.line_shift;
	struct dsm_rt_staging *s = staging_get(rt);
	int ret;

	s->line = line;
	ret = dsm_tp_seg_read(rt->rdma.seg, home, (size_t)line << rt->layout.line_shift, s->buf, ls,
	                      s->mr, s);
	if (ret < 0)
		dsm_rt_rdma_done(rt, s);
	return ret;
}
