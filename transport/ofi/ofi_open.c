/* SPDX-License-Identifier: MIT */
/*
 * Opening and closing the libfabric transport: the two-phase start (who is
 * where and which provider, then endpoint names and the address vector), the
 * pools of send and receive buffers, the doorbell and liveness set up, and
 * the ops table. ofi.h lists the other files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/settings.h"
#include "common/time.h"
#include "transport/ofi/ofi.h"

/* shm transports open in this process. */
static atomic_int shm_open_count;

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

/* Same host: same hostname and same boot (containers may share a name). */
static uint64_t host_id(void)
{
	char buf[320] = {0};
	uint64_t h = 0xcbf29ce484222325ull;
	int fd;

	gethostname(buf, 255);
	h = fnv(h, buf, strlen(buf));
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0)
			h = fnv(h, buf, (size_t)n);
		close(fd);
	}
	return h;
}

/*
 * shm names its region in /dev/shm after the process ("<pid>:<uid>:<n>"). While this
 * process has no shm transport open, a region named after our pid can only be the leftover
 * of a dead process that had our pid before us (a killed rank leaves its region, and pids
 * come round again): remove it, so that ours is not made over it.
 */
static void shm_unlink_stale(void)
{
	char pre[24];
	int n = snprintf(pre, sizeof(pre), "%d:", (int)getpid());
	DIR *d;

	if (atomic_load(&shm_open_count) != 0 || (d = opendir("/dev/shm")) == NULL)
		return;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strncmp(e->d_name, pre, (size_t)n) == 0 && shm_unlink(e->d_name) == 0)
			DSM_LOG(DSM_LOG_WARN,
			        "removed /dev/shm/%s, left by a dead process that had "
			        "this pid",
			        e->d_name);
	closedir(d);
}

static int open_fabric(struct ofi_tp *t)
{
	struct fi_cq_attr cqa = {.size = 4096, .format = FI_CQ_FORMAT_MSG, .wait_obj = FI_WAIT_FD};
	struct fi_av_attr ava = {.type = FI_AV_TABLE};
	bool no_wait_fd;
	int ret;

	ret = fi_fabric(t->info->fabric_attr, &t->fabric, NULL);
	if (ret == 0)
		ret = fi_domain(t->fabric, t->info, &t->domain, NULL);
	if (ret == 0)
		ret = fi_av_open(t->domain, &ava, &t->av, NULL);
	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "opening %s: %s", t->prov, fi_strerror(-ret));
		return ofi_fi_err(ret);
	}
	/* DSM_TP_NO_WAIT_FD: forces the doorbell path on any provider (tests). */
	ret = dsm_setting_bool(DSM_SETTING_TP_NO_WAIT_FD, &no_wait_fd);
	if (ret < 0)
		return ret;
	if (no_wait_fd)
		ret = -FI_ENOSYS;
	else
		ret = fi_cq_open(t->domain, &cqa, &t->cq, NULL);
	if (ret == 0 && fi_control(&t->cq->fid, FI_GETWAIT, &t->cq_fd) != 0) {
		fi_close(&t->cq->fid);
		ret = -FI_ENOSYS;
	}
	if (ret) {
		/* shm: no wait fd (TRAPS.md); the doorbell stands in. */
		cqa.wait_obj = FI_WAIT_NONE;
		t->cq_fd = -1;
		ret = fi_cq_open(t->domain, &cqa, &t->cq, NULL);
	}
	if (ret == 0 && strcmp(t->prov, "shm") == 0) {
		shm_unlink_stale();
		atomic_fetch_add(&shm_open_count, 1);
		t->shm_counted = true;
	}
	if (ret == 0)
		ret = fi_endpoint(t->domain, t->info, &t->ep, NULL);
	if (ret == 0)
		ret = fi_ep_bind(t->ep, &t->cq->fid, FI_TRANSMIT | FI_RECV);
	if (ret == 0)
		ret = fi_ep_bind(t->ep, &t->av->fid, 0);
	if (ret == 0)
		ret = fi_enable(t->ep);
	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "opening an endpoint on %s: %s", t->prov, fi_strerror(-ret));
		return ofi_fi_err(ret);
	}
	return 0;
}

