/* SPDX-License-Identifier: MIT */
#include "common/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hash.h"

int dsm_ckpt_path(char *out, size_t cap, const char *tmpl, int rank, const char *name)
{
	size_t n = 0;

	for (const char *p = tmpl; *p; p++) {
		int w;

		if (p[0] == '%' && p[1] == 'r') {
			w = snprintf(out + n, cap - n, "%d", rank);
			p++;
		} else {
			w = snprintf(out + n, cap - n, "%c", *p);
		}
		if (w < 0 || (size_t)w >= cap - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	if (name) {
		int w = snprintf(out + n, cap - n, "/%s", name);

		if (w < 0 || (size_t)w >= cap - n)
			return -ENAMETOOLONG;
	}
	return 0;
}

int dsm_ckpt_file_path(char *out, size_t cap, const char *tmpl, int rank)
{
	char name[32];

	snprintf(name, sizeof(name), "rank-%d.dsmckpt", rank);
	return dsm_ckpt_path(out, cap, tmpl, rank, name);
}

/* Four lanes of dsm_hash_bytes' step over the words i % 4, folded at the end: the lanes'
 * multiplies overlap, so a line is summed at several GB/s (the writer sums every line). */
uint64_t dsm_ckpt_line_sum(const void *data, size_t len, uint64_t line)
{
	const uint8_t *p = data;
	uint64_t h[4], w;
	size_t i = 0;

	for (int k = 0; k < 4; k++)
		h[k] = dsm_hash64(line + 1 + (uint64_t)k);
	for (; i + 32 <= len; i += 32) {
		for (int k = 0; k < 4; k++) {
			memcpy(&w, p + i + 8 * k, 8);
			h[k] = (h[k] ^ w) * 0x9e3779b97f4a7c15ULL;
			h[k] ^= h[k] >> 31;
		}
	}
	return dsm_hash_bytes(p + i, len - i,
	                      h[0] ^ dsm_hash64(h[1]) ^ dsm_hash64(h[2] + 1) ^
	                              dsm_hash64(h[3] + 2));
}

uint64_t dsm_ckpt_sum(uint64_t h, const void *p, size_t len)
{
	return dsm_hash_bytes(p, len, h);
}

/* ---- the manifest ------------------------------------------------------------------------ */

static int format_manifest(char *buf, size_t cap, const struct dsm_ckpt_manifest *m)
{
	int n = snprintf(buf, cap,
	                 "libdsm-checkpoint %d\nid %016" PRIx64 "\nseq %" PRIu64 "\nnranks %u\n"
	                 "line_size %" PRIu64 "\nheap_base %#" PRIx64 "\nheap_size %" PRIu64
	                 "\nroot %#" PRIx64 "\n",
	                 DSM_CKPT_VERSION, m->id, m->seq, m->nranks, m->line_size, m->heap_base,
	                 m->heap_size, m->root);

	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	int w = snprintf(buf + n, cap - (size_t)n, "sum %016" PRIx64 "\n",
	                 dsm_ckpt_sum(0, buf, (size_t)n));
	return w < 0 || (size_t)w >= cap - (size_t)n ? -ENAMETOOLONG : n + w;
}

int dsm_ckpt_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int dsm_ckpt_manifest_write(const char *dir, const struct dsm_ckpt_manifest *m)
{
	char buf[1024], tmp[DSM_CKPT_PATH_MAX], path[DSM_CKPT_PATH_MAX];
	int len = format_manifest(buf, sizeof(buf), m), fd, ret = 0;

	if (len < 0)
		return len;
	if (snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, DSM_CKPT_MANIFEST) >= (int)sizeof(tmp) ||
	    snprintf(path, sizeof(path), "%s/%s", dir, DSM_CKPT_MANIFEST) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0)
		ret = errno ? -errno : -EIO;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret == 0)
		ret = dsm_ckpt_fsync_dir(dir);
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int dsm_ckpt_manifest_read(const char *dir, struct dsm_ckpt_manifest *m, char *why, size_t cap)
{
	char path[DSM_CKPT_PATH_MAX], buf[1024], check[1024];
	unsigned version = 0;
	uint64_t sum = 0;
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, DSM_CKPT_MANIFEST) >= (int)sizeof(path)) {
		snprintf(why, cap, "the path %s/%s is too long", dir, DSM_CKPT_MANIFEST);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		struct stat st;

		if (stat(dir, &st) < 0)
			snprintf(why, cap, "no snapshot directory %s: %s", dir, strerror(errno));
		else
			snprintf(why, cap,
			         "%s: %s (no complete snapshot here: the manifest is written last)",
			         path, strerror(err));
		return -err;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(why, cap, "reading %s: %s", path, strerror(errno));
		return -EIO;
	}
	buf[n] = 0;
	memset(m, 0, sizeof(*m));
	if (sscanf(buf,
	           "libdsm-checkpoint %u\nid %" SCNx64 "\nseq %" SCNu64
	           "\nnranks %u\nline_size %" SCNu64 "\nheap_base %" SCNx64 "\nheap_size %" SCNu64
	           "\nroot %" SCNx64 "\nsum %" SCNx64,
	           &version, &m->id, &m->seq, &m->nranks, &m->line_size, &m->heap_base,
	           &m->heap_size, &m->root, &sum) != 9) {
		snprintf(why, cap, "%s is truncated or malformed", path);
		return -EBADMSG;
	}
	if (version != DSM_CKPT_VERSION) {
		snprintf(why, cap, "%s is of format version %u; this libdsm reads version %d", path,
		         version, DSM_CKPT_VERSION);
		return -EBADMSG;
	}
	/* The sum covers every line before it: the text is rebuilt and compared whole. */
	if (format_manifest(check, sizeof(check), m) != n || memcmp(check, buf, (size_t)n) != 0) {
		snprintf(why, cap, "%s fails its checksum (damaged or edited)", path);
		return -EBADMSG;
	}
	if (m->nranks == 0 || m->line_size == 0 || (m->line_size & (m->line_size - 1))) {
		snprintf(why, cap, "%s names %u ranks and %" PRIu64 "-byte lines", path, m->nranks,
		         m->line_size);
		return -EBADMSG;
	}
	return 0;
}

