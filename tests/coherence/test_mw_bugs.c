/* SPDX-License-Identifier: MIT */
/*
 * The multiple-writer model checker must notice a broken protocol. Each test switches on
 * one of the model's test-only bugs (MW_MC_BUG_*) and asserts that the exhaustive search
 * reports the kind of violation that bug causes, on a program where the same search without
 * the bug reports nothing. A checker that reported nothing, or reported everything, fails
 * here. A few bugs are also shown harmless where the protocol does not need what they
 * break (FIFO channels, the deferral of acquires): those tests say why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mc_mw.h"

#define MAX_STATES 20000000ull

static mw_mc_result_t res; /* 13 KiB: not on the stack */

enum { NO_DEFER = 1, ASYNC = 2 }; /* how a program runs */

static void config(const char *name, unsigned bugs, int how, mw_mc_config_t *c)
{
	const mw_mc_spec_t *sp = mw_mc_spec(name);
	char why[160];

	assert_non_null(sp);
	if (mw_mc_config_from(sp, c, why, sizeof(why)) < 0)
		fail_msg("%s: %s", name, why);
	c->bugs = bugs;
	c->no_defer = (how & NO_DEFER) != 0;
	c->async = (how & ASYNC) != 0;
}

static mw_mc_fail_t run(const char *name, unsigned bugs, int how)
{
	const char *mode = how & ASYNC ? (how & NO_DEFER ? ", async, no deferral" : ", async")
	                               : (how & NO_DEFER ? ", no deferral" : "");
	mw_mc_config_t c;

	config(name, bugs, how, &c);
	assert_int_equal(mw_mc_exhaustive(&c, MAX_STATES, &res), 0);
	if (res.fail)
		print_message("%s%s, bugs %#x: %s (after %llu states, %llu transitions)\n", name,
		              mode, bugs, res.what, (unsigned long long)res.states,
		              (unsigned long long)res.steps);
	else
		print_message("%s%s, bugs %#x: ok, %.4g schedules, %llu states, %llu transitions\n",
		              name, mode, bugs, res.orders, (unsigned long long)res.states,
		              (unsigned long long)res.steps);
	if (res.fail && getenv("MW_MC_TRACE"))
		print_message("%s", res.trace);
	return res.fail;
}

/* The program passes without the bug, every schedule of it (and there are many). */
static void clean(const char *name, int how)
{
	assert_int_equal(run(name, 0, how), MW_MC_OK);
	assert_true(res.orders > 1000);
}

/* With @bugs the search stops at a failure of one of the kinds @ok. */
static void caught(const char *name, unsigned bugs, int how, const mw_mc_fail_t *ok, size_t nok)
{
	mw_mc_fail_t f;
	size_t i;

	clean(name, how);
	f = run(name, bugs, how);
	for (i = 0; i < nok; i++)
		if (f == ok[i])
			return;
	fail_msg("%s with bugs %#x: %s, not the failure expected", name, bugs,
	         f ? res.what : "nothing found");
}

/* The same, with each way of finding the writes (twins, asynchronous write-protect). */
static void caught_both(const char *name, unsigned bugs, int how, const mw_mc_fail_t *ok,
                        size_t nok)
{
	caught(name, bugs, how, ok, nok);
	caught(name, bugs, how | ASYNC, ok, nok);
}

/* Random schedules of the same program find it too (a fixed seed: the same run each time). */
static void caught_walks(const char *name, unsigned bugs, int how)
{
	mw_mc_config_t c;

	config(name, bugs, how, &c);
	assert_int_equal(mw_mc_walks(&c, 20000, 7, &res), 0);
	print_message("%s, bugs %#x, random schedules: %s after %llu schedules\n", name, bugs,
	              res.fail ? res.what : "nothing found", (unsigned long long)res.schedules);
	assert_int_not_equal(res.fail, MW_MC_OK);
	config(name, 0, how, &c);
	assert_int_equal(mw_mc_walks(&c, 20000, 7, &res), 0);
	assert_int_equal(res.fail, MW_MC_OK);
	assert_int_equal(res.schedules, 20000);
}

/* Random programs and schedules find it too (a fixed seed: the same run each time). */
static void caught_random(unsigned bugs)
{
	mw_mc_random_opts_t o = {.schedules = 50000,
	                         .seed = 42,
	                         .per_config = 20,
	                         .max_ranks = MW_MC_MAX_RANKS,
	                         .max_threads = MW_MC_MAX_THREADS,
	                         .bugs = bugs};

	assert_int_equal(mw_mc_random(&o, &res), 0);
	print_message("random, bugs %#x: %s after %llu schedules\n", bugs,
	              res.fail ? res.what : "nothing found", (unsigned long long)res.schedules);
	assert_int_not_equal(res.fail, MW_MC_OK);
	assert_int_not_equal(res.fail, MW_MC_RACE);
	assert_int_not_equal(res.fail, MW_MC_BOUND);
}