static int open_pools(struct ofi_tp *t)
{
	size_t rx_bytes = (size_t)OFI_NRX * t->bufsz, tx_bytes;
	uint64_t ntx;
	int ret;

	ret = dsm_setting_u64(DSM_SETTING_TP_SEND_BUFS, &ntx, NULL);
	if (ret < 0)
		return ret;
	t->ntx = (int)ntx;
	tx_bytes = (size_t)t->ntx * t->bufsz;

	t->rx_mem = aligned_alloc(4096, (rx_bytes + 4095) & ~(size_t)4095);
	t->tx_mem = aligned_alloc(4096, (tx_bytes + 4095) & ~(size_t)4095);
	t->rx_ops = calloc(OFI_NRX, sizeof(*t->rx_ops));
	t->tx_ops = calloc((size_t)t->ntx, sizeof(*t->tx_ops));
	if (!t->rx_mem || !t->tx_mem || !t->rx_ops || !t->tx_ops) {
		DSM_LOG(DSM_LOG_ERROR,
		        "no memory for %d receive and %d send buffers of %zu bytes "
		        "(%zu MiB): each holds the largest message, which carries a line; lower "
		        "DSM_LINE_SIZE or DSM_TP_SEND_BUFS",
		        OFI_NRX, t->ntx, t->bufsz, (rx_bytes + tx_bytes) >> 20);
		return -ENOMEM;
	}
	if (t->mr_local) {
		ret = ofi_reg(t, t->rx_mem, rx_bytes, OFI_POOL_KEY_RX, &t->rx_mr);
		if (ret == 0)
			ret = ofi_reg(t, t->tx_mem, tx_bytes, OFI_POOL_KEY_TX, &t->tx_mr);
		if (ret)
			return ret;
	}
	for (int i = 0; i < t->ntx; i++) {
		struct ofi_op *op = &t->tx_ops[i];
		op->kind = OP_TX;
		op->buf = t->tx_mem + (size_t)i * t->bufsz;
		op->desc = t->tx_mr ? fi_mr_desc(t->tx_mr) : NULL;
		op->next = t->tx_free;
		t->tx_free = op;
	}
	for (int i = 0; i < OFI_NRX; i++) {
		struct ofi_op *op = &t->rx_ops[i];
		op->kind = OP_RX;
		op->buf = t->rx_mem + (size_t)i * t->bufsz;
		op->desc = t->rx_mr ? fi_mr_desc(t->rx_mr) : NULL;
		ofi_post_recv(t, op);
	}
	return 0;
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event e = {.events = EPOLLIN};

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "epoll_ctl");
		return -errno;
	}
	return 0;
}

/*
 * DSM_MR_PROV_KEY=1: behave as on verbs or efa, where the provider chooses
 * keys and (shm only, see below) needs local descriptors, so that those
 * paths run here. shm takes
 * FI_MR_PROV_KEY in the domain attributes and chooses keys itself;
 * tcp;ofi_rxm (1.17) accepts the flag but uses the requested key, so we
 * request keys from a counter that no peer can compute.
 */
static int force_prov_key(struct ofi_tp *t)
{
	bool on;
	int ret = dsm_setting_bool(DSM_SETTING_MR_PROV_KEY, &on);

	if (ret < 0 || !on)
		return ret;
	t->info->domain_attr->mr_mode |= FI_MR_PROV_KEY;
	/* rxm 1.17 with a forced FI_MR_LOCAL fails its receives (measured:
	 * thousands of messages dropped), so local descriptors are forced on shm. */
	if (strcmp(t->prov, "shm") == 0)
		t->info->domain_attr->mr_mode |= FI_MR_LOCAL;
	t->own_keys = true;
	/* Every key of ours now comes from this counter (the pools' are the provider's). */
	t->next_key = 1ull << 48;
	return 0;
}

/*
 * A peer that dies leaves sockets (tcp, the doorbell) whose next write raises
 * SIGPIPE, and its default action would kill this rank too: a dead peer must
 * be an error, not a second death. Only a default disposition is changed.
 */
static void ignore_sigpipe(void)
{
	struct sigaction old, ign = {.sa_handler = SIG_IGN};

	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
	    !(old.sa_flags & SA_SIGINFO)) {
		sigemptyset(&ign.sa_mask);
		sigaction(SIGPIPE, &ign, NULL);
		DSM_LOG(DSM_LOG_INFO, "SIGPIPE ignored (it was the default)");
	}
}

static int ofi_close(dsm_tp_t *tp);

/*
 * The job's names and secret, as this rank would draw them (rank 0's are taken): a public
 * id for what others on the host may see (doorbell sockets, flag pages), and the key that
 * every message and RMA key carries: random, mixed with the launcher's job and step id so
 * that two jobs never share one even if the random source repeated.
 */
