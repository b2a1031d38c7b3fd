/* SPDX-License-Identifier: MIT */
/* The engine's private structures (see PROTOCOL.md, "Bytes per line"). */
#ifndef DSM_COH_INTERNAL_H
#define DSM_COH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "coherence/coherence.h"

/* ---- Open-addressing tables keyed by line id ----
 * Only touched lines get an entry, so a TiB heap costs nothing until used.
 * Every entry starts with its uint64_t line id; DSM_COH_NO_LINE marks a free
 * slot (line ids come from byte offsets >> 12 and never reach it). */
#define DSM_COH_NO_LINE UINT64_MAX

typedef struct dsm_coh_table {
	uint8_t *slots;
	size_t esize; /* bytes per entry */
	size_t cap;   /* a power of two, or 0 */
	size_t n;
} dsm_coh_table_t;

void dsm_coh_table_init(dsm_coh_table_t *t, size_t esize);
void dsm_coh_table_fini(dsm_coh_table_t *t);
void *dsm_coh_table_find(const dsm_coh_table_t *t, uint64_t line);
/* The entry of line, added zero-filled (but for its id) when absent; NULL
 * when out of memory. Adding may move every entry. */
void *dsm_coh_table_get(dsm_coh_table_t *t, uint64_t line);
int dsm_coh_table_copy(dsm_coh_table_t *dst, const dsm_coh_table_t *src);
/* The i-th slot's entry, or NULL for a free slot (i < cap). */
void *dsm_coh_table_slot(const dsm_coh_table_t *t, size_t i);

/* ---- Sharer sets ----
 * Up to four ranks inline (no allocation: the common case of a line read by a
 * few ranks); beyond that a bitmap of nranks bits, allocated on demand and
 * freed when the set empties. */
#define DSM_COH_INLINE_SHARERS 4

typedef struct dsm_coh_sharers {
	uint16_t n;      /* members */
	uint16_t bitmap; /* 1: the members are in bits[] */
	uint32_t pad;
	union {
		uint16_t inl[DSM_COH_INLINE_SHARERS];
		uint64_t *bits;
	} u;
} dsm_coh_sharers_t;

int dsm_coh_sharers_add(dsm_coh_sharers_t *s, unsigned rank, unsigned nranks);
void dsm_coh_sharers_del(dsm_coh_sharers_t *s, unsigned rank);
int dsm_coh_sharers_has(const dsm_coh_sharers_t *s, unsigned rank);
void dsm_coh_sharers_clear(dsm_coh_sharers_t *s);
/* Members in increasing order: the next member >= from, or -1. */
int dsm_coh_sharers_next(const dsm_coh_sharers_t *s, unsigned from, unsigned nranks);

/* ---- Entries ---- */

/* The cache side of a line at a rank: 16 bytes. */
typedef struct dsm_coh_line {
	uint64_t line;
	uint16_t home;
	uint8_t state;    /* dsm_coh_state_t */
	uint8_t flags;    /* LINE_* */
	uint8_t deferred; /* message type held back by the hold, or 0 */
	uint8_t pad[3];
} dsm_coh_line_t;

#define DSM_COH_LINE_HELD  0x1  /* granted; INV/FWD wait for HOLD_DONE */
#define DSM_COH_LINE_RDMA  0x2  /* granted; waiting for RDMA_DONE */
#define DSM_COH_LINE_WB    0x4  /* gave the line up; its RDMA write-back is in flight */
#define DSM_COH_LINE_EXCL  0x8  /* IS granted exclusive by RDMA: installs as E at RDMA_DONE */
#define DSM_COH_LINE_EVICT 0x10 /* EVICT sent: the home's INV or FWD_M will take the copy */

/* A request waiting at the home: rank << 2 | DSM_COH_REQ_*. */
typedef uint32_t dsm_coh_req_t;
#define DSM_COH_REQ_READ  0
#define DSM_COH_REQ_WRITE 1
#define DSM_COH_REQ_EVICT 2

/* The home side of a line: 48 bytes, plus the queue and bitmap when used. */
typedef struct dsm_coh_dir {
	uint64_t line;
	uint8_t state;    /* dsm_coh_dir_state_t */
	uint8_t txn;      /* 0, or the GET_S/GET_M/EVICT being served */
	uint8_t wait;     /* DIR_WAIT_* */
	uint8_t flags;    /* DIR_F_* */
	uint16_t owner;   /* DIR_M */
	uint16_t txn_req; /* the requester being served */
	uint16_t acks;    /* invalidation acks outstanding */
	uint16_t qhead, qlen, qcap;
	dsm_coh_sharers_t sharers;
	dsm_coh_req_t *q; /* ring of qcap waiting requests */
} dsm_coh_dir_t;

#define DSM_COH_DIR_WAIT_ACKS 0x1
#define DSM_COH_DIR_WAIT_WB   0x2
#define DSM_COH_DIR_WAIT_DONE 0x4

/* The GET_M's UPGRADE flag (DSM_COH_BUG_TRUST_UPGRADE only). */
#define DSM_COH_DIR_F_UPGRADE 0x1
/* Migratory: ranks take turns to read then write the line; a read miss gets it exclusive. */
#define DSM_COH_DIR_F_MIGRATORY 0x2
/* The transaction serves a GET_S with FWD_M: the line migrates to the reader. */
#define DSM_COH_DIR_F_MIGRATING 0x4
/* Shared since its owner wrote it back for a reader: owner is that last writer. */
#define DSM_COH_DIR_F_LAST_WRITER 0x8

#endif
