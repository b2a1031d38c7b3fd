/* SPDX-License-Identifier: MIT */
/*
 * fi_fault.so: faults injected under libdsm's libfabric transport, for LD_PRELOAD.
 *
 * Every libfabric call libdsm makes after fi_fabric() is a static inline wrapper over an
 * ops table (fi_domain, fi_endpoint, fi_cq_open, fi_send, fi_inject, fi_cq_read, ...),
 * so only fi_fabric itself can be interposed. The shim does that, and gives each object
 * made below the fabric it returns (its domains, their endpoints and CQs) a private copy
 * of its ops table whose wrappers call the provider's. Objects a provider opens for itself
 * (ofi_rxm's core tcp fabric, opened inside fi_fabric) are left alone. shm_open is
 * interposed too (the doorbell's flag pages, ofi_bell.c).
 *
 * The environment, read once:
 *   FI_FAULT_RANK=r       only the process whose PMI_RANK is r injects (unset: every one)
 *   FI_FAULT_MODE=post    from the FI_FAULT_AFTER-th send on (fi_send, fi_inject and the
 *                         other message sends, counted from fi_enable, every attempt
 *                         counts), each send returns -FI_EAGAIN FI_FAULT_EAGAIN times in
 *                         all (default 3: libdsm queues the send), then the hard error
 *                         FI_FAULT_ERR: the post from libdsm's queue fails
 *   FI_FAULT_MODE=completion
 *                         the FI_FAULT_AFTER-th send with a completion (fi_send, sendv,
 *                         sendmsg, senddata; not inject) is not handed to the provider:
 *                         the CQ reports it failed (fi_cq_read -FI_EAVAIL, fi_cq_readerr
 *                         an entry with its context, FI_SEND | FI_MSG, err FI_FAULT_ERR).
 *                         fi_trywait says -FI_EAGAIN while it is unread, so that a rank
 *                         about to sleep on the CQ's wait fd reads it first (the fd
 *                         would never wake for it)
 *   FI_FAULT_AFTER=n      the n-th send (default 100; 1 is the first)
 *   FI_FAULT_ERR=e        EIO (default), EOTHER, ECANCELED, ECONNRESET, or a number
 *                         (a positive FI_E* code)
 *   FI_FAULT_SHM_OPEN_PEER=1
 *                         shm_open of another rank's flag page ("/libdsm-<job>-<rank>",
 *                         opened without O_CREAT) fails with EACCES
 *   FI_FAULT_SHM_LOG=path every name shm_open creates (O_CREAT) is appended to
 *                         "path.<PMI_RANK>", one a line (tests check that none is left in
 *                         /dev/shm); every rank logs
 * Each injection prints one line "fi_fault: rank R: ..." on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

enum fault_mode { MODE_NONE, MODE_POST, MODE_COMPLETION };

static struct {
	bool me; /* this rank injects */
	int rank;
	enum fault_mode mode;
	long after;
	long eagain;
	int err;
	bool shm_open_peer;
	const char *shm_log;
} cfg;

static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;

static int parse_err(const char *s)
{
	static const struct {
		const char *name;
		int err;
	} names[] = {{"EIO", FI_EIO},
	             {"EOTHER", FI_EOTHER},
	             {"ECANCELED", FI_ECANCELED},
	             {"ECONNRESET", FI_ECONNRESET}};

	if (s == NULL)
		return FI_EIO;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].err;
	return atoi(s) > 0 ? atoi(s) : FI_EIO;
}

static void cfg_read(void)
{
	const char *r = getenv("PMI_RANK"), *want = getenv("FI_FAULT_RANK");
	const char *mode = getenv("FI_FAULT_MODE"), *v;

	cfg.rank = r ? atoi(r) : -1;
	cfg.me = want == NULL || (r && atoi(want) == cfg.rank);
	if (mode && strcmp(mode, "post") == 0)
		cfg.mode = MODE_POST;
	else if (mode && strcmp(mode, "completion") == 0)
		cfg.mode = MODE_COMPLETION;
	v = getenv("FI_FAULT_AFTER");
	cfg.after = v && atol(v) > 0 ? atol(v) : 100;
	v = getenv("FI_FAULT_EAGAIN");
	cfg.eagain = v && atol(v) >= 0 ? atol(v) : 3;
	cfg.err = parse_err(getenv("FI_FAULT_ERR"));
	v = getenv("FI_FAULT_SHM_OPEN_PEER");
	cfg.shm_open_peer = v && atoi(v) != 0;
	cfg.shm_log = getenv("FI_FAULT_SHM_LOG");
}

