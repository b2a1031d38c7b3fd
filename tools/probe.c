/* SPDX-License-Identifier: MIT */
#include "tools/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <hwloc.h>
#include <mpi.h>
#include <poll.h>
#include <pthread.h>
#include <rdma/fabric.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/time.h"

/* Copies @s into @d of @n bytes, cutting it short if needed. */
static void str_copy(char *d, size_t n, const char *s)
{
	size_t l = strnlen(s, n - 1);

	memcpy(d, s, l);
	d[l] = '\0';
}

void dsm_probe_kernel(struct dsm_probe_kernel *out)
{
	struct utsname u;

	memset(out, 0, sizeof(*out));
	if (uname(&u) < 0)
		return;
	str_copy(out->release, sizeof(out->release), u.release);
	str_copy(out->version, sizeof(out->version), u.version);
	str_copy(out->machine, sizeof(out->machine), u.machine);
}

void dsm_probe_vm(struct dsm_probe_vm *out)
{
	memset(out, 0, sizeof(*out));
	out->overcommit_memory = dsm_read_int_file("/proc/sys/vm/overcommit_memory");
	out->max_map_count = dsm_read_int_file("/proc/sys/vm/max_map_count");

	switch (out->overcommit_memory) {
	case 0:
	case 1:
		snprintf(out->overcommit_note, sizeof(out->overcommit_note),
		         "%s: a heap of many TiB is reserved with MAP_NORESERVE at no cost; memory "
		         "follows what is touched",
		         out->overcommit_memory ? "always overcommit" : "heuristic overcommit");
		break;
	case 2:
		snprintf(out->overcommit_note, sizeof(out->overcommit_note),
		         "strict accounting: even MAP_NORESERVE mappings are charged, so the heap "
		         "is "
		         "reserved PROT_NONE and opened in chunks as it is allocated; what is "
		         "allocated must fit the commit limit (vm.overcommit_ratio/_kbytes)");
		break;
	default:
		snprintf(out->overcommit_note, sizeof(out->overcommit_note), "unreadable");
	}
	snprintf(out->map_count_note, sizeof(out->map_count_note),
	         "the heap is one mapping; each chunk opened under strict overcommit and each "
	         "registered home-segment chunk may add one. %s",
	         out->max_map_count >= 65530
	                 ? "Enough for libdsm and the program's own mappings"
	                 : "Low: raise it with sysctl -w vm.max_map_count=262144");
}

/* ---- the fault probe ---------------------------------------------------------------------- */

struct fault_ctx {
	int uffd;
	int stop_pipe[2];
	char *area;
	size_t psz;
	char *src;
	atomic_uint missing, wp;
	char error[256];
};

static uint64_t pattern(unsigned page)
{
	return 0x64736d0000000000ull | page;
}

static double now_us(void)
{
	return (double)dsm_now_ns() / 1e3;
}

