/* SPDX-License-Identifier: MIT */
/*
 * A process outside the job that reaches one of its endpoints, as an attacker on the same
 * host (shm, the same user) or network (tcp, any user) would: it opens an endpoint of its
 * own on the same provider, inserts the victim's address and sends it well-formed libdsm
 * messages that it could not have got from the job: "rank N died" control messages that
 * claim to come from rank N, a flood of messages far ahead of their turn, messages that
 * claim no rank of the job; each with a guessed key (zero, then random ones).
 *
 * With <raddr> <rkey> it then tries an RMA read of 8 bytes there with that key (the key
 * the job's ranks name the region by, which a process outside the job can compute).
 *
 *   tp_forge <provider> <address file> <messages> [<raddr> <rkey>]
 *
 * Prints "forged: <n> sent" (and "read: refused (why)" or "read: got <value>") and exits 0
 * once every one is posted (and given time to leave) and the read, if any, was refused; 3
 * if the read succeeded; 4 if not even the first message could be posted within 5 s (shm:
 * the victim's region has no name left to map it by); 1 on other errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "transport/internal.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what, int ret)
{
	fprintf(stderr, "tp_forge: %s: %s\n", what, fi_strerror(-ret));
	return 1;
}

int main(int argc, char **argv)
{
	struct fi_info *hints, *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *ep;
	struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
	struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_CONTEXT};
	int result = 0;
	unsigned char name[256];
	fi_addr_t victim;
	size_t namelen;
	long count;
	FILE *f;
	int ret;

	if ((argc != 4 && argc != 6) || (count = strtol(argv[3], NULL, 10)) <= 0) {
		fprintf(stderr, "usage: tp_forge <provider> <address file> <messages> "
		                "[<raddr> <rkey>]\n");
		return 2;
	}
	f = fopen(argv[2], "rb");
	if (f == NULL) {
		perror(argv[2]);
		return 1;
	}
	namelen = fread(name, 1, sizeof(name), f);
	fclose(f);
	if (namelen == 0) {
		fprintf(stderr, "tp_forge: %s holds no address\n", argv[2]);
		return 1;
	}

	hints = fi_allocinfo();
	hints->caps = FI_MSG | (argc == 6 ? FI_RMA : 0);
	hints->ep_attr->type = FI_EP_RDM;
	hints->mode = FI_CONTEXT | FI_CONTEXT2;
	hints->domain_attr->mr_mode =
	        FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	hints->fabric_attr->prov_name = strdup(argv[1]);
	ret = fi_getinfo(FI_VERSION(1, 11), NULL, NULL, 0, hints, &info);
	if (ret)
		return fail("fi_getinfo", ret);
	if ((ret = fi_fabric(info->fabric_attr, &fabric, NULL)) ||
	    (ret = fi_domain(fabric, info, &domain, NULL)) ||
	    (ret = fi_av_open(domain, &av_attr, &av, NULL)) ||
	    (ret = fi_cq_open(domain, &cq_attr, &cq, NULL)) ||
	    (ret = fi_endpoint(domain, info, &ep, NULL)) || (ret = fi_ep_bind(ep, &av->fid, 0)) ||
	    (ret = fi_ep_bind(ep, &cq->fid, FI_TRANSMIT | FI_RECV)) || (ret = fi_enable(ep)))
		return fail("opening an endpoint", ret);
	if (fi_av_insert(av, name, 1, &victim, 0, NULL) != 1)
		return fail("inserting the victim's address", -FI_EINVAL);

	long sent = 0;
	double deadline = now_s() + 20;

	for (long i = 0; i < count && now_s() < deadline; i++) {
		struct {
			struct dsm_tp_wire_hdr h;
			struct dsm_tp_ctrl m;
		} msg;
		uint64_t guess = 0;

		memset(&msg, 0, sizeof(msg));
		if (i > 0 && getrandom(&guess, sizeof(guess), 0) != sizeof(guess))
			guess = (uint64_t)i * 0x9e3779b97f4a7c15ull;
		msg.h.magic = DSM_TP_WIRE_MAGIC;
		msg.h.version = DSM_TP_WIRE_VERSION;
		msg.h.key = guess;
		msg.h.len = sizeof(msg.m);
		switch (i % 4) {
		case 0: /* "rank 1 died", says rank 1's successor on the ring, in its turn */
		case 1:
			msg.h.type = DSM_TP_CTRL_TYPE;
			msg.h.src = (uint32_t)(i % 2);
			msg.h.seq = 0;
			msg.m.op = DSM_TP_CTRL_DEAD;
			msg.m.chunk = 1;
			break;
		case 2: /* far ahead of its turn: would be held */
			msg.h.type = 1;
			msg.h.src = 1;
			msg.h.seq = (uint32_t)(1000 + i);
			break;
		default: /* from no rank of the job */
			msg.h.type = 1;
			msg.h.src = 0x7fffffffu;
			break;
		}
		double first = now_s() + 5;

		for (;;) {
			ret = (int)fi_inject(ep, &msg, sizeof(msg), victim);
			if (ret != -FI_EAGAIN || now_s() >= (sent ? deadline : first))
				break;
			struct fi_cq_entry e[8];
			(void)fi_cq_read(cq, e, 8); /* progress: rxm connects */
		}
		if (ret) {
			fail("fi_inject", ret);
			result = sent == 0 && ret == -FI_EAGAIN ? 4 : 1;
			break;
		}
		sent++;
	}
	/* Give the messages time to leave (manual progress). */
	for (double until = now_s() + 0.5; now_s() < until;) {
		struct fi_cq_entry e[8];

		(void)fi_cq_read(cq, e, 8);
		usleep(1000);
	}
	printf("forged: %ld sent\n", sent);
	if (argc == 6 && sent == count) {
		static uint64_t got = 0x5eed;
		struct fid_mr *mr = NULL;
		struct fi_context2 ctx;
		uint64_t raddr = strtoull(argv[4], NULL, 0), rkey = strtoull(argv[5], NULL, 0);

		if (info->domain_attr->mr_mode & FI_MR_LOCAL) {
			ret = fi_mr_reg(domain, &got, sizeof(got), FI_READ, 0, 7, 0, &mr, NULL);
			if (ret == 0 && (info->domain_attr->mr_mode & FI_MR_ENDPOINT)) {
				ret = fi_mr_bind(mr, &ep->fid, 0);
				if (ret == 0)
					ret = fi_mr_enable(mr);
			}
			if (ret)
				return fail("registering the read's buffer", ret);
		}
		for (;;) {
			struct fi_cq_entry e;

			ret = (int)fi_read(ep, &got, sizeof(got), mr ? fi_mr_desc(mr) : NULL,
			                   victim, raddr, rkey, &ctx);
			if (ret != -FI_EAGAIN || now_s() >= deadline + 10)
				break;
			(void)fi_cq_read(cq, &e, 1); /* progress; nothing of ours is in flight */
		}
		if (ret) {
			printf("read: refused (%s)\n", fi_strerror(-ret));
		} else {
			struct fi_cq_entry e;
			ssize_t n = 0;

			for (double until = now_s() + 10; now_s() < until;) {
				n = fi_cq_read(cq, &e, 1);
				if (n != -FI_EAGAIN)
					break;
			}
			if (n == 1) {
				printf("read: got 0x%llx\n", (unsigned long long)got);
				result = 3;
			} else if (n == -FI_EAVAIL) {
				struct fi_cq_err_entry err = {0};

				fi_cq_readerr(cq, &err, 0);
				printf("read: refused (%s)\n", fi_strerror(err.err));
			} else {
				printf("read: no answer (%s)\n", fi_strerror((int)-n));
			}
		}
		if (mr)
			fi_close(&mr->fid);
	}
	fflush(stdout);
	fi_close(&ep->fid);
	fi_close(&cq->fid);
	fi_close(&av->fid);
	fi_close(&domain->fid);
	fi_close(&fabric->fid);
	fi_freeinfo(info);
	fi_freeinfo(hints);
	return result ? result : sent != count ? 1 : 0;
}
