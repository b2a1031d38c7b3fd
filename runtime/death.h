/* SPDX-License-Identifier: MIT */
/*
 * A dead rank that the survivors outlive (DSM_ON_DEATH=continue; README, "When a rank
 * dies"). With the default (exit) a death ends this rank as before.
 *
 * The dead rank's lines are homed at the next rank after it from then on (the next live
 * one: a chain, if that one is dead too). Every survivor tells every other that the rank
 * is dead (DEAD: a notice that comes before anything else it sends about the death), hands
 * the engine the death (each line and directory entry forgets the rank; copies of its lines
 * go to their new home, ADOPT), then tells the new home it is through (ADOPTED). The new
 * home holds back every request for those lines until each survivor is through; a line
 * nobody had a copy of is lost, and its requesters poison it (coherence/PROTOCOL.md,
 * "A dead rank"). The collectives go on among the survivors (coll.c), mutexes held by the
 * dead rank pass to their next waiter with an error (mutex.c), requests waiting on the dead
 * rank fail (msg.c).
 */
#ifndef DSM_RT_DEATH_H
#define DSM_RT_DEATH_H

#include <stdbool.h>
#include <stdint.h>

#include "coherence/coherence.h"

struct dsm_rt;
struct dsm_rt_region;

int dsm_rt_death_init(struct dsm_rt *rt);
void dsm_rt_death_fini(struct dsm_rt *rt);

/* The loop learned that @peer died (the transport, or a survivor's DEAD). */
void dsm_rt_death(struct dsm_rt *rt, int peer);
/* Where rank @home's lines are homed now: @home, or the live rank that took them. */
int dsm_rt_live_home(const struct dsm_rt *rt, int home);
/* The dead rank that first homed @line, or -1 (a live home, or not allocated). */
int dsm_rt_death_of_line(struct dsm_rt *rt, uint64_t line);
/*
 * Before the engine takes @ev (a message from @src with its line's @data, or src -1: a fault
 * of this rank) for a line that a dead rank homed: true when it is held back (its new home
 * is this rank and the survivors' copies have not all come); false to go on, after telling
 * the engine that a line nobody adopted is lost.
 */
bool dsm_rt_death_hold(struct dsm_rt *rt, int src, const dsm_coh_event_t *ev, const void *data);
/*
 * The dead rank that was serving @line when it died, or -1: its first home, or the rank
 * that took that one's lines, whichever was the first dead one alive at the line's
 * allocation. Multiple-writer lines die with it (mw.c: the merged line was its home copy).
 */
int dsm_rt_death_lost_with(struct dsm_rt *rt, uint64_t line);
/* A lost line's POISON action in region @rg (after its count in lost_lines): poison it,
 * say so once. */
void dsm_rt_death_poison(struct dsm_rt *rt, struct dsm_rt_region *rg, uint64_t line, unsigned dead);

#endif
