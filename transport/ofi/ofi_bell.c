/* SPDX-License-Identifier: MIT */
/*
 * The doorbell, for providers without a completion wait fd (shm): each rank
 * has an abstract unix datagram socket and a sleep flag in a page its peers
 * on the host map. A rank going to sleep announces it in its flag; a peer
 * that gives it work clears the flag and rings once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "transport/ofi/ofi.h"

static void bell_addr(struct sockaddr_un *a, socklen_t *len, uint64_t jobid, int rank)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	/* Abstract namespace: nothing to unlink, gone with the process. */
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "libdsm-%016llx-%d",
	                 (unsigned long long)jobid, rank);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/*
 * The doorbell: a peer that has announced it sleeps gets one ring. The peer
 * stores its flag, fences, then polls once more; we change its queues (or
 * fail to, see try_post), fence, then look at the flag. Either its poll sees
 * our change or we see its flag (Dekker): no third order exists.
 */
void ofi_ring(struct ofi_tp *t, int peer)
{
	struct ofi_peer *p = &t->peers[peer];
	char b = 1;

	if (p->flag == NULL)
		return;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(p->flag, memory_order_relaxed) == 0)
		return;
	if (atomic_exchange(p->flag, 0) == 0)
		return;
	t->core.st.doorbells++;
	if (sendto(t->bell_fd, &b, 1, MSG_DONTWAIT, (struct sockaddr *)&p->bell, p->bell_len) < 0 &&
	    errno != EAGAIN && errno != ECONNREFUSED)
		DSM_LOG_ERRNO(DSM_LOG_DEBUG, "ringing rank %d", peer);
}

/* Phase one of the doorbell: our socket and our flag page. */
int ofi_bell_open(struct ofi_tp *t, uint64_t jobid)
{
	struct sockaddr_un a;
	socklen_t alen;
	int fd;

	bell_addr(&a, &alen, jobid, t->tp.rank);
	t->bell_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->bell_fd < 0 || bind(t->bell_fd, (struct sockaddr *)&a, alen) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "doorbell socket");
		return -errno;
	}
	snprintf(t->flag_name, sizeof(t->flag_name), "/libdsm-%016llx-%d",
	         (unsigned long long)jobid, t->tp.rank);
	fd = shm_open(t->flag_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) != 0) {
		DSM_LOG_ERRNO(DSM_LOG_ERROR, "sleep flag %s", t->flag_name);
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	t->my_flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (t->my_flag == MAP_FAILED) {
		t->my_flag = NULL;
		return -errno;
	}
	return 0;
}

/* Phase two: map every same-host peer's flag. */
int ofi_bell_connect(struct ofi_tp *t, uint64_t jobid)
{
	for (int i = 0; i < t->tp.size; i++) {
		struct ofi_peer *p = &t->peers[i];
		char name[64];
		int fd;
		void *m;

		if (i == t->tp.rank) {
			p->flag = t->my_flag;
		} else {
			snprintf(name, sizeof(name), "/libdsm-%016llx-%d",
			         (unsigned long long)jobid, i);
			fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
			if (fd < 0) {
				DSM_LOG_ERRNO(DSM_LOG_ERROR, "sleep flag of rank %d", i);
				return -errno;
			}
			m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			if (m == MAP_FAILED)
				return -errno;
			p->flag = m;
		}
		bell_addr(&p->bell, &p->bell_len, jobid, i);
	}
	return 0;
}

/* Going to sleep: the flag up, then a full fence, before the caller looks for work once
 * more (the other half of ofi_ring()'s Dekker pair). */
void ofi_bell_announce(struct ofi_tp *t)
{
	atomic_store(t->my_flag, 1);
	atomic_thread_fence(memory_order_seq_cst);
}

void ofi_bell_withdraw(struct ofi_tp *t)
{
	if (t->my_flag)
		atomic_store(t->my_flag, 0);
}

/* Awake again: the flag down and the rings that woke us read. */
void ofi_bell_drain(struct ofi_tp *t)
{
	char b[64];

	ofi_bell_withdraw(t);
	if (t->bell_fd >= 0)
		while (recv(t->bell_fd, b, sizeof(b), MSG_DONTWAIT) > 0)
			;
}
