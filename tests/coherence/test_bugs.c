/* SPDX-License-Identifier: MIT */
/*
 * The checker must notice a broken protocol. Each test switches on one of the
 * engine's test-only bugs and asserts that the model checker reports the kind
 * of violation that bug causes, first with the exhaustive search and then
 * with random schedules. A checker that reported nothing would fail here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mc.h"

/* Three nodes, one line homed on node 0 (which also accesses it), one thread
 * each: node 0 writes, node 1 reads then writes, node 2 reads. Migratory lines on, as in
 * the runtime: node 1's read then write makes the line migratory, node 0's read then
 * takes it exclusive. */
static void small_config(mc_config_t *c, unsigned bugs, dsm_coh_data_mode_t mode)
{
	static const uint8_t writes[3][3] = {{1, 0, 1}, {0, 1, 0}, {0, 0, 1}};
	unsigned n, i;

	memset(c, 0, sizeof(*c));
	c->nnodes = 3;
	c->nlines = 1;
	c->nthreads = 1;
	c->data_mode = mode;
	c->wb_mode = mode;
	c->bugs = bugs;
	c->dist = DSM_COH_DIST_ZERO;
	c->migratory = 1;
	for (n = 0; n < 3; n++) {
		c->nops[n][0] = 3;
		for (i = 0; i < 3; i++) {
			c->ops[n][0][i].line = 0;
			c->ops[n][0][i].word = (uint8_t)(i % MC_WORDS);
			c->ops[n][0][i].write = writes[n][i];
			c->ops[n][0][i].value = 1 + (n << 16 | i);
		}
	}
}

static int one_of(mc_fail_t f, const mc_fail_t *ok, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (f == ok[i])
			return 1;
	return 0;
}

static void expect_caught_what(unsigned bugs, const mc_fail_t *ok, size_t nok, const char *what)
{
	mc_random_opts_t o = {.schedules = 200000,
	                      .seed = 42,
	                      .max_nodes = 4,
	                      .max_lines = 2,
	                      .max_threads = 2,
	                      .max_ops = 4,
	                      .any_data_mode = 1,
	                      .migratory = 2,
	                      .bugs = bugs};
	mc_config_t c;
	mc_result_t r;

	/* The same configuration without the bug passes: the failure below is
	 * the bug's doing, not the configuration's. */
	small_config(&c, 0, DSM_COH_DATA_INLINE);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	assert_int_equal(r.fail, MC_OK);

	small_config(&c, bugs, DSM_COH_DATA_INLINE);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive: %s (after %llu states)\n", r.what, (unsigned long long)r.states);
	assert_true(one_of(r.fail, ok, nok));
	if (what)
		assert_non_null(strstr(r.what, what));

	assert_int_equal(mc_random(&o, &r), 0);
	print_message("random: %s (schedule %llu)\n", r.what, (unsigned long long)r.schedules);
	assert_true(one_of(r.fail, ok, nok));
}

static void expect_caught(unsigned bugs, const mc_fail_t *ok, size_t nok)
{
	expect_caught_what(bugs, ok, nok, NULL);
}

static void grant_before_acks(void **state)
{
	/* A writer beside a reader that has not dropped its copy yet. */
	static const mc_fail_t ok[] = {MC_SWMR};

	(void)state;
	expect_caught(DSM_COH_BUG_GRANT_BEFORE_ACKS, ok, 1);
}

static void no_writeback(void **state)
{
	/* The next reader gets the home's old bytes. */
	static const mc_fail_t ok[] = {MC_DATA, MC_FINAL};

	(void)state;
	expect_caught(DSM_COH_BUG_NO_WRITEBACK, ok, 2);
}

static void read_grant_rw(void **state)
{
	/* A second writer, or at once a page writable where the engine says S. */
	static const mc_fail_t ok[] = {MC_SWMR, MC_MISMATCH};

	(void)state;
	expect_caught(DSM_COH_BUG_READ_GRANT_RW, ok, 2);
}

static void inv_no_zap(void **state)
{
	/* A reader beside the next writer, or at once a page left where the
	 * engine says I. */
	static const mc_fail_t ok[] = {MC_SWMR, MC_MISMATCH};

	(void)state;
	expect_caught(DSM_COH_BUG_INV_NO_ZAP, ok, 2);
}

static void no_hold(void **state)
{
	/* Two writers take the line from each other before either has run. */
	static const mc_fail_t ok[] = {MC_LIVELOCK, MC_STARVATION};

	(void)state;
	expect_caught(DSM_COH_BUG_NO_HOLD, ok, 2);
}

