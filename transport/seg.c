/* SPDX-License-Identifier: MIT */
/*
 * Segments: registered in chunks as they are populated, so a TiB reservation
 * costs nothing until touched (and verbs without on-demand paging pins only
 * what is used). A chunk's key is (segment id << 40 | chunk index), so a peer
 * computes it from the offset alone.
 */
#include "transport/internal.h"

#include <dsm.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/log.h"

struct dsm_tp_seg {
	dsm_tp_t *tp;
	uint64_t id;
	unsigned char *base;
	size_t len;
	size_t chunk;
	size_t nchunks;
	dsm_tp_mr_t **mrs;
	size_t registered;
	uint64_t *bases; /* [size]: every rank's base */
};

static uint64_t chunk_key(const struct dsm_tp_seg *s, size_t idx)
{
	return s->id << 40 | (uint64_t)idx;
}

int dsm_tp_seg_create(dsm_tp_t *tp, void *base, size_t len, size_t chunk, dsm_tp_seg_t **seg_p)
{
	struct dsm_tp_seg *s;
	uint64_t mine = (uint64_t)(uintptr_t)base;
	int ret;

	if (tp->prov_key) {
		DSM_LOG(DSM_LOG_ERROR,
		        "transport: provider %s chooses its own keys; segments "
		        "need requested keys in this version",
		        tp->prov);
		return -ENOTSUP;
	}
	if (chunk == 0 || (chunk & (chunk - 1)) || len == 0 || ((uintptr_t)base & 4095))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->tp = tp;
	s->id = ++tp->seg_ids; /* same on every rank: creation is collective */
	s->base = base;
	s->len = len;
	s->chunk = chunk;
	s->nchunks = (len + chunk - 1) / chunk;
	s->mrs = calloc(s->nchunks, sizeof(*s->mrs));
	s->bases = calloc((size_t)tp->size, sizeof(*s->bases));
	if (!s->mrs || !s->bases) {
		ret = -ENOMEM;
		goto fail;
	}
	/* Children must not share the pages the NIC writes into (TRAPS.md). */
	if (syscall(SYS_madvise, base, len, MADV_DONTFORK) != 0) {
		ret = -errno;
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "transport: madvise(MADV_DONTFORK) on a segment");
		goto fail;
	}
	ret = tp->boot->allgather(tp->boot->ctx, &mine, s->bases, sizeof(mine));
	if (ret)
		goto fail;
	*seg_p = s;
	return 0;
fail:
	free(s->mrs);
	free(s->bases);
	free(s);
	return ret;
}

int dsm_tp_seg_destroy(dsm_tp_seg_t *s)
{
	int ret = 0;

	if (s == NULL)
		return 0;
	for (size_t i = 0; i < s->nchunks; i++) {
		if (s->mrs[i]) {
			int r = dsm_tp_mr_dereg(s->tp, s->mrs[i]);
			if (r && !ret)
				ret = r;
		}
	}
	free(s->mrs);
	free(s->bases);
	free(s);
	return ret;
}

int dsm_tp_seg_populate(dsm_tp_seg_t *s, size_t off, size_t len)
{
	if (len == 0)
		return 0;
	if (off >= s->len || len > s->len - off)
		return -EINVAL;
	for (size_t i = off / s->chunk; i <= (off + len - 1) / s->chunk; i++) {
		size_t start = i * s->chunk;
		size_t n = s->len - start < s->chunk ? s->len - start : s->chunk;
		int ret;

		if (s->mrs[i])
			continue;
		ret = dsm_tp_mr_reg(s->tp, s->base + start, n, chunk_key(s, i), &s->mrs[i]);
		if (ret)
			return ret;
		s->registered += n;
	}
	return 0;
}

size_t dsm_tp_seg_registered(const dsm_tp_seg_t *s)
{
	return s->registered;
}

dsm_tp_mr_t *dsm_tp_seg_mr(const dsm_tp_seg_t *s, size_t off)
{
	return off < s->len ? s->mrs[off / s->chunk] : NULL;
}

static int remote(const struct dsm_tp_seg *s, int peer, size_t off, size_t len, uint64_t *raddr,
                  uint64_t *rkey)
{
	size_t idx = off / s->chunk;

	if (peer < 0 || peer >= s->tp->size || len == 0 || off >= s->len || len > s->len - off ||
	    (off + len - 1) / s->chunk != idx)
		return -EINVAL;
	*raddr = s->tp->virt_addr ? s->bases[peer] + off : off - idx * s->chunk;
	*rkey = chunk_key(s, idx);
	return 0;
}

int dsm_tp_seg_read(dsm_tp_seg_t *s, int peer, size_t off, void *local, size_t len,
                    dsm_tp_mr_t *lmr, void *ctx)
{
	uint64_t raddr, rkey;
	int ret = remote(s, peer, off, len, &raddr, &rkey);

	return ret ? ret : dsm_tp_read(s->tp, peer, local, len, lmr, raddr, rkey, ctx);
}

int dsm_tp_seg_write(dsm_tp_seg_t *s, int peer, size_t off, const void *local, size_t len,
                     dsm_tp_mr_t *lmr, void *ctx)
{
	uint64_t raddr, rkey;
	int ret = remote(s, peer, off, len, &raddr, &rkey);

	return ret ? ret : dsm_tp_write(s->tp, peer, local, len, lmr, raddr, rkey, ctx);
}