/* ---- a rank's file ----------------------------------------------------------------------- */

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EBADMSG; /* short: truncated */
		done += (size_t)n;
	}
	return 0;
}

static bool within(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

int dsm_ckpt_file_open(const char *path, const struct dsm_ckpt_manifest *m, int rank,
                       struct dsm_ckpt_file *f, char *why, size_t cap)
{
	struct dsm_ckpt_hdr *h = &f->hdr, z;
	struct stat st;
	uint64_t sum, n;
	int ret;

	memset(f, 0, sizeof(*f));
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		ret = -errno;
		snprintf(why, cap, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = fstat(f->fd, &st) < 0 ? -errno : read_at(f->fd, h, sizeof(*h), 0);
	if (ret < 0 || memcmp(h->magic, DSM_CKPT_MAGIC, 8) != 0) {
		snprintf(why, cap, "%s is not a libdsm snapshot file (or is truncated)", path);
		goto bad;
	}
	n = h->nlines;
	if (h->version != DSM_CKPT_VERSION || h->id != m->id || h->rank != (uint32_t)rank ||
	    h->nranks != m->nranks || h->line_size != m->line_size ||
	    h->heap_base != m->heap_base || h->heap_size != m->heap_size) {
		snprintf(why, cap,
		         "%s belongs to another snapshot (id %016" PRIx64 ", rank %u of %u; the "
		         "manifest says id %016" PRIx64 ", %u ranks)",
		         path, h->id, h->rank, h->nranks, m->id, m->nranks);
		goto bad;
	}
	if ((uint64_t)st.st_size != h->file_size || n > h->file_size / 8 ||
	    !within(h->alloc_off, h->alloc_len, h->file_size) ||
	    !within(h->index_off, n * 8, h->file_size) ||
	    !within(h->sums_off, n * 8, h->file_size) || n > h->file_size / h->line_size ||
	    !within(h->data_off, n * h->line_size, h->file_size)) {
		snprintf(why, cap,
		         "%s is truncated or damaged (%lld bytes, its header says %" PRIu64 ")",
		         path, (long long)st.st_size, h->file_size);
		goto bad;
	}
	f->alloc = malloc(h->alloc_len ? h->alloc_len : 1);
	f->line = malloc(n ? n * 8 : 1);
	f->sums = malloc(n ? n * 8 : 1);
	if (!f->alloc || !f->line || !f->sums) {
		snprintf(why, cap, "%s: out of memory", path);
		dsm_ckpt_file_close(f);
		return -ENOMEM;
	}
	if (read_at(f->fd, f->alloc, h->alloc_len, h->alloc_off) < 0 ||
	    read_at(f->fd, f->line, n * 8, h->index_off) < 0 ||
	    read_at(f->fd, f->sums, n * 8, h->sums_off) < 0) {
		snprintf(why, cap, "reading %s failed", path);
		goto bad;
	}
	z = *h;
	z.sum = 0;
	sum = dsm_ckpt_sum(0, &z, sizeof(z));
	sum = dsm_ckpt_sum(sum, f->alloc, h->alloc_len);
	sum = dsm_ckpt_sum(sum, f->line, n * 8);
	sum = dsm_ckpt_sum(sum, f->sums, n * 8);
	if (sum != h->sum) {
		snprintf(why, cap, "%s fails its checksum (damaged)", path);
		goto bad;
	}
	return 0;
bad:
	dsm_ckpt_file_close(f);
	return -EBADMSG;
}

void dsm_ckpt_file_close(struct dsm_ckpt_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->alloc);
	free(f->line);
	free(f->sums);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

int dsm_ckpt_file_read(const struct dsm_ckpt_file *f, uint64_t i, void *buf)
{
	const struct dsm_ckpt_hdr *h = &f->hdr;
	int ret;

	if (i >= h->nlines)
		return -EINVAL;
	ret = read_at(f->fd, buf, h->line_size, h->data_off + i * h->line_size);
	if (ret < 0)
		return ret == -EBADMSG ? ret : -EIO;
	return dsm_ckpt_line_sum(buf, h->line_size, f->line[i]) == f->sums[i] ? 0 : -EBADMSG;
}