static void no_hold_is_a_cycle(void **state)
{
	/* Without the direct check, the exhaustive search still finds the
	 * missing hold: two writers can take the line from each other forever,
	 * a cycle in the state graph. */
	mc_config_t c;
	mc_result_t r;

	(void)state;
	small_config(&c, 0, DSM_COH_DATA_INLINE);
	c.no_grant_check = 1;
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	assert_int_equal(r.fail, MC_OK);
	c.bugs = DSM_COH_BUG_NO_HOLD;
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive: %s (after %llu states)\n", r.what, (unsigned long long)r.states);
	assert_int_equal(r.fail, MC_LIVELOCK);
}

static void trust_upgrade(void **state)
{
	/* An upgrade that crossed the invalidation of its own copy gets no data. */
	static const mc_fail_t ok[] = {MC_PROTOCOL};

	(void)state;
	expect_caught(DSM_COH_BUG_TRUST_UPGRADE, ok, 1);
}

static void no_done_wait(void **state)
{
	/* An invalidation overtakes the grant it follows. */
	static const mc_fail_t ok[] = {MC_PROTOCOL};

	(void)state;
	expect_caught(DSM_COH_BUG_NO_DONE_WAIT, ok, 1);
}

static void zap_before_write_back(void **state)
{
	/* The old order at the home: its own write-back was stored when the WB
	 * to itself was delivered, after the zap of the give-up had run. The
	 * small configuration's home (rank 0) writes, so it gives up its own
	 * modified line, and only there does this bug act. */
	static const mc_fail_t ok[] = {MC_ORDER};

	(void)state;
	expect_caught_what(DSM_COH_BUG_ZAP_BEFORE_WB, ok, 1,
	                   "STORE_HOME reads the mapping while absent");
}

/* Rank 0 homes the line and never touches it: every write-back comes from
 * another rank, by WB with data or by RDMA write. */
static void remote_owners_config(mc_config_t *c, unsigned bugs, dsm_coh_data_mode_t wb)
{
	small_config(c, bugs, DSM_COH_DATA_INLINE);
	c->wb_mode = wb;
	c->nops[0][0] = 0;
}

static void zap_before_write_back_remote(void **state)
{
	static const mc_fail_t ok[] = {MC_ORDER};
	mc_config_t c;
	mc_result_t r;

	(void)state;
	expect_caught(DSM_COH_BUG_ZAP_BEFORE_WB_REMOTE, ok, 1);
	/* Each way out of the mapping, on its own. */
	remote_owners_config(&c, 0, DSM_COH_DATA_INLINE);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	assert_int_equal(r.fail, MC_OK);
	remote_owners_config(&c, DSM_COH_BUG_ZAP_BEFORE_WB_REMOTE, DSM_COH_DATA_INLINE);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive, WB inline: %s\n", r.what);
	assert_int_equal(r.fail, MC_ORDER);
	assert_non_null(strstr(r.what, "SEND reads the mapping while absent"));
	remote_owners_config(&c, 0, DSM_COH_DATA_RDMA);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	assert_int_equal(r.fail, MC_OK);
	remote_owners_config(&c, DSM_COH_BUG_ZAP_BEFORE_WB_REMOTE, DSM_COH_DATA_RDMA);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive, WB by RDMA write: %s\n", r.what);
	assert_int_equal(r.fail, MC_ORDER);
	assert_non_null(strstr(r.what, "RDMA_WRITE reads the mapping while absent"));
}

static void write_back_before_protect(void **state)
{
	/* A store may land after the copy was taken: the checker sees the
	 * mapping read while still writable. */
	static const mc_fail_t ok[] = {MC_ORDER};

	(void)state;
	expect_caught_what(DSM_COH_BUG_WB_BEFORE_WP, ok, 1, "reads the mapping while writable");
}

static void exclusive_stays_clean(void **state)
{
	/* A write to an exclusive clean line lifts the write-protect but the engine keeps
	 * calling the line clean: its give-up would send no data. The page is writable
	 * where the engine says E, or the copy differs from the home segment. */
	static const mc_fail_t ok[] = {MC_MISMATCH, MC_DATA};

	(void)state;
	expect_caught(DSM_COH_BUG_EXCL_STAYS_CLEAN, ok, 2);
}

static void migrate_keeps_copy(void **state)
{
	/* A read of a migratory line asks its owner for FWD_S and grants the reader the line
	 * exclusive: the old owner keeps a read-only copy beside the reader's first write,
	 * or, when nobody writes again, a copy the directory does not list. */
	static const mc_fail_t ok[] = {MC_SWMR, MC_FINAL};

	(void)state;
	expect_caught(DSM_COH_BUG_MIGRATE_KEEPS_COPY, ok, 2);
}

