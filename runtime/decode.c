/* SPDX-License-Identifier: MIT */
#include "runtime/decode.h"

#include <errno.h>
#include <string.h>

#include "coherence/diff.h"

static const size_t wire_size[DSM_RT_MSG_MAX + 1] = {
        [DSM_RT_MSG_COLL] = sizeof(struct dsm_rt_coll_msg),
        [DSM_RT_MSG_COLL_ROUND] = sizeof(struct dsm_rt_coll_round),
        [DSM_RT_MSG_MUTEX] = sizeof(struct dsm_rt_mutex_msg),
        [DSM_RT_MSG_FREE] = sizeof(struct dsm_rt_free_msg),
        [DSM_RT_MSG_REPLY] = sizeof(struct dsm_rt_reply),
        [DSM_RT_MSG_MW] = sizeof(struct dsm_rt_mw_msg),
        [DSM_RT_MSG_DEAD] = sizeof(struct dsm_rt_dead_msg),
        [DSM_RT_MSG_ADOPTED] = sizeof(struct dsm_rt_dead_msg),
        [DSM_RT_MSG_COLL_SYNC] = sizeof(struct dsm_rt_coll_sync),
        [DSM_RT_MSG_COLL_RELEASE] = sizeof(struct dsm_rt_coll_release),
        [DSM_RT_MSG_CKPT] = sizeof(struct dsm_rt_ckpt_msg),
        [DSM_RT_MSG_FREED] = sizeof(struct dsm_rt_freed_msg),
        [DSM_RT_MSG_UNALLOC] = sizeof(struct dsm_rt_freed_msg),
        [DSM_RT_MSG_STATS] = sizeof(struct dsm_rt_stats_msg),
};

size_t dsm_rt_wire_size(unsigned type)
{
	return type <= DSM_RT_MSG_MAX ? wire_size[type] : 0;
}

int dsm_rt_decode_frame(unsigned type, size_t len)
{
	if (type == DSM_RT_MSG_NONE || type > DSM_RT_MSG_MAX)
		return -EINVAL;
	if (wire_size[type] && len != wire_size[type])
		return -EINVAL;
	return 0;
}

int dsm_rt_decode_fixed(unsigned type, const void *data, size_t len, void *out)
{
	if (dsm_rt_wire_size(type) == 0 || dsm_rt_decode_frame(type, len) < 0)
		return -EINVAL;
	memcpy(out, data, len);
	return 0;
}

static uint64_t get64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* ---- protocol messages ---------------------------------------------------------------- */

int dsm_rt_decode_coh(const void *data, size_t len, size_t ls, dsm_coh_msg_t *m_p,
                      const void **line_p)
{
	dsm_coh_msg_t m;
	bool has_data;

	if (len < sizeof(m))
		return -EINVAL;
	memcpy(&m, data, sizeof(m));
	has_data = m.flags & DSM_COH_MSGF_DATA;
	if (len != sizeof(m) + (has_data ? ls : 0))
		return -EINVAL;
	*m_p = m;
	*line_p = has_data ? (const char *)data + sizeof(m) : NULL;
	return 0;
}

int dsm_rt_check_coh_msg(const dsm_coh_msg_t *m, int src, uint64_t nlines)
{
	if (m->src != src || m->type == 0 || m->type >= DSM_COH_MSG_NTYPES || m->line >= nlines)
		return -EINVAL;
	return 0;
}

/* The lines, then the messages (wire.h): the messages say which of them carry a line, and
 * exactly @ndata do. */
size_t dsm_rt_coh_batch_cap(size_t ls)
{
	if (ls >= DSM_RT_GATHER_BYTES)
		return ls;
	return DSM_RT_GATHER_BYTES / ls * ls;
}

int dsm_rt_decode_coh_batch(const void *data, size_t len, size_t ls,
                            struct dsm_rt_coh_batch_view *v_p)
{
	const size_t one = sizeof(dsm_coh_msg_t);
	const char *lines = (const char *)data + sizeof(struct dsm_rt_coh_batch), *hdrs;
	struct dsm_rt_coh_batch b;
	unsigned ndata = 0;

	if (len < sizeof(b) || ls == 0)
		return -EINVAL;
	memcpy(&b, data, sizeof(b));
	if (b.n == 0 || b.n > DSM_RT_GATHER_MSGS || b.ndata > b.n || b.reserved ||
	    (size_t)b.ndata > dsm_rt_coh_batch_cap(ls) / ls ||
	    len != sizeof(b) + (size_t)b.ndata * ls + (size_t)b.n * one)
		return -EINVAL;
	hdrs = lines + (size_t)b.ndata * ls;
	for (unsigned i = 0; i < b.n; i++) {
		dsm_coh_msg_t m;

		memcpy(&m, hdrs + i * one, one);
		ndata += (m.flags & DSM_COH_MSGF_DATA) != 0;
	}
	if (ndata != b.ndata)
		return -EINVAL;
	*v_p = (struct dsm_rt_coh_batch_view){
	        .lines = lines, .hdrs = hdrs, .ls = ls, .n = b.n, .ndata = b.ndata};
	return 0;
}

