/* SPDX-License-Identifier: MIT */
/*
 * dsm-info's probes: each fills a struct that the text and JSON printers read
 * and that the tests check.
 */
#ifndef DSM_TOOLS_PROBE_H
#define DSM_TOOLS_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/uffd.h"

struct dsm_probe_kernel {
	char release[128];
	char version[256];
	char machine[64];
};

struct dsm_probe_vm {
	int overcommit_memory; /* -1: unreadable */
	int max_map_count;
	char overcommit_note[256];
	char map_count_note[256];
};

/* The real fault probe: a page registered MISSING|WP, faults resolved by a second thread. */
struct dsm_probe_fault {
	bool ok;
	enum dsm_uffd_mode mode;
	unsigned pages;          /* pages touched */
	unsigned missing_faults; /* MISSING faults resolved with UFFDIO_COPY(MODE_WP) */
	unsigned wp_faults;      /* write-protect faults resolved with UFFDIO_WRITEPROTECT */
	double missing_us;       /* mean round trip of one MISSING fault */
	double wp_us;            /* mean round trip of one WP fault */
	char error[256];         /* what failed, if !ok */
};

#define DSM_PROBE_MAX_PROVIDERS 16
#define DSM_PROBE_MAX_NETDEVS   32

struct dsm_probe_provider {
	char name[64];     /* e.g. "shm", "tcp;ofi_rxm", "verbs;ofi_rxm" */
	char domains[256]; /* comma-separated domain names */
	bool atomic;       /* also offers FI_ATOMIC */
};

struct dsm_probe_fabric {
	char version[32];
	int nproviders;
	struct dsm_probe_provider providers[DSM_PROBE_MAX_PROVIDERS];
	char error[256];
};

struct dsm_probe_netdev {
	char name[64];
	char kind[32]; /* "network" or "openfabrics" */
	char numa[64]; /* NUMA node list it is local to, "" if unknown */
};

struct dsm_probe_hwloc {
	char version[32];
	int packages, numa_nodes, cores, pus;
	int nnetdevs;
	struct dsm_probe_netdev netdevs[DSM_PROBE_MAX_NETDEVS];
	char error[256];
};

struct dsm_probe_mpi {
	char version[256]; /* first line of MPI_Get_library_version */
	int major, minor;  /* MPI standard version */
};

void dsm_probe_kernel(struct dsm_probe_kernel *out);
void dsm_probe_vm(struct dsm_probe_vm *out);
/* Runs in a child process (so a broken kernel cannot hang the caller), at most @timeout_ms. */
void dsm_probe_fault(enum dsm_uffd_mode mode, unsigned pages, int timeout_ms,
                     struct dsm_probe_fault *out);
void dsm_probe_fabric(struct dsm_probe_fabric *out);
void dsm_probe_hwloc(struct dsm_probe_hwloc *out);
void dsm_probe_mpi(struct dsm_probe_mpi *out);

#endif
