/* SPDX-License-Identifier: MIT */
/*
 * The files of a heap snapshot (dsm_checkpoint; docs/CHECKPOINT.md has the format): one per
 * rank that took it, and a MANIFEST written last. Here is what writes and reads them that
 * needs no runtime, so that dsm-info can check a snapshot anywhere the files are.
 */
#ifndef DSM_COMMON_CKPT_H
#define DSM_COMMON_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSM_CKPT_MAGIC    "DSMCKPT\0"
#define DSM_CKPT_VERSION  1
#define DSM_CKPT_HDR_SIZE 4096
#define DSM_CKPT_MANIFEST "MANIFEST"
#define DSM_CKPT_PATH_MAX 4096

/* The header of a rank's file, at offset 0 (little endian, as every rank of a job is). */
struct dsm_ckpt_hdr {
	char magic[8];
	uint32_t version;
	uint32_t rank, nranks; /* the rank that wrote it, of how many */
	uint32_t reserved;
	uint64_t id;  /* the snapshot's: every file and the manifest carry the same */
	uint64_t seq; /* the job's how-many-th checkpoint */
	uint64_t line_size, heap_base, heap_size;
	uint64_t root;                 /* dsm_root() at the checkpoint */
	uint64_t nlines;               /* line records */
	uint64_t alloc_off, alloc_len; /* the allocators' state (runtime/alloc.h) */
	uint64_t index_off;            /* nlines line ids, in the order saved */
	uint64_t sums_off;             /* nlines checksums of the lines' data, in that order */
	uint64_t data_off; /* nlines lines, in that order (an all-zero one may be a hole) */
	uint64_t file_size;
	uint64_t sum; /* of this header (sum 0), the allocators' state, the index and the sums */
};

/* What MANIFEST says. */
struct dsm_ckpt_manifest {
	uint64_t id, seq;
	uint32_t nranks;
	uint64_t line_size, heap_base, heap_size, root;
};

/* @tmpl with every "%r" replaced by @rank, then "/" @name if @name. -ENAMETOOLONG or 0. */
int dsm_ckpt_path(char *out, size_t cap, const char *tmpl, int rank, const char *name);
/* The file of rank @rank in the snapshot at @tmpl. */
int dsm_ckpt_file_path(char *out, size_t cap, const char *tmpl, int rank);

/* The checksum of one line's data (line @line of the heap). */
uint64_t dsm_ckpt_line_sum(const void *data, size_t len, uint64_t line);
/* Folds @len bytes into a file's running checksum. */
uint64_t dsm_ckpt_sum(uint64_t h, const void *p, size_t len);

/* fsync(2) of directory @dir: the names made in it are durable. 0 or -errno. */
int dsm_ckpt_fsync_dir(const char *dir);

/* Writes @m as @dir/MANIFEST: to a temporary file, fsync, rename, fsync of @dir. 0 or -errno. */
int dsm_ckpt_manifest_write(const char *dir, const struct dsm_ckpt_manifest *m);
/* Reads and checks @dir/MANIFEST. 0, or -errno with what is wrong in @why. */
int dsm_ckpt_manifest_read(const char *dir, struct dsm_ckpt_manifest *m, char *why, size_t cap);

/*
 * One rank's file, opened and checked against @m: the header, the allocators' state, the
 * index and the sums are read (and their checksum checked); the data is read on demand.
 */
struct dsm_ckpt_file {
	int fd;
	struct dsm_ckpt_hdr hdr;
	void *alloc;    /* hdr.alloc_len bytes */
	uint64_t *line; /* hdr.nlines */
	uint64_t *sums;
};

/* 0, or -errno / -EBADMSG with what is wrong in @why. */
int dsm_ckpt_file_open(const char *path, const struct dsm_ckpt_manifest *m, int rank,
                       struct dsm_ckpt_file *f, char *why, size_t cap);
void dsm_ckpt_file_close(struct dsm_ckpt_file *f);
/* Record @i's data into @buf (hdr.line_size bytes), its checksum checked. 0, -EIO, -EBADMSG. */
int dsm_ckpt_file_read(const struct dsm_ckpt_file *f, uint64_t i, void *buf);

#endif