bool dsm_rt_coh_batch_next(struct dsm_rt_coh_batch_view *v, dsm_coh_msg_t *m_p, const void **line_p)
{
	if (v->next >= v->n)
		return false;
	memcpy(m_p, v->hdrs + (size_t)v->next++ * sizeof(*m_p), sizeof(*m_p));
	*line_p = NULL;
	if (m_p->flags & DSM_COH_MSGF_DATA)
		*line_p = v->lines + (size_t)v->next_data++ * v->ls;
	return true;
}

size_t dsm_rt_encode_coh_batch(void *buf, size_t ls, const dsm_coh_msg_t *v, unsigned n,
                               unsigned ndata)
{
	struct dsm_rt_coh_batch b = {.n = (uint16_t)n, .ndata = (uint16_t)ndata};
	size_t data = (size_t)ndata * ls;

	memcpy(buf, &b, sizeof(b));
	memcpy((char *)buf + sizeof(b) + data, v, n * sizeof(v[0]));
	return sizeof(b) + data + n * sizeof(v[0]);
}

/* ---- multiple-writer memory ------------------------------------------------------------ */

int dsm_rt_decode_mw(const void *data, size_t len, struct dsm_rt_mw_msg *m_p)
{
	struct dsm_rt_mw_msg m;

	if (dsm_rt_decode_fixed(DSM_RT_MSG_MW, data, len, &m) < 0 || m.op < DSM_RT_MW_ACK ||
	    m.op > DSM_RT_MW_ACQUIRE)
		return -EINVAL;
	*m_p = m;
	return 0;
}

int dsm_rt_decode_mw_get(const void *data, size_t len, uint32_t max_lines,
                         struct dsm_rt_mw_get_view *v_p)
{
	struct dsm_rt_mw_get h;

	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, data, sizeof(h));
	if (h.n == 0 || h.n > max_lines || h.n > DSM_RT_MW_GET_MAX || h.reserved ||
	    len != sizeof(h) + h.n * sizeof(uint64_t))
		return -EINVAL;
	*v_p = (struct dsm_rt_mw_get_view){
	        .n = h.n, .epoch = h.epoch, .ids = (const char *)data + sizeof(h)};
	return 0;
}

uint64_t dsm_rt_mw_get_line(const struct dsm_rt_mw_get_view *v, uint32_t i)
{
	return get64(v->ids + (size_t)i * sizeof(uint64_t));
}

size_t dsm_rt_encode_mw_get(void *buf, const uint64_t *lines, uint32_t n, uint64_t epoch)
{
	struct dsm_rt_mw_get h = {.n = n, .epoch = epoch};

	memcpy(buf, &h, sizeof(h));
	memcpy((char *)buf + sizeof(h), lines, n * sizeof(lines[0]));
	return sizeof(h) + n * sizeof(lines[0]);
}

int dsm_rt_decode_mw_data(const void *data, size_t len, size_t ls, uint32_t max_lines,
                          struct dsm_rt_mw_data_view *v_p)
{
	struct dsm_rt_mw_data h;
	const char *ids = (const char *)data + sizeof(h);

	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, data, sizeof(h));
	/* h.n is at most DSM_RT_MW_GET_MAX before it multiplies anything. */
	if (h.n == 0 || h.n > max_lines || h.n > DSM_RT_MW_GET_MAX || h.reserved ||
	    ls > (SIZE_MAX - sizeof(h)) / DSM_RT_MW_GET_MAX - sizeof(uint64_t) ||
	    len != sizeof(h) + h.n * (sizeof(uint64_t) + ls))
		return -EINVAL;
	*v_p = (struct dsm_rt_mw_data_view){.n = h.n,
	                                    .epoch = h.epoch,
	                                    .ls = ls,
	                                    .ids = ids,
	                                    .lines = ids + h.n * sizeof(uint64_t)};
	return 0;
}

uint64_t dsm_rt_mw_data_line(const struct dsm_rt_mw_data_view *v, uint32_t i)
{
	return get64(v->ids + (size_t)i * sizeof(uint64_t));
}

const void *dsm_rt_mw_data_bytes(const struct dsm_rt_mw_data_view *v, uint32_t i)
{
	return v->lines + (size_t)i * v->ls;
}

