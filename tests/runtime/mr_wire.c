/* SPDX-License-Identifier: MIT */
/*
 * A broken peer inside the job: rank 1 sends rank 0 well-formed protocol messages that
 * only a line's home may take (GET_M, GET_S, WB, DONE, EVICT), for a line homed at rank 1
 * (a line nobody allocated is taken, since a collective allocation may be under way: the
 * ranks agree on it before each records it). Rank 0 is not their home: it must drop every one
 * (msgs_dropped, one log line each) and change nothing; before the check, its engine
 * took them as the home, started a directory entry for a line it is not home of and
 * granted that line to rank 1 from a home segment that does not hold it. Then both lines
 * are read and written by both ranks as usual.
 *
 * It links the runtime's static library (the forgeries go through the runtime's own
 * send, with the event loop's baton held) and runs with 2 ranks.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <dsm.h>

#include "coherence/coherence.h"
#include "runtime/msg.h"
#include "runtime/rt.h"
#include "transport/transport.h"

#include "mr.h"
#include "mr_loop.h"

struct forged {
	int peer;
	const dsm_coh_msg_t *m;
};

static void send_forged(struct dsm_rt *rt, void *arg)
{
	const struct forged *f = arg;

	CHECK(dsm_rt_send(rt, f->peer, DSM_RT_MSG_COH, f->m, sizeof(*f->m)) == 0);
}

/* Sends @m to @peer as this rank's event loop would: holding its baton. */
static void send_as_loop(struct dsm_rt *rt, int peer, const dsm_coh_msg_t *m)
{
	struct forged f = {.peer = peer, .m = m};

	mr_as_loop(rt, send_forged, &f);
}

static uint64_t dropped(void)
{
	dsm_stats_t s = {.struct_size = sizeof(s)};

	dsm_stats(&s);
	return s.msgs_dropped;
}

int main(int argc, char **argv)
{
	static const uint8_t types[] = {DSM_COH_MSG_GET_M, DSM_COH_MSG_GET_S, DSM_COH_MSG_WB,
	                                DSM_COH_MSG_DONE, DSM_COH_MSG_EVICT};
	const int nforged = (int)sizeof(types);
	size_t line_size;
	volatile long *data;
	long per_line;
	uint64_t d0;
	int rank;

	mr_start(&argc, &argv);
	if (dsm_init(NULL) != 0)
		return 2;
	rank = dsm_rank();
	line_size = mr_line_size();
	per_line = (long)(line_size / sizeof(long));
	CHECK(dsm_nranks() == 2);
	/* Line 0 of it homed at rank 0, line 1 at rank 1 (a block each). */
	data = dsm_all_alloc(2 * line_size, DSM_DIST_BLOCK);
	CHECK(data != NULL);
	CHECK(dsm_home((const void *)&data[0]) == 0);
	CHECK(dsm_home((const void *)&data[per_line]) == 1);
	data[rank * per_line] = 100 + rank; /* each rank writes its own line */
	dsm_barrier();
	d0 = dropped();
	dsm_barrier();
	if (rank == 1) {
		struct dsm_rt *rt = dsm_rt_g;
		int64_t mine = dsm_coh_line_of(&rt->layout, (uintptr_t)&data[per_line]);

		CHECK(mine >= 0);
		for (unsigned i = 0; i < sizeof(types); i++) {
			dsm_coh_msg_t m = {.type = types[i], .src = 1};

			m.line = (uint64_t)mine;
			send_as_loop(rt, 0, &m);
		}
		printf("rank 1 sent rank 0 %d messages for lines it is not home of\n", nforged);
	}
	/* The barrier's messages leave after the forgeries (per-pair order): rank 0 has
	 * handled them all when it passes. */
	dsm_barrier();
	if (rank == 0) {
		uint64_t got = dropped() - d0;

		printf("rank 0 dropped %llu of them\n", (unsigned long long)got);
		CHECK(got == (uint64_t)nforged);
		struct dsm_rt *rt = dsm_rt_g;
		dsm_coh_dir_info_t di;
		int64_t l1 = dsm_coh_line_of(&rt->layout, (uintptr_t)&data[per_line]);

		dsm_coh_dir_info(rt->node, (uint64_t)l1, &di);
		CHECK(di.state == DSM_COH_DIR_U && !di.busy && di.queued == 0);
	} else {
		CHECK(dropped() == d0); /* no grant came back for what rank 0 dropped */
	}
	dsm_barrier();
	/* Both lines as usual: read the other's, then write it. */
	CHECK(data[(1 - rank) * per_line] == 100 + (1 - rank));
	dsm_barrier();
	if (rank == 0)
		data[per_line] = 7;
	dsm_barrier();
	if (rank == 1) {
		CHECK(data[per_line] == 7);
		data[0] = 8;
	}
	dsm_barrier();
	CHECK(data[0] == 8 && data[per_line] == 7);
	dsm_barrier();
	dsm_all_free((void *)data);
	dsm_finalize();
	return mr_finish();
}
