/* SPDX-License-Identifier: MIT */
/*
 * dsm-info: the doctor. Run it first on a new machine or cluster: it says
 * whether libdsm can run here, and if not, why and what to change.
 *
 *   dsm-info                   human-readable report
 *   dsm-info --json            the same as one JSON object
 *   dsm-info --settings [--json]  every DSM_* setting: its value here, default, help
 *   dsm-info --checkpoint DIR     what a snapshot holds, every line's checksum checked
 *
 * Exit status: 0 libdsm can run (--settings: every setting in the environment
 * is valid; --checkpoint: the snapshot is complete and intact), 1 it cannot (one line on stderr
 * says why and how to fix it), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsm.h>

#include "coherence/coherence.h"
#include "common/ckpt.h"
#include "common/settings.h"
#include "tools/probe.h"

#define PROBE_PAGES      256
#define PROBE_TIMEOUT_MS 10000

struct report {
	struct dsm_probe_kernel kernel;
	struct dsm_uffd_access access;
	uint64_t features;
	int features_err;
	bool mw_async;    /* multiple-writer writes found by WP_ASYNC + PAGEMAP_SCAN */
	char mw_why[160]; /* why not */
	struct dsm_probe_vm vm;
	struct dsm_probe_fault fault;
	struct dsm_probe_fabric fabric;
	struct dsm_probe_hwloc hwloc;
	struct dsm_probe_mpi mpi;
	int settings_set;      /* DSM_* settings the environment sets */
	char bad_setting[512]; /* the first malformed one, "" if none */
	bool ok;
	char reason[512];
	char fix[512];
	char warnings[4][1024];
	int nwarnings;
};

static void collect(struct report *r)
{
	memset(r, 0, sizeof(*r));
	dsm_probe_kernel(&r->kernel);
	dsm_uffd_access_probe(&r->access);
	r->features_err = r->access.mode == DSM_UFFD_NONE
	                          ? -1
	                          : dsm_uffd_kernel_features(r->access.mode, &r->features);
	r->mw_async = r->access.mode != DSM_UFFD_NONE &&
	              dsm_uffd_wp_async_ok(r->access.mode, r->mw_why, sizeof(r->mw_why));
	dsm_probe_vm(&r->vm);
	dsm_probe_fault(r->access.mode, PROBE_PAGES, PROBE_TIMEOUT_MS, &r->fault);
	dsm_probe_fabric(&r->fabric);
	dsm_probe_hwloc(&r->hwloc);
	dsm_probe_mpi(&r->mpi);
	for (unsigned i = 0; i < DSM_SETTING_COUNT; i++) {
		const struct dsm_setting *st = dsm_setting_info((enum dsm_setting_id)i);
		struct dsm_setting_value v;
		char why[256];
		int ret = dsm_setting_lookup((enum dsm_setting_id)i, &v, why, sizeof(why));

		r->settings_set += ret != 0;
		if (ret < 0 && r->bad_setting[0] == '\0')
			snprintf(r->bad_setting, sizeof(r->bad_setting), "%s='%s' is not valid: %s",
			         st->name, getenv(st->name), why);
	}
}