static const mw_mc_fail_t wrong_value[] = {MW_MC_STALE_READ, MW_MC_FINAL};
static const mw_mc_fail_t stale[] = {MW_MC_STALE_READ};
static const mw_mc_fail_t final[] = {MW_MC_FINAL};

/* (a) A copy from before the barrier is read after it. */
static void keep_remote(void **state)
{
	(void)state;
	caught_both("phases", MW_MC_BUG_KEEP_REMOTE, 0, wrong_value, 2);
	caught_random(MW_MC_BUG_KEEP_REMOTE);
}

/* (b) The home reads its own copy, which another rank's diff left behind. */
static void keep_stale(void **state)
{
	(void)state;
	caught_both("false-sharing", MW_MC_BUG_KEEP_STALE, 0, wrong_value, 2);
	caught_random(MW_MC_BUG_KEEP_STALE);
}

/* (c) Rank 1 passes the barrier (or gets the mutex) from ranks whose messages do not queue
 * behind rank 0's diff, and reads the home's copy before the diff is merged. With two
 * ranks every barrier or mutex message follows the diff in the same FIFO channel: nothing
 * goes wrong, and the check shows it. */
static void no_ack_wait(void **state)
{
	(void)state;
	caught_both("barrier-3", MW_MC_BUG_NO_ACK_WAIT, 0, stale, 1);
	caught_both("lock-3", MW_MC_BUG_NO_ACK_WAIT, 0, stale, 1);
	caught_walks("lock-3", MW_MC_BUG_NO_ACK_WAIT, 0);
	assert_int_equal(run("false-sharing", MW_MC_BUG_NO_ACK_WAIT, 0), MW_MC_OK);
	assert_int_equal(run("lock-2", MW_MC_BUG_NO_ACK_WAIT, 0), MW_MC_OK);
	assert_int_equal(run("lock-2", MW_MC_BUG_NO_ACK_WAIT, ASYNC), MW_MC_OK);
	caught_random(MW_MC_BUG_NO_ACK_WAIT);
}

/* (d) Without deferral a read-ahead's answer can come after the acquire: installed, it
 * hides the write released before the barrier. As mw.c runs now (an acquire waits for
 * the lines threads wait for, and every GET has one, answered in the same DATA as its
 * read-ahead), no answer is ever older than the last acquire: the epochs are a second line
 * of defence, and this bug does nothing there. With two ranks FIFO alone is enough. */
static void no_epoch(void **state)
{
	int a;

	(void)state;
	caught_both("epoch", MW_MC_BUG_NO_EPOCH, NO_DEFER, stale, 1);
	for (a = 0; a <= ASYNC; a += ASYNC) {
		assert_int_equal(run("epoch", 0, NO_DEFER | a), MW_MC_OK);
		assert_true(res.cov[MW_MC_COV_OLD_RESEND] > 0 && res.cov[MW_MC_COV_OLD_DROP] > 0);
		assert_int_equal(run("epoch", 0, a), MW_MC_OK);
		assert_true(res.cov[MW_MC_COV_OLD_RESEND] + res.cov[MW_MC_COV_OLD_DROP] == 0);
		assert_true(res.cov[MW_MC_COV_DEFERRED] > 0);
		assert_int_equal(run("epoch", MW_MC_BUG_NO_EPOCH, a), MW_MC_OK);
		assert_int_equal(run("epoch-2", MW_MC_BUG_NO_EPOCH, NO_DEFER | a), MW_MC_OK);
	}
}

/* The old answer is dropped though a thread waits for it: nobody asks again, and the
 * thread waits forever (the deadlock check). */
static void drop_waited(void **state)
{
	static const mw_mc_fail_t ok[] = {MW_MC_DEADLOCK};

	(void)state;
	caught_both("epoch", MW_MC_BUG_DROP_WAITED, NO_DEFER, ok, 1);
	caught_random(MW_MC_BUG_DROP_WAITED);
}

/* (e) A diff against the page itself is empty: the writes never reach the home. The
 * program with no reads shows the final check sees it alone. */
static void diff_vs_page(void **state)
{
	(void)state;
	caught_both("false-sharing", MW_MC_BUG_DIFF_VS_PAGE, 0, wrong_value, 2);
	caught_both("final-only", MW_MC_BUG_DIFF_VS_PAGE, 0, final, 1);
	caught_random(MW_MC_BUG_DIFF_VS_PAGE);
}

/* (e) The home's store after the other rank's diff ended its master copy goes into a page
 * that is still writable: no fault, no twin, never merged. Asynchronously tracked, the
 * write-protect stops no store anyway and the line stays marked written, so the next scan
 * sends the store against the twin the diff left: harmless there. */
static void master_no_wp(void **state)
{
	(void)state;
	caught("false-sharing", MW_MC_BUG_MASTER_NO_WP, 0, wrong_value, 2);
	caught("final-only", MW_MC_BUG_MASTER_NO_WP, 0, final, 1);
	assert_int_equal(run("false-sharing", MW_MC_BUG_MASTER_NO_WP, ASYNC), MW_MC_OK);
	caught_random(MW_MC_BUG_MASTER_NO_WP);
}