static int resolve_fault(struct fault_ctx *c, const struct uffd_msg *m)
{
	uint64_t page = m->arg.pagefault.address & ~(uint64_t)(c->psz - 1);

	if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
		struct uffdio_writeprotect wp = {.range = {page, c->psz}, .mode = 0};

		if (ioctl(c->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
			return -errno;
		atomic_fetch_add(&c->wp, 1);
		return 0;
	}
	/* A read grant: installed write-protected, so the later store faults again. */
	uint64_t v = pattern((unsigned)((page - (uint64_t)c->area) / c->psz));
	memcpy(c->src, &v, sizeof(v));
	struct uffdio_copy cp = {
	        .dst = page, .src = (uint64_t)c->src, .len = c->psz, .mode = UFFDIO_COPY_MODE_WP};
	if (ioctl(c->uffd, UFFDIO_COPY, &cp) < 0 && errno != EEXIST)
		return -errno;
	atomic_fetch_add(&c->missing, 1);
	return 0;
}

static void *fault_handler(void *arg)
{
	struct fault_ctx *c = arg;
	struct pollfd pfd[2] = {{c->uffd, POLLIN, 0}, {c->stop_pipe[0], POLLIN, 0}};

	for (;;) {
		struct uffd_msg m;
		int ret;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(c->error, sizeof(c->error), "poll: %s", strerror(errno));
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		if (read(c->uffd, &m, sizeof(m)) != sizeof(m)) {
			if (errno == EAGAIN)
				continue;
			snprintf(c->error, sizeof(c->error), "read(uffd): %s", strerror(errno));
			return NULL;
		}
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		ret = resolve_fault(c, &m);
		if (ret < 0) {
			snprintf(c->error, sizeof(c->error), "resolving a %s fault: %s",
			         (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) ? "WP"
			                                                          : "MISSING",
			         strerror(-ret));
			return NULL;
		}
	}
}

static void fault_probe_run(enum dsm_uffd_mode mode, unsigned pages, struct dsm_probe_fault *r)
{
	struct fault_ctx c = {.uffd = -1, .stop_pipe = {-1, -1}};
	struct uffdio_register reg;
	uint64_t ioctls;
	pthread_t th;
	double t_miss = 0, t_wp = 0;
	int ret;

	c.psz = (size_t)sysconf(_SC_PAGESIZE);
	ret = dsm_uffd_open(mode, &c.uffd);
	if (ret < 0) {
		snprintf(r->error, sizeof(r->error), "opening userfaultfd (%s): %s",
		         dsm_uffd_mode_name(mode), strerror(-ret));
		return;
	}
	ret = dsm_uffd_handshake(c.uffd, UFFD_FEATURE_PAGEFAULT_FLAG_WP, NULL, &ioctls);
	if (ret < 0) {
		snprintf(r->error, sizeof(r->error), "UFFDIO_API with PAGEFAULT_FLAG_WP: %s",
		         strerror(-ret));
		goto out_close;
	}
	c.area = mmap(NULL, pages * c.psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	              0);
	c.src = mmap(NULL, c.psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c.area == MAP_FAILED || c.src == MAP_FAILED) {
		snprintf(r->error, sizeof(r->error), "mmap: %s", strerror(errno));
		goto out_close;
	}
	reg = (struct uffdio_register){.range = {(uint64_t)c.area, pages * c.psz},
	                               .mode = UFFDIO_REGISTER_MODE_MISSING |
	                                       UFFDIO_REGISTER_MODE_WP};
	if (ioctl(c.uffd, UFFDIO_REGISTER, &reg) < 0) {
		snprintf(r->error, sizeof(r->error), "UFFDIO_REGISTER MISSING|WP: %s",
		         strerror(errno));
		goto out_unmap;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY)) ||
	    !(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))) {
		snprintf(r->error, sizeof(r->error),
		         "the registered range lacks UFFDIO_COPY or UFFDIO_WRITEPROTECT");
		goto out_unmap;
	}
	if (pipe2(c.stop_pipe, O_CLOEXEC) < 0 || pthread_create(&th, NULL, fault_handler, &c)) {
		snprintf(r->error, sizeof(r->error), "starting the handler thread failed");
		goto out_unmap;
	}

	for (unsigned i = 0; i < pages; i++) {
		volatile uint64_t *p = (volatile uint64_t *)(c.area + i * c.psz);
		double t0 = now_us();
		uint64_t v = *p; /* MISSING fault: installed read-only */
		double t1 = now_us();
		*p = ~v; /* WP fault: write permission granted */
		double t2 = now_us();

		if (v != pattern(i) || *p != ~pattern(i)) {
			snprintf(r->error, sizeof(r->error), "page %u read back wrong data", i);
			break;
		}
		t_miss += t1 - t0;
		t_wp += t2 - t1;
	}

	if (write(c.stop_pipe[1], "x", 1) != 1)
		abort();
	pthread_join(th, NULL);
	r->missing_faults = atomic_load(&c.missing);
	r->wp_faults = atomic_load(&c.wp);
	r->missing_us = t_miss / pages;
	r->wp_us = t_wp / pages;
	if (r->error[0] == '\0' && c.error[0] != '\0')
		snprintf(r->error, sizeof(r->error), "%s", c.error);
	if (r->error[0] == '\0' && (r->missing_faults != pages || r->wp_faults != pages))
		snprintf(r->error, sizeof(r->error),
		         "expected %u MISSING and %u WP faults, saw %u and %u", pages, pages,
		         r->missing_faults, r->wp_faults);
	r->ok = r->error[0] == '\0';
	close(c.stop_pipe[0]);
	close(c.stop_pipe[1]);