/* The verdict: the first fatal problem decides; the rest are warnings. */
static void judge(struct report *r)
{
	r->ok = false;
	if (r->bad_setting[0]) {
		snprintf(r->reason, sizeof(r->reason), "%s", r->bad_setting);
		snprintf(r->fix, sizeof(r->fix),
		         "correct or unset it (dsm-info --settings lists every setting)");
		return;
	}
	if (r->access.mode == DSM_UFFD_NONE) {
		snprintf(r->reason, sizeof(r->reason), "%s", r->access.reason);
		snprintf(r->fix, sizeof(r->fix), "%s", r->access.fix);
		return;
	}
	if (r->features_err == 0 && !(r->features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		snprintf(r->reason, sizeof(r->reason),
		         "the kernel's userfaultfd lacks write-protect faults (PAGEFAULT_FLAG_WP)");
		snprintf(r->fix, sizeof(r->fix),
		         "use Linux 5.7 or newer with CONFIG_HAVE_ARCH_USERFAULTFD_WP");
		return;
	}
	if (!r->fault.ok) {
		snprintf(r->reason, sizeof(r->reason), "the userfaultfd fault probe failed: %s",
		         r->fault.error);
		snprintf(r->fix, sizeof(r->fix),
		         "check the kernel's userfaultfd support (Linux 5.7+, anonymous memory "
		         "write-protect) and any seccomp profile");
		return;
	}
	if (r->fabric.nproviders == 0) {
		snprintf(r->reason, sizeof(r->reason),
		         "no libfabric provider offers RDM endpoints with FI_MSG and FI_RMA%s%s",
		         r->fabric.error[0] ? ": " : "", r->fabric.error);
		snprintf(r->fix, sizeof(r->fix),
		         "install libfabric with the shm and tcp providers (Debian: libfabric1), "
		         "and check FI_PROVIDER is unset or names an available provider (fi_info "
		         "-l)");
		return;
	}
	r->ok = true;
	if (r->access.mode == DSM_UFFD_USER_ONLY)
		snprintf(r->warnings[r->nwarnings++], sizeof(r->warnings[0]), "%s. Fix: %s",
		         r->access.reason, r->access.fix);
	if (r->vm.overcommit_memory == 2)
		snprintf(r->warnings[r->nwarnings++], sizeof(r->warnings[0]),
		         "vm.overcommit_memory=2: %s", r->vm.overcommit_note);
	if (r->vm.max_map_count >= 0 && r->vm.max_map_count < 65530)
		snprintf(r->warnings[r->nwarnings++], sizeof(r->warnings[0]),
		         "vm.max_map_count=%d is below the default: sysctl -w "
		         "vm.max_map_count=262144",
		         r->vm.max_map_count);
}

/* ---- text --------------------------------------------------------------------------------- */

static void print_text(const struct report *r, FILE *f)
{
	fprintf(f, "libdsm %d.%d.%d (protocol %s)\n\n", DSM_VERSION_MAJOR, DSM_VERSION_MINOR,
	        DSM_VERSION_PATCH, dsm_coh_protocol_name());
	fprintf(f, "kernel            %s %s\n", r->kernel.release, r->kernel.machine);

	fprintf(f, "userfaultfd       %s via %s\n", dsm_uffd_mode_name(r->access.mode),
	        r->access.via);
	fprintf(f, "  why             %s\n", r->access.reason);
	fprintf(f,
	        "  euid %u, CAP_SYS_PTRACE %s, /dev/userfaultfd %s, "
	        "vm.unprivileged_userfaultfd=%d\n",
	        r->access.euid, r->access.cap_sys_ptrace ? "yes" : "no",
	        !r->access.dev_exists      ? "absent"
	        : r->access.dev_accessible ? "accessible"
	                                   : "not accessible",
	        r->access.unprivileged_sysctl);
	if (r->access.fix[0])
		fprintf(f, "  for full mode   %s\n", r->access.fix);
	fprintf(f, "  features       ");
	if (r->features_err)
		fprintf(f, " (unknown)");
	for (unsigned b = 0; b < 64; b++) {
		if (!(r->features & (1ull << b)))
			continue;
		const char *n = dsm_uffd_feature_name(b);
		if (n)
			fprintf(f, " %s", n);
		else
			fprintf(f, " bit%u", b);
	}
	fprintf(f, "\n");
	fprintf(f, "  multiple-writer %s\n",
	        r->mw_async ? "async: writes found by WP_ASYNC + PAGEMAP_SCAN, no fault per write"
	                    : "twin: a write fault per line and release");
	if (!r->mw_async && r->mw_why[0])
		fprintf(f, "                  (no async: %s)\n", r->mw_why);
	if (r->fault.ok)
		fprintf(f,
		        "  fault probe     ok: %u pages, MISSING+COPY %.1f us, WP %.1f us per "
		        "fault\n",
		        r->fault.pages, r->fault.missing_us, r->fault.wp_us);
	else
		fprintf(f, "  fault probe     FAILED: %s\n", r->fault.error);

	{
		unsigned cores = r->hwloc.cores > 0 ? (unsigned)r->hwloc.cores : 1;
		size_t one = dsm_setting_cache_auto(1), per = dsm_setting_cache_auto(cores);

		fprintf(f,
		        "cache (auto)      %.1f GiB of copies per rank with 1 rank on this node, "
		        "%.1f GiB with %u (one per core)\n",
		        (double)one / (1 << 30), (double)per / (1 << 30), cores);
	}
	fprintf(f, "vm.overcommit_memory  %d: %s\n", r->vm.overcommit_memory,
	        r->vm.overcommit_note);
	fprintf(f, "vm.max_map_count      %d: %s\n", r->vm.max_map_count, r->vm.map_count_note);

	fprintf(f, "libfabric         %s\n", r->fabric.version);
	if (r->fabric.nproviders == 0)
		fprintf(f, "  no RDM provider with FI_MSG|FI_RMA%s%s\n",
		        r->fabric.error[0] ? ": " : "", r->fabric.error);
	for (int i = 0; i < r->fabric.nproviders; i++)
		fprintf(f, "  %-15s RDM MSG RMA%s  domains %s\n", r->fabric.providers[i].name,
		        r->fabric.providers[i].atomic ? " ATOMIC" : "",
		        r->fabric.providers[i].domains);

	fprintf(f, "hwloc             %s: %d package(s), %d NUMA node(s), %d core(s), %d PU(s)\n",
	        r->hwloc.version, r->hwloc.packages, r->hwloc.numa_nodes, r->hwloc.cores,
	        r->hwloc.pus);
	if (r->hwloc.error[0])
		fprintf(f, "  error: %s\n", r->hwloc.error);
	if (r->hwloc.nnetdevs == 0)
		fprintf(f, "  network devices: none that hwloc attaches to a PCI device\n");
	for (int i = 0; i < r->hwloc.nnetdevs; i++)
		fprintf(f, "  %-15s %s, NUMA %s\n", r->hwloc.netdevs[i].name,
		        r->hwloc.netdevs[i].kind,
		        r->hwloc.netdevs[i].numa[0] ? r->hwloc.netdevs[i].numa : "unknown");

	fprintf(f, "MPI               %s (MPI %d.%d)\n", r->mpi.version, r->mpi.major,
	        r->mpi.minor);
	fprintf(f, "settings          %d DSM_* set in the environment%s%s (dsm-info --settings)\n",
	        r->settings_set, r->bad_setting[0] ? "; " : ", all valid", r->bad_setting);

	for (int i = 0; i < r->nwarnings; i++)
		fprintf(f, "\nwarning: %s\n", r->warnings[i]);
	if (r->ok)
		fprintf(f, "\nverdict: libdsm can run here\n");
	else
		fprintf(f, "\nverdict: libdsm cannot run here: %s\n  fix: %s\n", r->reason, r->fix);
}

/* ---- JSON --------------------------------------------------------------------------------- */

struct json {
	FILE *f;
	int depth;
	bool first[16];
};

static void j_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void j_key(struct json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	if (key) {
		j_string(j->f, key);
		fputc(':', j->f);
	}
}

static void j_open(struct json *j, const char *key, char bracket)
{
	j_key(j, key);
	fputc(bracket, j->f);
	j->first[++j->depth] = true;
}

static void j_close(struct json *j, char bracket)
{
	fputc(bracket, j->f);
	j->depth--;
}

static void j_str(struct json *j, const char *key, const char *v)
{
	j_key(j, key);
	j_string(j->f, v ? v : "");
}

static void j_int(struct json *j, const char *key, long long v)
{
	j_key(j, key);
	fprintf(j->f, "%lld", v);
}

static void j_num(struct json *j, const char *key, double v)
{
	j_key(j, key);
	fprintf(j->f, "%.3f", v);
}

static void j_bool(struct json *j, const char *key, bool v)
{
	j_key(j, key);
	fputs(v ? "true" : "false", j->f);
}

static void print_json(const struct report *r, FILE *f)
{
	struct json j = {.f = f, .first = {true}};
	char ver[32];

	snprintf(ver, sizeof(ver), "%d.%d.%d", DSM_VERSION_MAJOR, DSM_VERSION_MINOR,
	         DSM_VERSION_PATCH);
	j_open(&j, NULL, '{');
	j_str(&j, "libdsm", ver);
	j_bool(&j, "ok", r->ok);
	j_str(&j, "reason", r->reason);
	j_str(&j, "fix", r->fix);
	j_open(&j, "warnings", '[');
	for (int i = 0; i < r->nwarnings; i++)
		j_str(&j, NULL, r->warnings[i]);
	j_close(&j, ']');

	j_open(&j, "kernel", '{');
	j_str(&j, "release", r->kernel.release);
	j_str(&j, "version", r->kernel.version);
	j_str(&j, "machine", r->kernel.machine);
	j_close(&j, '}');

	j_open(&j, "userfaultfd", '{');
	j_str(&j, "mode", dsm_uffd_mode_name(r->access.mode));
	j_str(&j, "via", r->access.via);
	j_str(&j, "reason", r->access.reason);
	j_str(&j, "fix", r->access.fix);
	j_int(&j, "euid", r->access.euid);
	j_bool(&j, "cap_sys_ptrace", r->access.cap_sys_ptrace);
	j_bool(&j, "dev_userfaultfd_exists", r->access.dev_exists);
	j_bool(&j, "dev_userfaultfd_accessible", r->access.dev_accessible);
	j_int(&j, "vm_unprivileged_userfaultfd", r->access.unprivileged_sysctl);
	j_open(&j, "features", '[');
	for (unsigned b = 0; b < 64 && r->features_err == 0; b++) {
		if (!(r->features & (1ull << b)))
			continue;
		char other[16];
		const char *n = dsm_uffd_feature_name(b);
		if (n == NULL) {
			snprintf(other, sizeof(other), "bit%u", b);
			n = other;
		}
		j_str(&j, NULL, n);
	}
	j_close(&j, ']');
	j_str(&j, "mw_track", r->mw_async ? "async" : "twin");
	j_open(&j, "probe", '{');
	j_bool(&j, "ok", r->fault.ok);
	j_int(&j, "pages", r->fault.pages);
	j_int(&j, "missing_faults", r->fault.missing_faults);
	j_int(&j, "wp_faults", r->fault.wp_faults);
	j_num(&j, "missing_fault_us", r->fault.missing_us);
	j_num(&j, "wp_fault_us", r->fault.wp_us);
	j_str(&j, "error", r->fault.error);
	j_close(&j, '}');
	j_close(&j, '}');

	j_open(&j, "cache_auto", '{');
	j_num(&j, "bytes_1_rank", (double)dsm_setting_cache_auto(1));
	j_int(&j, "cores", r->hwloc.cores > 0 ? r->hwloc.cores : 1);
	j_num(&j, "bytes_per_core",
	      (double)dsm_setting_cache_auto(r->hwloc.cores > 0 ? (unsigned)r->hwloc.cores : 1));
	j_close(&j, '}');
	j_open(&j, "vm", '{');
	j_int(&j, "overcommit_memory", r->vm.overcommit_memory);
	j_str(&j, "overcommit_note", r->vm.overcommit_note);
	j_int(&j, "max_map_count", r->vm.max_map_count);
	j_str(&j, "max_map_count_note", r->vm.map_count_note);
	j_close(&j, '}');

	j_open(&j, "libfabric", '{');
	j_str(&j, "version", r->fabric.version);
	j_str(&j, "error", r->fabric.error);
	j_open(&j, "providers", '[');
	for (int i = 0; i < r->fabric.nproviders; i++) {
		j_open(&j, NULL, '{');
		j_str(&j, "name", r->fabric.providers[i].name);
		j_str(&j, "domains", r->fabric.providers[i].domains);
		j_bool(&j, "rma", true);
		j_bool(&j, "atomic", r->fabric.providers[i].atomic);
		j_close(&j, '}');
	}
	j_close(&j, ']');
	j_close(&j, '}');

	j_open(&j, "hwloc", '{');
	j_str(&j, "version", r->hwloc.version);
	j_int(&j, "packages", r->hwloc.packages);
	j_int(&j, "numa_nodes", r->hwloc.numa_nodes);
	j_int(&j, "cores", r->hwloc.cores);
	j_int(&j, "pus", r->hwloc.pus);
	j_open(&j, "network_devices", '[');
	for (int i = 0; i < r->hwloc.nnetdevs; i++) {
		j_open(&j, NULL, '{');
		j_str(&j, "name", r->hwloc.netdevs[i].name);
		j_str(&j, "kind", r->hwloc.netdevs[i].kind);
		j_str(&j, "numa_nodes", r->hwloc.netdevs[i].numa);
		j_close(&j, '}');
	}
	j_close(&j, ']');
	j_close(&j, '}');

	j_open(&j, "mpi", '{');
	j_str(&j, "library", r->mpi.version);
	j_int(&j, "standard_major", r->mpi.major);
	j_int(&j, "standard_minor", r->mpi.minor);
	j_close(&j, '}');

	j_open(&j, "settings", '{');
	j_int(&j, "set", r->settings_set);
	j_str(&j, "error", r->bad_setting);
	j_close(&j, '}');
	j_close(&j, '}');
	fputc('\n', f);
}

/* ---- --settings --------------------------------------------------------------------------- */

static const char *const type_names[] = {
        [DSM_SETTING_SIZE] = "size",     [DSM_SETTING_INT] = "integer",
        [DSM_SETTING_ENUM] = "enum",     [DSM_SETTING_BOOL] = "boolean",
        [DSM_SETTING_STRING] = "string",
};

/* What a setting accepts, in a few words. */
static void accepts(const struct dsm_setting *s, char *buf, size_t n)
{
	size_t used = 0;

	switch (s->type) {
	case DSM_SETTING_SIZE:
		snprintf(buf, n, "%s",
		         s->flags & DSM_SETTING_F_POW2_PAGES ? "a power of two, page size to 1G"
		                                             : "bytes, 4K to 64T (K, M, G, T)");
		break;
	case DSM_SETTING_INT:
		snprintf(buf, n, "%llu to %llu%s%s", (unsigned long long)s->min,
		         (unsigned long long)s->max, s->unit ? " " : "", s->unit ? s->unit : "");
		break;
	case DSM_SETTING_ENUM:
		buf[0] = '\0';
		for (const char *const *c = s->choices; *c && used < n; c++)
			used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? "|" : "", *c);
		if ((s->flags & DSM_SETTING_F_OR_INT) && used < n)
			snprintf(buf + used, n - used, "|%llu..%llu", (unsigned long long)s->min,
			         (unsigned long long)s->max);
		if ((s->flags & DSM_SETTING_F_OR_SIZE) && used < n)
			snprintf(buf + used, n - used, "|a size (K, M, G, T)");
		break;
	case DSM_SETTING_BOOL:
		snprintf(buf, n, "0|1");
		break;
	default:
		snprintf(buf, n, "text");
	}
}