static void cfg_get(void)
{
	pthread_once(&cfg_once, cfg_read);
}

static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "fi_fault: rank %d: ", cfg.rank);

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

/* ---- the objects we wrap: prepended, never freed (a handful per process) ------------------ */

struct rec {
	struct rec *next;
	void *fid; /* the provider's object */
	union {
		struct {
			struct fi_ops_fabric *real, ops;
		} fab;
		struct {
			struct fi_ops_domain *real, ops;
		} dom;
		struct {
			struct fi_ops *real_fid, fid_ops;
			struct fi_ops_msg *real_msg, msg;
		} ep;
		struct {
			struct fi_ops_cq *real, ops;
		} cq;
	};
};

static _Atomic(struct rec *) recs;
static pthread_mutex_t recs_lock = PTHREAD_MUTEX_INITIALIZER;

static struct rec *rec_find(const void *fid)
{
	for (struct rec *r = atomic_load(&recs); r; r = r->next)
		if (r->fid == fid)
			return r;
	return NULL;
}

/* The record of @fid (a new object at the address of a closed one reuses its record). */
static struct rec *rec_get(void *fid)
{
	struct rec *r;

	pthread_mutex_lock(&recs_lock);
	r = rec_find(fid);
	if (r == NULL && (r = calloc(1, sizeof(*r))) != NULL) {
		r->fid = fid;
		r->next = atomic_load(&recs);
		atomic_store(&recs, r);
	}
	pthread_mutex_unlock(&recs_lock);
	return r;
}

/* Copies at most our header's size of a provider's table (an older one may be shorter). */
static void ops_copy(void *dst, const void *src, size_t ours)
{
	size_t theirs = *(const size_t *)src;

	memcpy(dst, src, theirs < ours ? theirs : ours);
}

/* ---- the faults --------------------------------------------------------------------------- */

static atomic_long sends;    /* sends counted since fi_enable */
static atomic_long eagains;  /* post mode: -FI_EAGAIN returned so far */
static atomic_bool said_eio; /* post mode: the first hard error was reported */