static int draw_job(uint64_t *jobid_p, uint64_t *key_p)
{
	static const char *const ids[] = {"SLURM_JOB_ID", "SLURM_STEP_ID", "PMIX_NAMESPACE",
	                                  "PMI_KVSNAME"};
	uint64_t r[2], launcher = 0;
	size_t got = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom((char *)r + got, sizeof(r) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			DSM_LOG_ERRNO(DSM_LOG_ERROR, "getrandom for the job key");
			return -errno;
		}
		got += (size_t)n;
	}
	for (unsigned i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		const char *v = getenv(ids[i]);

		if (v)
			launcher = dsm_hash_bytes((const uint8_t *)v, strlen(v), launcher ^ i);
	}
	*jobid_p = r[0];
	*key_p = r[1] ^ dsm_hash64(launcher);
	return 0;
}

static int ofi_ep_name(dsm_tp_t *tp, void *buf, size_t *len)
{
	int ret = fi_getname(&ot(tp)->ep->fid, buf, len);

	return ret == -FI_ETOOSMALL ? -ENOSPC : ofi_fi_err(ret);
}

static void on_hello(dsm_tp_t *tp, int peer, const struct dsm_tp_ctrl *m)
{
	(void)peer;
	(void)m;
	ot(tp)->hellos++;
}

/*
 * shm names each endpoint's region in /dev/shm, and a rank that is killed (by hydra's
 * SIGKILL of the survivors too) leaves it there. A peer maps a rank's region when it first
 * hears from it, so: every rank says hello to every other and waits for all of theirs (and
 * for its own to be out). After the barrier that ends ofi_open every region is mapped by
 * every peer, and each rank removes its own name (shm_forget): nothing is left in /dev/shm
 * however the job ends.
 */
static int shm_hello(struct ofi_tp *t)
{
	const struct dsm_tp_boot *b = t->tp.boot;
	struct dsm_tp_ctrl hello = {.op = DSM_TP_CTRL_HELLO};
	uint64_t deadline = dsm_now_coarse_ns() + 60 * 1000000000ull;
	int ret = 0;

	dsm_tp_ctrl_on(&t->tp, DSM_TP_CTRL_HELLO, on_hello);
	for (int i = 0; ret == 0 && i < b->size; i++)
		if (i != b->rank)
			ret = dsm_tp_ctrl_send(&t->tp, i, &hello);
	/* shm may refuse a first send (EAGAIN) while it maps the peer; the queued copy goes
	 * only while this rank progresses. */
	while (ret == 0 && (t->hellos < b->size - 1 || t->queued || t->inflight)) {
		ofi_drain(t);
		ofi_progress(t);
		if (dsm_now_coarse_ns() > deadline) {
			DSM_LOG(DSM_LOG_ERROR, "shm: %d of %d ranks said hello within 60 s",
			        t->hellos, b->size - 1);
			ret = -ETIMEDOUT;
		}
	}
	return ret;
}

static void shm_forget(struct ofi_tp *t)
{
	const char *name = t->peers[t->tp.rank].shm_name;

	if (name[0] == '\0')
		return;
	if (shm_unlink(name) != 0)
		DSM_LOG_ERRNO(DSM_LOG_WARN, "unlinking /dev/shm/%s", name);
	else
		DSM_LOG(DSM_LOG_DEBUG, "unlinked /dev/shm/%s: every peer has mapped it", name);
}

/* The stream with @peer is broken (core.c said why): it is handled as dead, here and, by
 * the notice, everywhere. */
static void ofi_broken(dsm_tp_t *tp, int peer, const char *why)
{
	(void)why;
	ofi_peer_died(ot(tp), peer, true);
}

/*
 * The steps after the exchange of names end in an agreement instead of a barrier: every
 * rank passes its step's result (@mine) into @all, so that every rank makes the same
 * collective calls whatever failed, and a rank whose step failed is named by the others
 * (a rank that left for its cleanup while the others waited for it in a barrier hung
 * them, or the launcher killed them before they said why). Returns @mine, or else the
 * first failed rank's error.
 */
static int open_agree(struct ofi_tp *t, int32_t *all, int mine, const char *step)
{
	const struct dsm_tp_boot *b = t->tp.boot;
	int32_t m = mine;
	int ret = b->allgather(b->ctx, &m, all, sizeof(m));

	if (ret) {
		DSM_LOG(DSM_LOG_ERROR, "opening %s: the agreement after %s failed: %s", t->prov,
		        step, dsm_err_str(ret));
		return mine ? mine : ret;
	}
	for (int r = 0; r < b->size; r++) {
		if (all[r] >= 0)
			continue;
		if (mine == 0)
			DSM_LOG(DSM_LOG_ERROR, "opening %s: %s failed on rank %d: %s", t->prov,
			        step, r, dsm_err_str(all[r]));
		if (ret == 0)
			ret = all[r];
	}
	return mine ? mine : ret;
}

