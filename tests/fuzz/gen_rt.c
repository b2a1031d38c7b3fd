/* SPDX-License-Identifier: MIT */
/*
 * Writes the seeds of fuzz_rt (corpus/rt): a few well-formed messages of each type, made
 * with the runtime's own encoders where it has them, for 4 ranks, 1,024 lines of 4 KiB and
 * GETs of up to 16 lines. Run from the fuzz build tree after a change of the wire format:
 *
 *   tests/fuzz/gen_rt tests/fuzz/corpus/rt
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coherence/diff.h"
#include "fuzz_rt.h"
#include "runtime/decode.h"

#define LS      4096
#define SRC     1
#define BUF_MAX (FUZZ_RT_HEAD + 3 * (LS + 1024))

static const char *dir;

static void put(const char *name, unsigned type, const void *msg, size_t len)
{
	/* 4 KiB lines, 4 ranks, sender 1, 1,024 lines, GETs of 16 */
	uint8_t head[FUZZ_RT_HEAD] = {(uint8_t)type, 0, 3, SRC, 0xff, 0x03, 15, 0};
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(head, 1, sizeof(head), f) != sizeof(head) ||
	    fwrite(msg, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void coh(void)
{
	static uint8_t buf[BUF_MAX];
	dsm_coh_msg_t get = {.type = DSM_COH_MSG_GET_S, .src = SRC, .line = 7};
	dsm_coh_msg_t grant = {
	        .type = DSM_COH_MSG_GRANT_M, .flags = DSM_COH_MSGF_DATA, .src = SRC, .line = 8};
	dsm_coh_msg_t v[3] = {get, grant, {.type = DSM_COH_MSG_INV, .src = SRC, .line = 9}};

	put("coh_get", DSM_RT_MSG_COH, &get, sizeof(get));
	memcpy(buf, &grant, sizeof(grant));
	memset(buf + sizeof(grant), 0x5a, LS);
	put("coh_grant", DSM_RT_MSG_COH, buf, sizeof(grant) + LS);
	/* The batch's one line goes after its header, as gathering puts it. */
	memset(buf + sizeof(struct dsm_rt_coh_batch), 0xa5, LS);
	put("batch_line", DSM_RT_MSG_COH_BATCH, buf, dsm_rt_encode_coh_batch(buf, LS, v, 3, 1));
	v[1].flags = 0;
	v[1].type = DSM_COH_MSG_DONE;
	put("batch", DSM_RT_MSG_COH_BATCH, buf, dsm_rt_encode_coh_batch(buf, LS, v, 3, 0));
}

static void mw(void)
{
	static uint8_t buf[BUF_MAX], twin[LS], cur[LS];
	uint64_t lines[3] = {100, 101, 102};
	struct dsm_rt_mw_msg ack = {.op = DSM_RT_MW_ACK};
	struct dsm_rt_mw_diff h = {.n = 2};
	struct dsm_rt_mw_rec rec = {.line = 100};
	size_t at, len;

	put("mw_ack", DSM_RT_MSG_MW, &ack, sizeof(ack));
	put("mw_get", DSM_RT_MSG_MW_GET, buf, dsm_rt_encode_mw_get(buf, lines, 3, 5));
	at = dsm_rt_encode_mw_data_head(buf, 2, 5, lines);
	memset(buf + at, 1, 2 * LS);
	put("mw_data", DSM_RT_MSG_MW_DATA, buf, at + 2 * LS);
	/* Two records: a RUNS diff (two runs) and a MASK one (every other byte). */
	at = sizeof(h);
	memcpy(buf, &h, sizeof(h));
	memset(cur + 16, 7, 8);
	memset(cur + 1000, 9, 3);
	len = dsm_coh_diff_make(twin, cur, LS, buf + at + sizeof(rec), NULL);
	rec.len = (uint32_t)len;
	memcpy(buf + at, &rec, sizeof(rec));
	at += sizeof(rec) + len;
	for (size_t i = 0; i < LS; i += 2)
		cur[i] = 3;
	len = dsm_coh_diff_make(twin, cur, LS, buf + at + sizeof(rec), NULL);
	rec.line = 101;
	rec.len = (uint32_t)len;
	memcpy(buf + at, &rec, sizeof(rec));
	at += sizeof(rec) + len;
	put("mw_diff", DSM_RT_MSG_MW_DIFF, buf, at);
}

static void others(void)
{
	struct dsm_rt_dead_msg dead = {.rank = 2};
	struct dsm_rt_freed_msg freed = {.first = 10, .n = 4}, unalloc = {.first = 12, .n = 1};
	struct dsm_rt_coll_call call = {.kind = DSM_RT_COLL_BARRIER};
	struct dsm_rt_coll_sum sum = {.ref_rank = 0, .bad_rank = DSM_RT_COLL_NO_RANK, .ref = call};
	struct dsm_rt_coll_msg enter = {.seq = 3, .call = call};
	struct dsm_rt_coll_round round = {.seq = 3, .round = 1, .sum = sum};
	struct dsm_rt_coll_sync sync = {.seq = 4, .done = 3, .call = call, .done_sum = sum};
	struct dsm_rt_coll_release rel = {.seq = 4, .sum = sum};
	struct dsm_rt_mutex_msg mutex = {.op = DSM_RT_MUTEX_LOCK, .addr = 0x1000, .token = 9};
	struct dsm_rt_free_msg fr = {.addr = 0x2000, .token = 10};
	struct dsm_rt_reply reply = {.token = 9, .status = -22};
	struct dsm_rt_ckpt_msg ckpt = {.op = 1, .token = 11};
	struct dsm_rt_stats_msg stats = {.token = 12, .s = {.struct_size = sizeof(dsm_stats_t)}};

	put("dead", DSM_RT_MSG_DEAD, &dead, sizeof(dead));
	put("adopted", DSM_RT_MSG_ADOPTED, &dead, sizeof(dead));
	put("freed", DSM_RT_MSG_FREED, &freed, sizeof(freed));
	put("unalloc", DSM_RT_MSG_UNALLOC, &unalloc, sizeof(unalloc));
	put("coll", DSM_RT_MSG_COLL, &enter, sizeof(enter));
	put("coll_round", DSM_RT_MSG_COLL_ROUND, &round, sizeof(round));
	put("coll_sync", DSM_RT_MSG_COLL_SYNC, &sync, sizeof(sync));
	put("coll_release", DSM_RT_MSG_COLL_RELEASE, &rel, sizeof(rel));
	put("mutex", DSM_RT_MSG_MUTEX, &mutex, sizeof(mutex));
	put("free", DSM_RT_MSG_FREE, &fr, sizeof(fr));
	put("reply", DSM_RT_MSG_REPLY, &reply, sizeof(reply));
	put("ckpt", DSM_RT_MSG_CKPT, &ckpt, sizeof(ckpt));
	put("stats", DSM_RT_MSG_STATS, &stats, sizeof(stats));
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	coh();
	mw();
	others();
	return 0;
}