out_unmap:
	if (c.area != MAP_FAILED && c.area)
		munmap(c.area, pages * c.psz);
	if (c.src != MAP_FAILED && c.src)
		munmap(c.src, c.psz);
out_close:
	close(c.uffd);
}

void dsm_probe_fault(enum dsm_uffd_mode mode, unsigned pages, int timeout_ms,
                     struct dsm_probe_fault *out)
{
	int fds[2];
	pid_t pid;
	struct pollfd pfd;
	ssize_t n;
	int status;

	memset(out, 0, sizeof(*out));
	out->mode = mode;
	out->pages = pages;
	if (mode == DSM_UFFD_NONE) {
		snprintf(out->error, sizeof(out->error), "userfaultfd cannot be opened");
		return;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		snprintf(out->error, sizeof(out->error), "pipe: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(out->error, sizeof(out->error), "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		struct dsm_probe_fault r = *out;

		close(fds[0]);
		fault_probe_run(mode, pages, &r);
		n = write(fds[1], &r, sizeof(r));
		_exit(n == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(fds[1]);
	pfd = (struct pollfd){fds[0], POLLIN, 0};
	if (poll(&pfd, 1, timeout_ms) <= 0) {
		kill(pid, SIGKILL);
		snprintf(out->error, sizeof(out->error),
		         "the probe did not finish within %d ms: a fault was never resolved",
		         timeout_ms);
	} else if ((n = read(fds[0], out, sizeof(*out))) != (ssize_t)sizeof(*out)) {
		memset(out, 0, sizeof(*out));
		out->mode = mode;
		out->pages = pages;
		out->error[0] = '?'; /* filled in below, once the status is known */
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (out->error[0] == '?') {
		if (WIFSIGNALED(status))
			snprintf(out->error, sizeof(out->error),
			         "the probe process died of signal %d (%s) before reporting",
			         WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			snprintf(out->error, sizeof(out->error),
			         "the probe process exited with status %d before reporting",
			         WEXITSTATUS(status));
	}
}

/* ---- libfabric ---------------------------------------------------------------------------- */

static struct fi_info *fabric_hints(uint64_t caps)
{
	struct fi_info *h = fi_allocinfo();

	if (h == NULL)
		return NULL;
	h->ep_attr->type = FI_EP_RDM;
	h->caps = caps;
	/* What the transport can cope with: contexts, local descriptors, virtual or offset
	 * addressing, provider keys, endpoint-bound regions. */
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->domain_attr->mr_mode =
	        FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
	return h;
}

static struct dsm_probe_provider *provider_slot(struct dsm_probe_fabric *out, const char *name,
                                                bool create)
{
	for (int i = 0; i < out->nproviders; i++)
		if (strcmp(out->providers[i].name, name) == 0)
			return &out->providers[i];
	if (!create || out->nproviders == DSM_PROBE_MAX_PROVIDERS)
		return NULL;
	struct dsm_probe_provider *p = &out->providers[out->nproviders++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	return p;
}

void dsm_probe_fabric(struct dsm_probe_fabric *out)
{
	struct fi_info *hints, *info = NULL;
	uint32_t v = fi_version();
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(out->version, sizeof(out->version), "%u.%u", FI_MAJOR(v), FI_MINOR(v));

	hints = fabric_hints(FI_MSG | FI_RMA);
	if (hints == NULL) {
		snprintf(out->error, sizeof(out->error), "fi_allocinfo failed");
		return;
	}
	ret = fi_getinfo(FI_VERSION(1, 11), NULL, NULL, 0, hints, &info);
	fi_freeinfo(hints);
	if (ret) {
		snprintf(out->error, sizeof(out->error), "fi_getinfo: %s", fi_strerror(-ret));
		return;
	}
	for (struct fi_info *i = info; i; i = i->next) {
		struct dsm_probe_provider *p = provider_slot(out, i->fabric_attr->prov_name, true);
		size_t len;

		if (p == NULL || strstr(p->domains, i->domain_attr->name))
			continue;
		len = strlen(p->domains);
		snprintf(p->domains + len, sizeof(p->domains) - len, "%s%s", len ? "," : "",
		         i->domain_attr->name);
	}
	fi_freeinfo(info);

	hints = fabric_hints(FI_MSG | FI_RMA | FI_ATOMIC);
	info = NULL;
	if (hints && fi_getinfo(FI_VERSION(1, 11), NULL, NULL, 0, hints, &info) == 0) {
		for (struct fi_info *i = info; i; i = i->next) {
			struct dsm_probe_provider *p =
			        provider_slot(out, i->fabric_attr->prov_name, false);
			if (p)
				p->atomic = true;
		}
		fi_freeinfo(info);
	}
	fi_freeinfo(hints);
}

/* ---- hwloc -------------------------------------------------------------------------------- */

void dsm_probe_hwloc(struct dsm_probe_hwloc *out)
{
	hwloc_topology_t t;
	unsigned v = hwloc_get_api_version();

	memset(out, 0, sizeof(*out));
	snprintf(out->version, sizeof(out->version), "%u.%u.%u", v >> 16, (v >> 8) & 0xff,
	         v & 0xff);
	if (hwloc_topology_init(&t) < 0) {
		snprintf(out->error, sizeof(out->error), "hwloc_topology_init failed");
		return;
	}
	hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
	if (hwloc_topology_load(t) < 0) {
		snprintf(out->error, sizeof(out->error), "hwloc_topology_load: %s",
		         strerror(errno));
		hwloc_topology_destroy(t);
		return;
	}
	out->packages = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE);
	out->numa_nodes = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
	out->cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
	out->pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);

	for (hwloc_obj_t o = hwloc_get_next_osdev(t, NULL); o; o = hwloc_get_next_osdev(t, o)) {
		hwloc_obj_osdev_type_t ot = o->attr->osdev.type;
		struct dsm_probe_netdev *d;
		hwloc_obj_t anc;

		if (ot != HWLOC_OBJ_OSDEV_NETWORK && ot != HWLOC_OBJ_OSDEV_OPENFABRICS)
			continue;
		if (out->nnetdevs == DSM_PROBE_MAX_NETDEVS)
			break;
		d = &out->netdevs[out->nnetdevs++];
		snprintf(d->name, sizeof(d->name), "%s", o->name ? o->name : "?");
		snprintf(d->kind, sizeof(d->kind), "%s",
		         ot == HWLOC_OBJ_OSDEV_NETWORK ? "network" : "openfabrics");
		anc = hwloc_get_non_io_ancestor_obj(t, o);
		if (anc && anc->nodeset)
			hwloc_bitmap_list_snprintf(d->numa, sizeof(d->numa), anc->nodeset);
	}
	hwloc_topology_destroy(t);
}

/* ---- MPI ---------------------------------------------------------------------------------- */

void dsm_probe_mpi(struct dsm_probe_mpi *out)
{
	char buf[MPI_MAX_LIBRARY_VERSION_STRING];
	int len = 0;

	memset(out, 0, sizeof(*out));
	/* Both calls are allowed before MPI_Init. */
	if (MPI_Get_library_version(buf, &len) == MPI_SUCCESS) {
		buf[len < (int)sizeof(buf) ? len : (int)sizeof(buf) - 1] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		for (char *c = buf; *c; c++)
			if (*c == '\t')
				*c = ' ';
		str_copy(out->version, sizeof(out->version), buf);
	}
	MPI_Get_version(&out->major, &out->minor);
}
