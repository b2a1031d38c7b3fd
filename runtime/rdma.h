/* SPDX-License-Identifier: MIT */
/*
 * The home segment and grants by RDMA read (DSM_DATA). The home segment is
 * this rank's canonical copy of the lines it is home of, indexed like the
 * heap. With RDMA grants it is a transport segment, registered in chunks as
 * lines are granted from it, and a requester reads the line into a
 * registered staging buffer, from which the engine installs it.
 */
#ifndef DSM_RT_RDMA_H
#define DSM_RT_RDMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

struct dsm_rt;

/* A registered buffer that an RDMA read of a line fills. */
struct dsm_rt_staging {
	struct dsm_rt_staging *next; /* on the free list */
	uint64_t line;
	void *buf;
	dsm_tp_mr_t *mr;
};

/* Decides the data path and, for RDMA, makes the home segment a transport segment
 * (collective). */
int dsm_rt_rdma_init(struct dsm_rt *rt);
/* Deregisters everything: before the transport closes and before the memory goes. */
void dsm_rt_rdma_fini(struct dsm_rt *rt);
/* The home segment's copy of @line, opened first under strict overcommit. */
char *dsm_rt_home_line(struct dsm_rt *rt, uint64_t line);
/* The home grants @line by RDMA: its chunk of the home segment must be registered. */
int dsm_rt_rdma_expose(struct dsm_rt *rt, uint64_t line);
/* Reads @line from @home's segment into a staging buffer; an RMA event follows. */
int dsm_rt_rdma_read(struct dsm_rt *rt, uint64_t line, int home);
/* The read into @s is installed: @s goes back to the free list. */
void dsm_rt_rdma_done(struct dsm_rt *rt, struct dsm_rt_staging *s);

#endif