/* Lists the registry with what the environment says; 1 if a value there is malformed. */
static int print_settings(bool json, FILE *f)
{
	struct json j = {.f = f, .first = {true}};
	int bad = 0;

	if (json) {
		j_open(&j, NULL, '{');
		j_open(&j, "settings", '[');
	} else {
		fprintf(f, "%-20s %-18s %-18s %-30s %s\n", "setting", "value here", "default",
		        "accepts", "what it does");
	}
	for (unsigned i = 0; i < DSM_SETTING_COUNT; i++) {
		const struct dsm_setting *s = dsm_setting_info((enum dsm_setting_id)i);
		struct dsm_setting_value v;
		char why[256] = "", acc[128], value[96];
		int ret = dsm_setting_lookup((enum dsm_setting_id)i, &v, why, sizeof(why));
		const char *env = getenv(s->name);

		accepts(s, acc, sizeof(acc));
		if (ret < 0) {
			bad = 1;
			fprintf(stderr, "dsm-info: %s='%s' is not valid: %s\n", s->name, env, why);
		}
		snprintf(value, sizeof(value), "%s", ret == 0 ? "(default)" : env);
		if (!json) {
			fprintf(f, "%-20s %-18s %-18s %-30s %s%s%s\n", s->name, value, s->def_doc,
			        acc, s->help, ret < 0 ? " -- INVALID: " : "", ret < 0 ? why : "");
			continue;
		}
		j_open(&j, NULL, '{');
		j_str(&j, "name", s->name);
		j_str(&j, "type", type_names[s->type]);
		j_str(&j, "layer", s->layer);
		j_str(&j, "config_field", s->config_field ? s->config_field : "");
		j_bool(&j, "set", ret != 0);
		j_str(&j, "value", ret != 0 ? env : "");
		j_bool(&j, "valid", ret >= 0);
		j_str(&j, "error", ret < 0 ? why : "");
		j_str(&j, "default", s->def_doc);
		j_str(&j, "accepts", acc);
		j_str(&j, "help", s->help);
		j_close(&j, '}');
	}
	if (json) {
		j_close(&j, ']');
		j_close(&j, '}');
		fputc('\n', f);
	}
	return bad;
}