/* completion mode: the context of the send reported failed, until fi_cq_readerr takes it */
static struct {
	pthread_mutex_t lock;
	bool pending;
	bool done;
	void *ctx;
	size_t len;
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* post mode: 0 to let the send go, else what it returns. */
static ssize_t post_fault(void)
{
	if (!cfg.me || cfg.mode != MODE_POST || atomic_fetch_add(&sends, 1) + 1 < cfg.after)
		return 0;
	if (atomic_fetch_add(&eagains, 1) < cfg.eagain) {
		say("send refused with -FI_EAGAIN");
		return -FI_EAGAIN;
	}
	if (!atomic_exchange(&said_eio, true))
		say("send refused: %s (-%d), and every send from now on", fi_strerror(cfg.err),
		    cfg.err);
	return -cfg.err;
}

/* completion mode: true if this send is the one that is lost. */
static bool completion_fault(void *ctx, size_t len)
{
	bool lose = false;

	if (!cfg.me || cfg.mode != MODE_COMPLETION || atomic_fetch_add(&sends, 1) + 1 != cfg.after)
		return false;
	pthread_mutex_lock(&fake.lock);
	if (!fake.done) {
		fake.pending = fake.done = lose = true;
		fake.ctx = ctx;
		fake.len = len;
	}
	pthread_mutex_unlock(&fake.lock);
	if (lose)
		say("send #%ld (%zu bytes) not posted; its completion will report %s", cfg.after,
		    len, fi_strerror(cfg.err));
	return lose;
}

static bool fake_pending(void)
{
	return cfg.mode == MODE_COMPLETION && __atomic_load_n(&fake.pending, __ATOMIC_RELAXED);
}

/* ---- endpoints: message sends ------------------------------------------------------------- */

static struct fi_ops_msg *real_msg(struct fid_ep *ep)
{
	return rec_find(ep)->ep.real_msg;
}

static ssize_t ff_send(struct fid_ep *ep, const void *buf, size_t len, void *desc, fi_addr_t dest,
                       void *ctx)
{
	ssize_t ret = post_fault();

	if (ret)
		return ret;
	if (completion_fault(ctx, len))
		return 0;
	return real_msg(ep)->send(ep, buf, len, desc, dest, ctx);
}

static ssize_t ff_sendv(struct fid_ep *ep, const struct iovec *iov, void **desc, size_t count,
                        fi_addr_t dest, void *ctx)
{
	ssize_t ret = post_fault();
	size_t len = 0;

	if (ret)
		return ret;
	for (size_t i = 0; i < count; i++)
		len += iov[i].iov_len;
	if (completion_fault(ctx, len))
		return 0;
	return real_msg(ep)->sendv(ep, iov, desc, count, dest, ctx);
}

static ssize_t ff_sendmsg(struct fid_ep *ep, const struct fi_msg *msg, uint64_t flags)
{
	ssize_t ret = post_fault();
	size_t len = 0;

	if (ret)
		return ret;
	for (size_t i = 0; i < msg->iov_count; i++)
		len += msg->msg_iov[i].iov_len;
	if (!(flags & FI_INJECT) && completion_fault(msg->context, len))
		return 0;
	return real_msg(ep)->sendmsg(ep, msg, flags);
}

static ssize_t ff_inject(struct fid_ep *ep, const void *buf, size_t len, fi_addr_t dest)
{
	ssize_t ret = post_fault();

	return ret ? ret : real_msg(ep)->inject(ep, buf, len, dest);
}

static ssize_t ff_senddata(struct fid_ep *ep, const void *buf, size_t len, void *desc,
                           uint64_t data, fi_addr_t dest, void *ctx)
{
	ssize_t ret = post_fault();

	if (ret)
		return ret;
	if (completion_fault(ctx, len))
		return 0;
	return real_msg(ep)->senddata(ep, buf, len, desc, data, dest, ctx);
}

static ssize_t ff_injectdata(struct fid_ep *ep, const void *buf, size_t len, uint64_t data,
                             fi_addr_t dest)
{
	ssize_t ret = post_fault();

	return ret ? ret : real_msg(ep)->injectdata(ep, buf, len, data, dest);
}

/* The provider's msg table as it is now (a provider may choose it at fi_enable): ours over it. */
static void ep_wrap_msg(struct fid_ep *ep, struct rec *r)
{
	if (ep->msg == NULL || ep->msg == &r->ep.msg)
		return;
	r->ep.real_msg = ep->msg;
	ops_copy(&r->ep.msg, ep->msg, sizeof(r->ep.msg));
	if (r->ep.msg.send)
		r->ep.msg.send = ff_send;
	if (r->ep.msg.sendv)
		r->ep.msg.sendv = ff_sendv;
	if (r->ep.msg.sendmsg)
		r->ep.msg.sendmsg = ff_sendmsg;
	if (r->ep.msg.inject)
		r->ep.msg.inject = ff_inject;
	if (r->ep.msg.senddata)
		r->ep.msg.senddata = ff_senddata;
	if (r->ep.msg.injectdata)
		r->ep.msg.injectdata = ff_injectdata;
	ep->msg = &r->ep.msg;
}

static int ff_ep_control(struct fid *fid, int command, void *arg)
{
	struct rec *r = rec_find(fid);
	int ret = r->ep.real_fid->control(fid, command, arg);

	if (ret == 0 && command == FI_ENABLE) {
		ep_wrap_msg((struct fid_ep *)fid, r);
		atomic_store(&sends, 0);
	}
	return ret;
}

/* ---- completion queues -------------------------------------------------------------------- */

static struct fi_ops_cq *real_cq(struct fid_cq *cq)
{
	return rec_find(cq)->cq.real;
}

static ssize_t ff_cq_read(struct fid_cq *cq, void *buf, size_t count)
{
	if (fake_pending())
		return -FI_EAVAIL;
	return real_cq(cq)->read(cq, buf, count);
}

static ssize_t ff_cq_readfrom(struct fid_cq *cq, void *buf, size_t count, fi_addr_t *src)
{
	if (fake_pending())
		return -FI_EAVAIL;
	return real_cq(cq)->readfrom(cq, buf, count, src);
}

static ssize_t ff_cq_readerr(struct fid_cq *cq, struct fi_cq_err_entry *e, uint64_t flags)
{
	bool mine = false;

	pthread_mutex_lock(&fake.lock);
	if (fake.pending) {
		void *err_data = e->err_data; /* the caller's buffer (API 1.5 on): left empty */

		memset(e, 0, sizeof(*e));
		e->op_context = fake.ctx;
		e->flags = FI_SEND | FI_MSG;
		e->len = fake.len;
		e->err = cfg.err;
		e->prov_errno = -cfg.err;
		e->err_data = err_data;
		e->err_data_size = 0;
		fake.pending = false;
		mine = true;
	}
	pthread_mutex_unlock(&fake.lock);
	if (mine) {
		say("the lost send's completion reported (%s)", fi_strerror(cfg.err));
		return 1;
	}
	return real_cq(cq)->readerr(cq, e, flags);
}

/* ---- domains and the fabric --------------------------------------------------------------- */

static int ff_endpoint(struct fid_domain *dom, struct fi_info *info, struct fid_ep **ep_p,
                       void *ctx)
{
	struct rec *d = rec_find(dom), *r;
	int ret = d->dom.real->endpoint(dom, info, ep_p, ctx);

	if (ret || (r = rec_get(*ep_p)) == NULL)
		return ret;
	r->ep.real_fid = (*ep_p)->fid.ops;
	ops_copy(&r->ep.fid_ops, r->ep.real_fid, sizeof(r->ep.fid_ops));
	r->ep.fid_ops.control = ff_ep_control;
	(*ep_p)->fid.ops = &r->ep.fid_ops;
	ep_wrap_msg(*ep_p, r);
	return 0;
}

static int ff_cq_open(struct fid_domain *dom, struct fi_cq_attr *attr, struct fid_cq **cq_p,
                      void *ctx)
{
	struct rec *d = rec_find(dom), *r;
	int ret = d->dom.real->cq_open(dom, attr, cq_p, ctx);

	if (ret || (r = rec_get(*cq_p)) == NULL)
		return ret;
	r->cq.real = (*cq_p)->ops;
	ops_copy(&r->cq.ops, r->cq.real, sizeof(r->cq.ops));
	r->cq.ops.read = ff_cq_read;
	if (r->cq.ops.readfrom)
		r->cq.ops.readfrom = ff_cq_readfrom;
	r->cq.ops.readerr = ff_cq_readerr;
	(*cq_p)->ops = &r->cq.ops;
	return 0;
}

static int ff_domain(struct fid_fabric *fab, struct fi_info *info, struct fid_domain **dom_p,
                     void *ctx)
{
	struct rec *f = rec_find(fab), *r;
	int ret = f->fab.real->domain(fab, info, dom_p, ctx);

	if (ret || (r = rec_get(*dom_p)) == NULL)
		return ret;
	r->dom.real = (*dom_p)->ops;
	ops_copy(&r->dom.ops, r->dom.real, sizeof(r->dom.ops));
	r->dom.ops.endpoint = ff_endpoint;
	r->dom.ops.cq_open = ff_cq_open;
	(*dom_p)->ops = &r->dom.ops;
	return 0;
}

/* A lost send's completion is unread: the CQ is not empty, whatever its wait fd says. */
static int ff_trywait(struct fid_fabric *fab, struct fid **fids, int count)
{
	if (fake_pending())
		return -FI_EAGAIN;
	return rec_find(fab)->fab.real->trywait(fab, fids, count);
}

static __thread int in_fabric; /* a provider opening its core provider's fabric */

int fi_fabric(struct fi_fabric_attr *attr, struct fid_fabric **fab_p, void *ctx)
{
	static int (*real)(struct fi_fabric_attr *, struct fid_fabric **, void *);
	struct rec *r;
	int ret;

	cfg_get();
	if (real == NULL)
		real = (int (*)(struct fi_fabric_attr *, struct fid_fabric **, void *))dlsym(
		        RTLD_NEXT, "fi_fabric");
	if (real == NULL)
		return -FI_ENOSYS;
	in_fabric++;
	ret = real(attr, fab_p, ctx);
	in_fabric--;
	if (ret || in_fabric || (r = rec_get(*fab_p)) == NULL)
		return ret;
	r->fab.real = (*fab_p)->ops;
	ops_copy(&r->fab.ops, r->fab.real, sizeof(r->fab.ops));
	r->fab.ops.domain = ff_domain;
	if (r->fab.ops.trywait)
		r->fab.ops.trywait = ff_trywait;
	(*fab_p)->ops = &r->fab.ops;
	return 0;
}

/* ---- shm_open ----------------------------------------------------------------------------- */

static void shm_log(const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s.%d", cfg.shm_log, cfg.rank);
	f = fopen(path, "a");
	if (f == NULL)
		return;
	fprintf(f, "%s\n", name[0] == '/' ? name + 1 : name);
	fclose(f);
}

int shm_open(const char *name, int oflag, mode_t mode)
{
	static int (*real)(const char *, int, mode_t);
	int fd;

	cfg_get();
	if (real == NULL)
		real = (int (*)(const char *, int, mode_t))dlsym(RTLD_NEXT, "shm_open");
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (cfg.me && cfg.shm_open_peer && !(oflag & O_CREAT) &&
	    strncmp(name, "/libdsm-", 8) == 0) {
		say("shm_open(%s) refused with EACCES", name);
		errno = EACCES;
		return -1;
	}
	fd = real(name, oflag, mode);
	if (fd >= 0 && (oflag & O_CREAT) && cfg.shm_log)
		shm_log(name);
	return fd;
}