/* Evictions: the small configuration again, node 1 or 2 (the line is homed on node 0)
 * evicting once in a schedule (1.1M states; twice: 4.8M); and random schedules, half of
 * them with up to 3 evictions. */
static void evict_config(mc_config_t *c, unsigned bugs)
{
	small_config(c, bugs, DSM_COH_DATA_INLINE);
	c->evictions = 1;
}

static const mc_random_opts_t evict_random = {.schedules = 100000,
                                              .seed = 42,
                                              .max_nodes = 4,
                                              .max_lines = 2,
                                              .max_threads = 2,
                                              .max_ops = 4,
                                              .any_data_mode = 1,
                                              .migratory = 2,
                                              .evictions = 1};

/* @c's bug is caught as one of @ok, exhaustively (at most @max_states) and by @o's random
 * schedules with the same bug. */
static void expect_caught_both(const mc_config_t *c, uint64_t max_states, mc_random_opts_t o,
                               const mc_fail_t *ok, size_t nok)
{
	mc_result_t r;

	assert_int_equal(mc_exhaustive(c, max_states, &r), 0);
	print_message("exhaustive: %s (after %llu states)\n", r.what, (unsigned long long)r.states);
	assert_true(one_of(r.fail, ok, nok));

	o.bugs = c->bugs;
	assert_int_equal(mc_random(&o, &r), 0);
	print_message("random: %s (schedule %llu)\n", r.what, (unsigned long long)r.schedules);
	assert_true(one_of(r.fail, ok, nok));
}

static void expect_evict_caught(unsigned bugs, const mc_fail_t *ok, size_t nok)
{
	mc_config_t c;

	evict_config(&c, bugs);
	expect_caught_both(&c, 10000000, evict_random, ok, nok);
}

static void evictions_without_bugs(void **state)
{
	/* The configurations the two eviction bugs fail pass with the engine as it is, and
	 * reach every eviction race (so the bugs below are caught where evictions work). */
	mc_config_t c;
	mc_result_t r;
	int k;

	(void)state;
	evict_config(&c, 0);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive: %s, %llu states, %llu eviction transitions\n",
	              r.fail ? r.what : "ok", (unsigned long long)r.states,
	              (unsigned long long)r.evictions);
	assert_int_equal(r.fail, MC_OK);
	for (k = MC_COV_EVICT_NOOP; k <= MC_COV_EVICT_REFAULT; k++)
		assert_true(r.cov[k] > 0);
	assert_int_equal(mc_random(&evict_random, &r), 0);
	print_message("random: %s, %llu schedules, %llu with evictions: %llu evictions\n",
	              r.fail ? r.what : "ok", (unsigned long long)r.schedules,
	              (unsigned long long)r.evict_schedules, (unsigned long long)r.evictions);
	assert_int_equal(r.fail, MC_OK);
	assert_int_equal(r.schedules, evict_random.schedules);
	for (k = MC_COV_EVICT_NOOP; k <= MC_COV_EVICT_REFAULT; k++)
		assert_true(r.cov[k] > 0);
}

static void evict_no_write_back(void **state)
{
	/* An evicted modified copy given up as if clean: the line is uncached (or shared by
	 * the next reader) while the home segment lacks the last write, and the next reader
	 * gets the old bytes. */
	static const mc_fail_t ok[] = {MC_DATA, MC_FINAL};

	(void)state;
	expect_evict_caught(DSM_COH_BUG_EVICT_NO_WB, ok, 2);
}

static void evict_keeps_sharer(void **state)
{
	/* The home keeps an evicted sharer in the set: the next writer's INV reaches a rank
	 * in I, or its upgrade is granted without data though its copy is gone, or the run
	 * ends with a sharer the directory lists and that holds nothing. */
	static const mc_fail_t ok[] = {MC_PROTOCOL, MC_FINAL};

	(void)state;
	expect_evict_caught(DSM_COH_BUG_EVICT_KEEPS_SHARER, ok, 2);
}

/* Freed memory: the home drops its own copy (DSM_COH_EV_DROP), once a schedule, in the small
 * configuration; its EVICT goes to itself and is served among the line's transactions. */
static void drops_without_bugs(void **state)
{
	mc_config_t c;
	mc_result_t r;

	(void)state;
	evict_config(&c, 0);
	c.drops = 1;
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive: %s, %llu states, %llu drops at the home\n",
	              r.fail ? r.what : "ok", (unsigned long long)r.states,
	              (unsigned long long)r.evictions);
	assert_int_equal(r.fail, MC_OK);
	assert_true(r.evictions > 0);
}