static int ofi_open(const struct dsm_tp_attr *attr, dsm_tp_t **tp_p)
{
	const struct dsm_tp_boot *b = attr->boot;
	struct ofi_card *cards = NULL, mine;
	int32_t *status = NULL;
	struct ofi_tp *t;
	const char *want =
	        attr->provider ? attr->provider : dsm_setting_string(DSM_SETTING_PROVIDER);
	uint64_t hb_ms, dead_ms;
	bool no_pidfd;
	bool one_host = true;
	uint64_t jobid;
	size_t namelen = OFI_NAME_MAX;
	int ret;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->tp.ops = &dsm_tp_ofi_ops;
	t->tp.rank = b->rank;
	t->tp.size = b->size;
	t->tp.boot = b;
	t->tp.msg_max = attr->msg_max ? attr->msg_max : DSM_TP_MSG_MAX_DEFAULT;
	t->tp.prov = t->prov;
	t->bufsz = sizeof(struct dsm_tp_wire_hdr) + t->tp.msg_max;
	t->cq_fd = t->bell_fd = t->epfd = t->hb_fd = -1;
	t->tp.send_raw = ofi_send_raw;
	t->tp.ep_name = ofi_ep_name;
	t->peers = calloc((size_t)b->size, sizeof(*t->peers));
	t->busyv = calloc((size_t)b->size, sizeof(*t->busyv));
	cards = calloc((size_t)b->size, sizeof(*cards));
	status = calloc((size_t)b->size, sizeof(*status));
	if (t->peers == NULL || t->busyv == NULL || cards == NULL || status == NULL) {
		free(t->peers);
		free(t->busyv);
		free(cards);
		free(status);
		free(t);
		return -ENOMEM;
	}
	for (int i = 0; i < b->size; i++) {
		t->peers[i].pidfd = -1;
		t->peers[i].q_tail = &t->peers[i].q_head;
	}
	ret = dsm_tp_core_init(&t->core, &t->tp, attr->max_msg_type, ofi_release);
	if (ret) {
		free(t->peers);
		free(t->busyv);
		free(cards);
		free(status);
		free(t);
		return ret;
	}

	/* Phase one: who is where; the same provider everywhere. */
	memset(&mine, 0, sizeof(mine));
	mine.hostid = host_id();
	mine.pid = getpid();
	ret = draw_job(&mine.jobid, &mine.jobkey);
	if (ret == 0)
		ret = b->allgather(b->ctx, &mine, cards, sizeof(mine));
	if (ret)
		goto fail;
	/* Rank 0's: what every rank puts in its headers and keys, and checks. */
	jobid = cards[0].jobid;
	dsm_tp_core_set_key(&t->core, cards[0].jobkey);
	t->key_mask = dsm_hash64(cards[0].jobkey ^ 0x6b6579736d61736bull);
	t->core.broken = ofi_broken;
	for (int i = 0; i < b->size; i++)
		one_host &= cards[i].hostid == mine.hostid;
	/* From here a failing rank still takes part in the second exchange, so none hangs. */
	ret = dsm_setting_bool(DSM_SETTING_TP_NO_PIDFD, &no_pidfd);
	if (ret == 0)
		ret = dsm_setting_u64(DSM_SETTING_TP_HEARTBEAT_MS, &hb_ms, NULL);
	if (ret == 0)
		ret = dsm_setting_u64(DSM_SETTING_TP_DEAD_MS, &dead_ms, NULL);
	if (ret == 0)
		ret = ofi_choose_provider(t, want, one_host);
	if (ret == 0) {
		snprintf(t->prov, sizeof(t->prov), "%s", t->info->fabric_attr->prov_name);
		ret = force_prov_key(t);
	}
	if (ret == 0) {
		t->mr_local = t->info->domain_attr->mr_mode & FI_MR_LOCAL;
		t->mr_endpoint = t->info->domain_attr->mr_mode & FI_MR_ENDPOINT;
		t->tp.virt_addr = !!(t->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR);
		t->tp.prov_key = !!(t->info->domain_attr->mr_mode & FI_MR_PROV_KEY);
		/* Keys we choose span 64 bits (DSM_TP_KEY_SEG_SHIFT); a provider with fewer is
		 * run unmasked (a provider's own keys are masked and unmasked alike). */
		if (!t->tp.prov_key && t->info->domain_attr->mr_key_size < sizeof(uint64_t))
			t->key_mask = 0;
		t->inject = t->info->tx_attr->inject_size;
		ret = open_fabric(t);
	}
	if (ret == 0)
		ignore_sigpipe();
	if (ret == 0)
		ret = open_pools(t);
	if (ret == 0 && t->cq_fd < 0)
		ret = one_host ? ofi_bell_open(t, jobid) : 0;
	if (ret == 0) {
		ret = fi_getname(&t->ep->fid, mine.name, &namelen);
		if (ret)
			DSM_LOG(DSM_LOG_ERROR, "fi_getname: %s", fi_strerror(-ret));
		ret = ofi_fi_err(ret);
	}
	mine.namelen = ret ? 0 : (uint32_t)namelen;
	snprintf(mine.prov, sizeof(mine.prov), "%s", ret ? "" : t->prov);
	{
		int r = b->allgather(b->ctx, &mine, cards, sizeof(mine));
		if (ret == 0)
			ret = r;
	}
	if (ret)
		goto fail;
	for (int i = 0; i < b->size; i++) {
		if (cards[i].namelen == 0 || strcmp(cards[i].prov, t->prov) != 0) {
			DSM_LOG(DSM_LOG_ERROR, "rank %d uses provider '%s', we use '%s'", i,
			        cards[i].prov, t->prov);
			ret = DSM_ERR_NO_PROVIDER;
			goto fail;
		}
	}

	/* Phase two: insert every peer, watch the local ones. From here every step ends in an
	 * agreement (open_agree), which every rank reaches whatever failed before it. */
	for (int i = 0; ret == 0 && i < b->size; i++) {
		struct ofi_peer *p = &t->peers[i];

		if (fi_av_insert(t->av, cards[i].name, 1, &p->addr, 0, NULL) != 1) {
			DSM_LOG(DSM_LOG_ERROR, "inserting rank %d's address", i);
			ret = -EIO;
			break;
		}
		p->pid = cards[i].pid;
		p->same_host = cards[i].hostid == mine.hostid;
		if (strcmp(t->prov, "shm") == 0 && cards[i].namelen > 9 &&
		    cards[i].namelen < OFI_NAME_MAX && memcmp(cards[i].name, "fi_shm://", 9) == 0)
			memcpy(p->shm_name, cards[i].name + 9, cards[i].namelen - 9);
		/* DSM_TP_NO_PIDFD: tests the remote path (heartbeats) on one host. */
		if (i != b->rank && cards[i].hostid == mine.hostid && !no_pidfd) {
			p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
			if (p->pidfd < 0)
				DSM_LOG_ERRNO(DSM_LOG_WARN, "pidfd_open(%d) of rank %d", p->pid, i);
		}
	}
	if (ret == 0) {
		t->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (t->epfd < 0) {
			DSM_LOG_ERRNO(DSM_LOG_ERROR, "epoll_create1");
			ret = -errno;
		}
	}
	if (ret == 0 && t->cq_fd >= 0)
		ret = epoll_add(t->epfd, t->cq_fd);
	else if (ret == 0 && t->bell_fd >= 0)
		ret = epoll_add(t->epfd, t->bell_fd);
	for (int i = 0; ret == 0 && i < b->size; i++)
		if (t->peers[i].pidfd >= 0)
			ret = epoll_add(t->epfd, t->peers[i].pidfd);
	if (ret == 0)
		ret = ofi_peers_open(t, hb_ms, dead_ms);
	if (ret == 0 && t->hb_fd >= 0)
		ret = epoll_add(t->epfd, t->hb_fd);
	/* Every flag page exists (ofi_bell_open, before the exchange) and every rank watches
	 * its peers. */
	ret = open_agree(t, status, ret, "inserting and watching the peers");
	if (ret == 0 && t->bell_fd >= 0)
		ret = ofi_bell_connect(t, jobid);
	/* Every peer has mapped our flag page: its name may go. */
	ret = open_agree(t, status, ret, "mapping the peers' sleep flags");
	if (ret == 0 && t->flag_name[0]) {
		shm_unlink(t->flag_name);
		t->flag_name[0] = '\0';
	}
	{
		bool shm = strcmp(t->prov, "shm") == 0;

		if (ret == 0 && shm)
			ret = shm_hello(t);
		/* Every shm region is mapped by every peer: ours may lose its name. */
		ret = open_agree(t, status, ret, "the shm hellos");
		if (ret)
			goto fail;
		if (shm)
			shm_forget(t);
	}
	free(cards);
	free(status);
	DSM_LOG(DSM_LOG_INFO, "%s, %d ranks%s, wake by %s, inject %zu, mr_mode%s%s%s", t->prov,
	        b->size, one_host ? " on one host" : "",
	        t->cq_fd >= 0     ? "CQ wait fd"
	        : t->bell_fd >= 0 ? "doorbell"
	                          : "none (polling)",
	        t->inject, t->mr_local ? " local" : "", t->tp.virt_addr ? " virt_addr" : "",
	        t->tp.prov_key ? " prov_key" : "");
	*tp_p = &t->tp;
	return 0;
fail:
	free(cards);
	free(status);
	ofi_close(&t->tp);
	return ret;
}