/* Asynchronous tracking: another thread's store after the acquire's scan, before its
 * take-out, is lost when the take-out does not send it. With twins the store faults on the
 * write-protected line instead, and this bug has nothing to act on. */
static void take_no_diff(void **state)
{
	(void)state;
	caught("acq-race", MW_MC_BUG_TAKE_NO_DIFF, ASYNC, stale, 1);
	caught_walks("acq-race", MW_MC_BUG_TAKE_NO_DIFF, ASYNC);
	assert_int_equal(run("acq-race", 0, ASYNC), MW_MC_OK);
	assert_true(res.cov[MW_MC_COV_TAKE_DIFF] > 0);
	assert_int_equal(run("acq-race", MW_MC_BUG_TAKE_NO_DIFF, 0), MW_MC_OK);
	caught_random(MW_MC_BUG_TAKE_NO_DIFF);
}

/* (f) A whole line merged puts back the other writer's byte as the sender's copy had it. */
static void whole_line(void **state)
{
	(void)state;
	caught_both("false-sharing", MW_MC_BUG_WHOLE_LINE, 0, wrong_value, 2);
	caught_both("final-only", MW_MC_BUG_WHOLE_LINE, 0, final, 1);
	caught_random(MW_MC_BUG_WHOLE_LINE);
}

/* A GET answered from the home segment misses the master copy's writes. */
static void answer_home(void **state)
{
	(void)state;
	caught_both("phases", MW_MC_BUG_ANSWER_HOME, 0, wrong_value, 2);
	caught_random(MW_MC_BUG_ANSWER_HOME);
}

/* The first diff leaves the copy master: the home keeps reading it after the barrier, or,
 * with twins, its next store faults forever (write-protected, and master: the loop only
 * wakes it), which the search sees as a cycle. */
static void no_stale_mark(void **state)
{
	static const mw_mc_fail_t ok[] = {MW_MC_STALE_READ, MW_MC_FINAL, MW_MC_CYCLE};
	static const mw_mc_fail_t cycle[] = {MW_MC_CYCLE};

	(void)state;
	caught_both("false-sharing", MW_MC_BUG_NO_STALE_MARK, 0, ok, 3);
	caught("racy", MW_MC_BUG_NO_STALE_MARK, 0, cycle, 1);
	caught_random(MW_MC_BUG_NO_STALE_MARK);
}

/* A diff merged one byte over: in a racy program only the check that a byte holds a value
 * somebody wrote there can see it. */
static void diff_shift(void **state)
{
	static const mw_mc_fail_t ok[] = {MW_MC_BAD_VALUE};

	(void)state;
	caught_both("racy", MW_MC_BUG_DIFF_SHIFT, 0, ok, 1);
	caught_random(MW_MC_BUG_DIFF_SHIFT);
}

/* The checker's own checks: a racy program said to be race-free is reported as such,
 * the protocol needs FIFO channels (an acquire's release does not wait for its ACKs, so
 * the GET after it must not overtake the diff), and a bad program is refused. */
static void checker_itself(void **state)
{
	mw_mc_config_t c;
	int a;

	(void)state;
	assert_int_equal(run("not-drf", 0, 0), MW_MC_RACE);
	for (a = 0; a <= ASYNC; a += ASYNC) {
		clean("fifo", a);
		config("fifo", 0, a, &c);
		c.any_order = 1;
		assert_int_equal(mw_mc_exhaustive(&c, MAX_STATES, &res), 0);
		print_message("fifo, any order: %s, %llu states\n", res.fail ? res.what : "ok",
		              (unsigned long long)res.states);
		assert_int_equal(res.fail, MW_MC_STALE_READ);
	}
	config("lock-2", 0, 0, &c);
	c.ops[0][0][0].kind = MW_MC_UNLOCK;
	assert_int_equal(mw_mc_exhaustive(&c, MAX_STATES, &res), -1);
	/* Rank 0's two barriers from its two threads: one collective at a time per rank. */
	config("epoch", 0, 0, &c);
	c.ops[0][1][2] = (mw_mc_op_t){.kind = MW_MC_READ, .line = 1};
	c.ops[0][0][c.nops[0][0]++] = (mw_mc_op_t){.kind = MW_MC_BARRIER};
	assert_int_equal(mw_mc_exhaustive(&c, MAX_STATES, &res), -1);
	print_message("refused: %s\n", res.what);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(keep_remote),    cmocka_unit_test(keep_stale),
	        cmocka_unit_test(no_ack_wait),    cmocka_unit_test(no_epoch),
	        cmocka_unit_test(drop_waited),    cmocka_unit_test(diff_vs_page),
	        cmocka_unit_test(master_no_wp),   cmocka_unit_test(take_no_diff),
	        cmocka_unit_test(whole_line),     cmocka_unit_test(answer_home),
	        cmocka_unit_test(no_stale_mark),  cmocka_unit_test(diff_shift),
	        cmocka_unit_test(checker_itself),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
