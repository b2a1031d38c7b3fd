/* SPDX-License-Identifier: MIT */
/*
 * The decoders of runtime messages (wire.h) as they come from other ranks: pure functions
 * from bytes (and the few parameters the format depends on: line size, ranks, lines, batch
 * limits) to a checked view, or -EINVAL. They see no runtime state, so that one place
 * decides whether a message is well-formed and tests/fuzz/fuzz_rt.c fuzzes exactly that
 * place; a handler calls its decoder first and keeps only its semantic checks (the line is
 * homed here, the epoch, the collective's sequence).
 *
 * A view points into the message: every offset and count it reports has been checked
 * against the message's length, so a handler that walks it reads no byte outside it.
 *
 * Fixed-size messages are decoded to their struct. Where a refused request is answered
 * (FREED, STATS), *@m_p is filled whenever the length is right, also when -EINVAL says a
 * field is wrong: the handler answers its token.
 */
#ifndef DSM_RT_DECODE_H
#define DSM_RT_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coherence/coherence.h"
#include "runtime/wire.h"

/* The size of every message of @type, or 0 for a type of variable length (COH, COH_BATCH,
 * MW_DATA, MW_GET, MW_DIFF) or no type at all. */
size_t dsm_rt_wire_size(unsigned type);

/* Whether a message of @type and @len bytes can be one: a known type, of its size. */
int dsm_rt_decode_frame(unsigned type, size_t len);

/* A fixed-size message of @type to *@out (dsm_rt_wire_size(type) bytes). */
int dsm_rt_decode_fixed(unsigned type, const void *data, size_t len, void *out);

/* ---- protocol messages ---------------------------------------------------------------- */

/* COH: one message, with its line (@ls bytes) at *@line_p when it carries one, else NULL. */
int dsm_rt_decode_coh(const void *data, size_t len, size_t ls, dsm_coh_msg_t *m_p,
                      const void **line_p);

/* The fields of one protocol message from @src, whatever carried it: a known type, sent by
 * @src, about one of @nlines lines. */
int dsm_rt_check_coh_msg(const dsm_coh_msg_t *m, int src, uint64_t nlines);

/* The line bytes one COH_BATCH carries at most, for lines of @ls bytes. */
size_t dsm_rt_coh_batch_cap(size_t ls);

/* COH_BATCH, checked whole: at most DSM_RT_GATHER_MSGS messages and dsm_rt_coh_batch_cap()
 * bytes of lines, exactly as many lines as messages that say they carry one. */
struct dsm_rt_coh_batch_view {
	const char *lines, *hdrs;
	size_t ls;
	unsigned n, ndata;
	unsigned next, next_data; /* the iterator */
};

int dsm_rt_decode_coh_batch(const void *data, size_t len, size_t ls,
                            struct dsm_rt_coh_batch_view *v_p);
/* The batch's next message and its line (NULL: none); false after the last. */
bool dsm_rt_coh_batch_next(struct dsm_rt_coh_batch_view *v, dsm_coh_msg_t *m_p,
                           const void **line_p);

/* Writes the header and @n messages of a batch whose @ndata lines (@ls bytes each) are in
 * @buf already, after the header's room; returns the batch's length. */
size_t dsm_rt_encode_coh_batch(void *buf, size_t ls, const dsm_coh_msg_t *v, unsigned n,
                               unsigned ndata);

/* ---- multiple-writer memory ------------------------------------------------------------ */

/* MW: a known op. Who may send which is the handler's. */
int dsm_rt_decode_mw(const void *data, size_t len, struct dsm_rt_mw_msg *m_p);

/* MW_GET of 1 .. @max_lines lines. */
struct dsm_rt_mw_get_view {
	uint32_t n;
	uint64_t epoch;
	const char *ids;
};

int dsm_rt_decode_mw_get(const void *data, size_t len, uint32_t max_lines,
                         struct dsm_rt_mw_get_view *v_p);
uint64_t dsm_rt_mw_get_line(const struct dsm_rt_mw_get_view *v, uint32_t i);
/* A GET of @n @lines into @buf (sizeof(struct dsm_rt_mw_get) + 8 @n bytes); its length. */
size_t dsm_rt_encode_mw_get(void *buf, const uint64_t *lines, uint32_t n, uint64_t epoch);

/* MW_DATA of 1 .. @max_lines lines of @ls bytes. */
struct dsm_rt_mw_data_view {
	uint32_t n;
	uint64_t epoch;
	size_t ls;
	const char *ids, *lines;
};

int dsm_rt_decode_mw_data(const void *data, size_t len, size_t ls, uint32_t max_lines,
                          struct dsm_rt_mw_data_view *v_p);
uint64_t dsm_rt_mw_data_line(const struct dsm_rt_mw_data_view *v, uint32_t i);
const void *dsm_rt_mw_data_bytes(const struct dsm_rt_mw_data_view *v, uint32_t i);
/* The header and the @n ids (@ids, 8 bytes each, any alignment) of an MW_DATA into @buf;
 * returns where the lines' data go (the message is that plus @n lines). */
size_t dsm_rt_encode_mw_data_head(void *buf, uint32_t n, uint64_t epoch, const void *ids);

/* MW_DIFF, checked whole (every record in bounds, every diff one for a line of @ls bytes,
 * dsm_coh_diff_check) before a handler applies its first record. */
struct dsm_rt_mw_diff_view {
	const char *p;
	size_t len, ls;
	uint32_t n;
	uint32_t next;
	size_t at; /* the iterator */
};

int dsm_rt_decode_mw_diff(const void *data, size_t len, size_t ls, struct dsm_rt_mw_diff_view *v_p);
/* The next record: its line and diff; false after the last. */
bool dsm_rt_mw_diff_next(struct dsm_rt_mw_diff_view *v, uint64_t *line_p, const void **diff_p,
                         uint32_t *len_p);

/* ---- the others -------------------------------------------------------------------------- */

/* DEAD, ADOPTED from @src: a rank among @nranks, not @src. */
int dsm_rt_decode_dead(unsigned type, const void *data, size_t len, unsigned nranks, int src,
                       struct dsm_rt_dead_msg *m_p);
/* FREED, UNALLOC: lines [first, first + n) among @nlines, n > 0, known flags. */
int dsm_rt_decode_freed(unsigned type, const void *data, size_t len, uint64_t nlines,
                        struct dsm_rt_freed_msg *m_p);
/* COLL_ROUND: the ranks its verdict names are among @nranks. */
int dsm_rt_decode_coll_round(const void *data, size_t len, unsigned nranks,
                             struct dsm_rt_coll_round *m_p);
/* COLL_SYNC: the collective it is in follows the last it finished, whose verdict names a
 * rank among @nranks. */
int dsm_rt_decode_coll_sync(const void *data, size_t len, unsigned nranks,
                            struct dsm_rt_coll_sync *m_p);
/* STATS: counters of this build's dsm_stats_t. */
int dsm_rt_decode_stats(const void *data, size_t len, struct dsm_rt_stats_msg *m_p);

#endif