static void drop_no_write_back(void **state)
{
	/* The home's drop of its own modified copy forgets the write: the next reader gets
	 * the old bytes from the home segment. Only drops evict here. */
	static const mc_fail_t ok[] = {MC_DATA, MC_FINAL};
	mc_config_t c;
	mc_result_t r;

	(void)state;
	evict_config(&c, DSM_COH_BUG_EVICT_NO_WB);
	c.drops = 1;
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive: %s (after %llu states)\n", r.what, (unsigned long long)r.states);
	assert_true(one_of(r.fail, ok, 2));
}

/* A dead rank: the small configuration again, rank @victim dying at any step (the line is
 * homed on rank 0, so victim 0 is the home, whose line rank 1 adopts, and victim 1 a
 * requester, which owns the line after its write); and random schedules, each with a death
 * (2 to 4 ranks, at a random step). */
static void death_config(mc_config_t *c, unsigned bugs, unsigned victim)
{
	small_config(c, bugs, DSM_COH_DATA_INLINE);
	c->deaths = 1;
	c->victim = victim;
}

static const mc_random_opts_t death_random = {.schedules = 100000,
                                              .seed = 42,
                                              .max_nodes = 4,
                                              .max_lines = 2,
                                              .max_threads = 2,
                                              .max_ops = 4,
                                              .any_data_mode = 1,
                                              .migratory = 2,
                                              .evictions = 1,
                                              .deaths = 2};

static void expect_death_caught(unsigned bugs, unsigned victim, const mc_fail_t *ok, size_t nok)
{
	mc_config_t c;

	death_config(&c, bugs, victim);
	print_message("rank %u dies\n", victim);
	expect_caught_both(&c, 20000000, death_random, ok, nok);
}

static void deaths_without_bugs(void **state)
{
	/* The configurations the two death bugs fail pass with the engine as it is, with
	 * either victim, and together reach every race of a death. */
	uint64_t cov[MC_NCOV] = {0};
	mc_config_t c;
	mc_result_t r;
	unsigned v;
	int k;

	(void)state;
	for (v = 0; v < 3; v++) {
		death_config(&c, 0, v);
		assert_int_equal(mc_exhaustive(&c, 20000000, &r), 0);
		print_message("exhaustive, rank %u dies: %s, %llu states, %llu death transitions, "
		              "%llu SIGBUS\n",
		              v, r.fail ? r.what : "ok", (unsigned long long)r.states,
		              (unsigned long long)r.deaths, (unsigned long long)r.sigbus);
		assert_int_equal(r.fail, MC_OK);
		for (k = 0; k < MC_NCOV; k++)
			cov[k] += r.cov[k];
	}
	for (k = MC_COV_FIRST_DEATH; k < MC_NCOV; k++)
		assert_true(cov[k] > 0);
	assert_int_equal(mc_random(&death_random, &r), 0);
	print_message("random: %s, %llu schedules, %llu with a death, %llu SIGBUS\n",
	              r.fail ? r.what : "ok", (unsigned long long)r.schedules,
	              (unsigned long long)r.death_schedules, (unsigned long long)r.sigbus);
	assert_int_equal(r.fail, MC_OK);
	assert_int_equal(r.schedules, death_random.schedules);
	for (k = MC_COV_FIRST_DEATH; k < MC_NCOV; k++)
		assert_true(r.cov[k] > 0);
}

static void dead_keeps_owner(void **state)
{
	/* A line owned by the dead rank is not lost at its (live) home: the next request's
	 * FWD goes to the dead owner, and the requester waits for a write-back that never
	 * comes; or, with no request after the death, the run ends with the home naming the
	 * dead rank as the owner. */
	static const mc_fail_t ok[] = {MC_DEADLOCK, MC_STARVATION, MC_FINAL};

	(void)state;
	expect_death_caught(DSM_COH_BUG_DEAD_KEEPS_OWNER, 1, ok, 3);
}

static void adopt_no_data(void **state)
{
	/* A sharer's ADOPT leaves its data behind: the heir's home segment lacks the last
	 * write, and it grants those stale bytes. */
	static const mc_fail_t ok[] = {MC_DATA};

	(void)state;
	expect_death_caught(DSM_COH_BUG_ADOPT_NO_DATA, 0, ok, 1);
}