/* ---- --checkpoint ------------------------------------------------------------------------- */

static const char *dist_name(uint64_t d)
{
	return d == DSM_COH_DIST_BLOCK ? "block" : d == DSM_COH_DIST_CYCLIC ? "cyclic" : "local";
}

/* The collective allocations of a file's allocator state (docs/CHECKPOINT.md). */
static void print_allocations(const struct dsm_ckpt_file *f, FILE *out)
{
	const uint64_t *w = f->alloc;
	size_t n = f->hdr.alloc_len / 8;
	uint64_t ncoll = n >= 3 ? w[2] : 0;

	if (n < 3 || ncoll > (n - 3) / 3) {
		fprintf(out, "allocations  (the table is malformed)\n");
		return;
	}
	fprintf(out, "allocations  %llu collective (dsm_all_alloc)\n", (unsigned long long)ncoll);
	for (uint64_t i = 0; i < ncoll && i < 32; i++) {
		const uint64_t *e = &w[3 + 3 * i];

		fprintf(out, "  %#llx  %llu lines, %s\n",
		        (unsigned long long)(f->hdr.heap_base + e[0] * f->hdr.line_size),
		        (unsigned long long)e[1], dist_name(e[2]));
	}
	if (ncoll > 32)
		fprintf(out, "  ... and %llu more\n", (unsigned long long)(ncoll - 32));
}