static int ofi_close(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);
	uint64_t deadline = dsm_now_coarse_ns() + 2000000000ull;
	struct timespec pause = {0, 100000};

	/* Let queued and in-flight sends go out, for a bounded time. */
	while (t->ep && (t->queued || t->inflight) && dsm_now_coarse_ns() < deadline) {
		dsm_tp_core_release(&t->core);
		ofi_drain(t);
		ofi_progress(t);
		nanosleep(&pause, NULL);
	}
	for (int i = 0; t->peers && i < t->tp.size; i++) {
		while (t->peers[i].q_head) {
			struct ofi_op *op = t->peers[i].q_head;

			t->peers[i].q_head = op->next;
			ofi_op_discard(t, op, -ECANCELED);
		}
	}
	dsm_tp_core_fini(&t->core);
	while (t->rma_live) {
		struct ofi_op *op = t->rma_live;
		t->rma_live = op->rma_next;
		free(op);
	}
	if (t->ep)
		fi_close(&t->ep->fid);
	if (t->rx_mr)
		fi_close(&t->rx_mr->fid);
	if (t->tx_mr)
		fi_close(&t->tx_mr->fid);
	if (t->cq)
		fi_close(&t->cq->fid);
	if (t->av)
		fi_close(&t->av->fid);
	if (t->domain)
		fi_close(&t->domain->fid);
	if (t->fabric)
		fi_close(&t->fabric->fid);
	if (t->info)
		fi_freeinfo(t->info);
	for (int i = 0; i < tp->size; i++) {
		if (t->peers[i].pidfd >= 0)
			close(t->peers[i].pidfd);
		if (t->peers[i].flag && t->peers[i].flag != t->my_flag)
			munmap(t->peers[i].flag, 4096);
	}
	if (t->my_flag)
		munmap(t->my_flag, 4096);
	if (t->flag_name[0])
		shm_unlink(t->flag_name);
	if (t->bell_fd >= 0)
		close(t->bell_fd);
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->hb_fd >= 0)
		close(t->hb_fd);
	free(t->rx_ops);
	free(t->tx_ops);
	free(t->rx_mem);
	free(t->tx_mem);
	free(t->peers);
	free(t->busyv);
	if (t->shm_counted)
		atomic_fetch_sub(&shm_open_count, 1);
	free(t);
	return 0;
}

/* Exiting without close: shm's region and our sleep flag would stay in /dev/shm. */
static void ofi_abandon(dsm_tp_t *tp)
{
	struct ofi_tp *t = ot(tp);

	if (t->peers && t->peers[tp->rank].shm_name[0])
		shm_unlink(t->peers[tp->rank].shm_name);
	if (t->flag_name[0])
		shm_unlink(t->flag_name);
}

const struct dsm_tp_ops dsm_tp_ofi_ops = {
        .size = sizeof(struct dsm_tp_ops),
        .name = "libfabric",
        .open = ofi_open,
        .close = ofi_close,
        .send = ofi_send,
        .mr_reg = ofi_mr_reg,
        .mr_dereg = ofi_mr_dereg,
        .read = ofi_read,
        .write = ofi_write,
        .poll = ofi_poll,
        .wait_fd = ofi_wait_fd,
        .sleep_prepare = ofi_sleep_prepare,
        .sleep_end = ofi_sleep_end,
        .sleep_pause = ofi_sleep_pause,
        .sleep_resume = ofi_sleep_resume,
        .stats = ofi_stats,
        .describe = ofi_describe,
        .abandon = ofi_abandon,
};