size_t dsm_rt_encode_mw_data_head(void *buf, uint32_t n, uint64_t epoch, const void *ids)
{
	struct dsm_rt_mw_data h = {.n = n, .epoch = epoch};

	memcpy(buf, &h, sizeof(h));
	memcpy((char *)buf + sizeof(h), ids, n * sizeof(uint64_t));
	return sizeof(h) + n * sizeof(uint64_t);
}

int dsm_rt_decode_mw_diff(const void *data, size_t len, size_t ls, struct dsm_rt_mw_diff_view *v_p)
{
	const char *p = data;
	struct dsm_rt_mw_diff h;
	size_t at = sizeof(h);

	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (h.reserved)
		return -EINVAL;
	for (uint32_t i = 0; i < h.n; i++) {
		struct dsm_rt_mw_rec rec;

		if (len - at < sizeof(rec))
			return -EINVAL;
		memcpy(&rec, p + at, sizeof(rec));
		at += sizeof(rec);
		if (rec.reserved || rec.len > len - at ||
		    dsm_coh_diff_check(ls, p + at, rec.len) < 0)
			return -EINVAL;
		at += rec.len;
	}
	if (at != len)
		return -EINVAL;
	*v_p = (struct dsm_rt_mw_diff_view){
	        .p = p, .len = len, .ls = ls, .n = h.n, .at = sizeof(h)};
	return 0;
}

bool dsm_rt_mw_diff_next(struct dsm_rt_mw_diff_view *v, uint64_t *line_p, const void **diff_p,
                         uint32_t *len_p)
{
	struct dsm_rt_mw_rec rec;

	if (v->next >= v->n)
		return false;
	memcpy(&rec, v->p + v->at, sizeof(rec));
	v->at += sizeof(rec);
	*line_p = rec.line;
	*diff_p = v->p + v->at;
	*len_p = rec.len;
	v->at += rec.len;
	v->next++;
	return true;
}

/* ---- the others -------------------------------------------------------------------------- */

int dsm_rt_decode_dead(unsigned type, const void *data, size_t len, unsigned nranks, int src,
                       struct dsm_rt_dead_msg *m_p)
{
	struct dsm_rt_dead_msg m;

	if ((type != DSM_RT_MSG_DEAD && type != DSM_RT_MSG_ADOPTED) ||
	    dsm_rt_decode_fixed(type, data, len, &m) < 0 || m.rank >= nranks ||
	    (int64_t)m.rank == src)
		return -EINVAL;
	*m_p = m;
	return 0;
}

int dsm_rt_decode_freed(unsigned type, const void *data, size_t len, uint64_t nlines,
                        struct dsm_rt_freed_msg *m_p)
{
	if ((type != DSM_RT_MSG_FREED && type != DSM_RT_MSG_UNALLOC) ||
	    dsm_rt_decode_fixed(type, data, len, m_p) < 0)
		return -EINVAL;
	if (m_p->n == 0 || m_p->first >= nlines || m_p->n > nlines - m_p->first ||
	    (m_p->flags & ~(uint32_t)DSM_RT_FREED_HOME))
		return -EINVAL;
	return 0;
}

int dsm_rt_decode_coll_round(const void *data, size_t len, unsigned nranks,
                             struct dsm_rt_coll_round *m_p)
{
	struct dsm_rt_coll_round m;

	if (dsm_rt_decode_fixed(DSM_RT_MSG_COLL_ROUND, data, len, &m) < 0 ||
	    m.sum.ref_rank >= nranks ||
	    (m.sum.bad_rank != DSM_RT_COLL_NO_RANK && m.sum.bad_rank >= nranks))
		return -EINVAL;
	*m_p = m;
	return 0;
}

int dsm_rt_decode_coll_sync(const void *data, size_t len, unsigned nranks,
                            struct dsm_rt_coll_sync *m_p)
{
	struct dsm_rt_coll_sync m;

	if (dsm_rt_decode_fixed(DSM_RT_MSG_COLL_SYNC, data, len, &m) < 0 ||
	    (m.seq && m.seq != m.done + 1) || (m.done && m.done_sum.ref_rank >= nranks))
		return -EINVAL;
	*m_p = m;
	return 0;
}

int dsm_rt_decode_stats(const void *data, size_t len, struct dsm_rt_stats_msg *m_p)
{
	if (dsm_rt_decode_fixed(DSM_RT_MSG_STATS, data, len, m_p) < 0)
		return -EINVAL;
	return m_p->s.struct_size == sizeof(m_p->s) ? 0 : -EINVAL;
}