static int print_checkpoint(const char *tmpl, FILE *out)
{
	struct dsm_ckpt_manifest m;
	char dir[DSM_CKPT_PATH_MAX], path[DSM_CKPT_PATH_MAX], why[DSM_CKPT_PATH_MAX + 512];
	unsigned long long lines = 0;
	int damaged = 0;
	void *buf;

	if (dsm_ckpt_path(dir, sizeof(dir), tmpl, 0, NULL) < 0 ||
	    dsm_ckpt_manifest_read(dir, &m, why, sizeof(why)) < 0) {
		fprintf(stderr, "dsm-info: %s\n", why);
		return 1;
	}
	fprintf(out,
	        "snapshot     %s: #%llu, id %016llx, of %u ranks\n"
	        "heap         %llu bytes at %#llx, %llu-byte lines\n"
	        "root         %#llx\n",
	        tmpl, (unsigned long long)m.seq, (unsigned long long)m.id, m.nranks,
	        (unsigned long long)m.heap_size, (unsigned long long)m.heap_base,
	        (unsigned long long)m.line_size, (unsigned long long)m.root);
	buf = malloc(m.line_size);
	for (uint32_t r = 0; buf && r < m.nranks; r++) {
		struct dsm_ckpt_file f;
		unsigned long long fbad = 0;

		dsm_ckpt_file_path(path, sizeof(path), tmpl, (int)r);
		if (dsm_ckpt_file_open(path, &m, (int)r, &f, why, sizeof(why)) < 0) {
			fprintf(out, "rank %-7u DAMAGED: %s\n", r, why);
			damaged++;
			continue;
		}
		if (r == 0)
			print_allocations(&f, out);
		for (uint64_t i = 0; i < f.hdr.nlines; i++) {
			int ret = dsm_ckpt_file_read(&f, i, buf);

			if (ret < 0 && fbad++ < 4)
				fprintf(out, "  rank %u line %llu (%#llx): %s\n", r,
				        (unsigned long long)f.line[i],
				        (unsigned long long)(m.heap_base + f.line[i] * m.line_size),
				        ret == -EBADMSG ? "fails its checksum" : "cannot be read");
		}
		fprintf(out, "rank %-7u %s: %llu lines (%.1f MB), %s\n", r, path,
		        (unsigned long long)f.hdr.nlines,
		        (double)f.hdr.nlines * (double)m.line_size / 1e6,
		        fbad ? "DAMAGED" : "every line's checksum holds");
		lines += f.hdr.nlines;
		damaged += fbad > 0;
		dsm_ckpt_file_close(&f);
	}
	free(buf);
	fprintf(out, "total        %llu lines; %s\n", lines,
	        damaged ? "DAMAGED: a restart from it is refused" : "complete and intact");
	return damaged ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: dsm-info [--json] [--settings] [--checkpoint DIR] [--help]\n"
	           "Checks whether libdsm can run on this machine: kernel, userfaultfd mode and\n"
	           "features (with a real fault probe), vm sysctls, libfabric providers, hwloc\n"
	           "topology, MPI and the DSM_* settings in the environment. Exit status: 0 it\n"
	           "can, 1 it cannot, 2 usage error.\n"
	           "  --settings  list every DSM_* setting libdsm reads: its value here, its\n"
	           "              default, what it accepts and does (exit 1 if one is malformed)\n"
	           "  --checkpoint DIR  what the snapshot dsm_checkpoint(DIR) wrote holds, every\n"
	           "              line's checksum checked (exit 1 if incomplete or damaged)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"json", no_argument, NULL, 'j'},
	        {"settings", no_argument, NULL, 's'},
	        {"checkpoint", required_argument, NULL, 'c'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	bool json = false, settings = false;
	const char *ckpt = NULL;
	struct report *r;
	int c;

	while ((c = getopt_long(argc, argv, "jshc:", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ckpt = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			settings = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dsm-info: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (settings)
		return print_settings(json, stdout);
	if (ckpt)
		return print_checkpoint(ckpt, stdout);

	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		fprintf(stderr, "dsm-info: out of memory\n");
		return 1;
	}
	collect(r);
	judge(r);
	if (json)
		print_json(r, stdout);
	else
		print_text(r, stdout);
	fflush(stdout);
	if (!r->ok)
		fprintf(stderr, "dsm-info: libdsm cannot run here: %s. Fix: %s\n", r->reason,
		        r->fix);
	c = r->ok ? 0 : 1;
	free(r);
	return c;
}