static void done_stands_in_for_fifo(void **state)
{
	/* Without DONE the protocol relies on per-pair FIFO: with FIFO delivery
	 * and inline data it passes, with any order it fails. This tests the
	 * checker's FIFO mode, and is why the engine needs no FIFO (PROTOCOL.md). */
	mc_config_t c;
	mc_result_t r;

	(void)state;
	small_config(&c, DSM_COH_BUG_NO_DONE_WAIT, DSM_COH_DATA_INLINE);
	c.fifo = 1;
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("fifo: %s, %llu states\n", r.fail ? r.what : "ok",
	              (unsigned long long)r.states);
	assert_int_equal(r.fail, MC_OK);
	assert_true(r.states > 1000);
	c.fifo = 0;
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	assert_int_equal(r.fail, MC_PROTOCOL);
	/* With RDMA data not even FIFO saves it: a FWD can arrive while the grant's
	 * data is still being read. */
	small_config(&c, DSM_COH_BUG_NO_DONE_WAIT, DSM_COH_DATA_RDMA);
	c.fifo = 1;
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	assert_int_equal(r.fail, MC_PROTOCOL);
}

/* Two nodes, two threads each, two lines homed on node 0: node 1's threads miss on both
 * lines at once, so the home's grants (with their data) can travel in one batch. */
static void batch_config(mc_config_t *c, int keep_open)
{
	unsigned n, t, i;

	memset(c, 0, sizeof(*c));
	c->nnodes = 2;
	c->nlines = 2;
	c->nthreads = 2;
	c->data_mode = DSM_COH_DATA_INLINE;
	c->wb_mode = DSM_COH_DATA_INLINE;
	c->dist = DSM_COH_DIST_ZERO;
	c->batch = 1;
	c->batch_keep_open = keep_open;
	for (n = 0; n < 2; n++)
		for (t = 0; t < 2; t++) {
			c->nops[n][t] = 2;
			for (i = 0; i < 2; i++) {
				mc_op_t *op = &c->ops[n][t][i];

				op->line = (uint8_t)((t + i) % 2);
				op->word = (uint8_t)(i % MC_WORDS);
				op->write = (uint8_t)(n == 0 || i == 1);
				op->value = 1 + (n << 16 | t << 8 | i);
			}
		}
}

static void batch_left_open(void **state)
{
	/* The installs of a batch kept waiting past its end (to join the next batch's run):
	 * the engine says the line is there while the page is not. */
	mc_random_opts_t o = {.schedules = 200000,
	                      .seed = 42,
	                      .max_nodes = 4,
	                      .max_lines = 4,
	                      .max_threads = 2,
	                      .max_ops = 4,
	                      .batches = 1,
	                      .batch_keep_open = 1};
	mc_config_t c;
	mc_result_t r;

	(void)state;
	batch_config(&c, 0);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("batches: %s, %llu states, %llu batches holding %llu installs back\n",
	              r.fail ? r.what : "ok", (unsigned long long)r.states,
	              (unsigned long long)r.batches, (unsigned long long)r.batched_installs);
	assert_int_equal(r.fail, MC_OK);
	assert_true(r.batched_installs > 0);
	batch_config(&c, 1);
	assert_int_equal(mc_exhaustive(&c, 10000000, &r), 0);
	print_message("exhaustive: %s (after %llu states)\n", r.what, (unsigned long long)r.states);
	assert_int_equal(r.fail, MC_MISMATCH);
	assert_int_equal(mc_random(&o, &r), 0);
	print_message("random: %s (schedule %llu)\n", r.what, (unsigned long long)r.schedules);
	assert_int_equal(r.fail, MC_MISMATCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(grant_before_acks),
	        cmocka_unit_test(no_writeback),
	        cmocka_unit_test(read_grant_rw),
	        cmocka_unit_test(inv_no_zap),
	        cmocka_unit_test(no_hold),
	        cmocka_unit_test(no_hold_is_a_cycle),
	        cmocka_unit_test(trust_upgrade),
	        cmocka_unit_test(exclusive_stays_clean),
	        cmocka_unit_test(migrate_keeps_copy),
	        cmocka_unit_test(no_done_wait),
	        cmocka_unit_test(zap_before_write_back),
	        cmocka_unit_test(zap_before_write_back_remote),
	        cmocka_unit_test(write_back_before_protect),
	        cmocka_unit_test(evictions_without_bugs),
	        cmocka_unit_test(evict_no_write_back),
	        cmocka_unit_test(evict_keeps_sharer),
	        cmocka_unit_test(drops_without_bugs),
	        cmocka_unit_test(drop_no_write_back),
	        cmocka_unit_test(deaths_without_bugs),
	        cmocka_unit_test(dead_keeps_owner),
	        cmocka_unit_test(adopt_no_data),
	        cmocka_unit_test(done_stands_in_for_fifo),
	        cmocka_unit_test(batch_left_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
