/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: every byte a rank's transport takes from the wire (the header and its
 * checks, the job key, per-pair reordering and its limits, the transport's control
 * messages: a segment's key requests and answers). Three ranks on the loopback transport,
 * each with a segment; the input is a script of raw messages (bytes exactly as given),
 * framed ones (a header with the job key and the fuzzer's type, sequence number and
 * payload, so the fuzzer gets past the key), ordinary sends, and polls. Checked: no crash,
 * no sanitizer report, and no rank holds more than the limit of messages ahead of their
 * turn.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "transport/internal.h"
#include "transport/loopback.h"
#include "transport/testing.h"
#include "transport/transport.h"

#define N        3
#define MAX_TYPE 8
#define SEG_LEN  (1u << 20)
#define CHUNK    (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The ranks are opened one after the other: each sees the slots of those before it. */
static unsigned char gather_table[N][64];

static int fake_allgather(void *ctx, const void *mine, void *all, size_t len)
{
	if (len > sizeof(gather_table[0]))
		abort();
	memcpy(gather_table[(intptr_t)ctx], mine, len);
	for (int r = 0; r < N; r++)
		memcpy((unsigned char *)all + (size_t)r * len, gather_table[r], len);
	return 0;
}

static int no_barrier(void *ctx)
{
	(void)ctx;
	return 0;
}

static void pump(dsm_tp_t **tps)
{
	for (int r = 0; r < N; r++) {
		struct dsm_tp_event ev[16];

		if (tps[r])
			(void)dsm_tp_poll(tps[r], ev, 16);
	}
}

static void check_bounded(dsm_tp_t **tps)
{
	for (int r = 0; r < N; r++)
		for (int p = 0; p < N; p++)
			if (tps[r]->core->rx[p].nheld > DSM_TP_HELD_MAX ||
			    tps[r]->core->rx[p].held_bytes > DSM_TP_HELD_BYTES_MAX)
				abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsm_tp_attr attr = {.struct_size = sizeof(attr), .max_msg_type = MAX_TYPE,
	                           .msg_max = 4096};
	struct dsm_tp_boot boots[N];
	dsm_tp_loop_fabric_t *fab;
	dsm_tp_t *tps[N] = {0};
	dsm_tp_seg_t *segs[N] = {0};
	void *mem[N];
	size_t i = 0;

	if (dsm_tp_loop_fabric_create(N, &fab))
		return 0;
	attr.impl_arg = fab;
	for (int r = 0; r < N; r++) {
		boots[r] = (struct dsm_tp_boot){(void *)(intptr_t)r, r, N, fake_allgather, no_barrier};
		attr.boot = &boots[r];
		if (dsm_tp_open(&dsm_tp_loop_ops, &attr, &tps[r]))
			abort();
		mem[r] = mmap(NULL, SEG_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		              0);
		if (mem[r] == MAP_FAILED || dsm_tp_seg_create(tps[r], mem[r], SEG_LEN, CHUNK, &segs[r]))
			abort();
	}
	while (i < size) {
		uint8_t op = data[i++];
		int from = 1 + (op & 1), to = (from + 1 + ((op >> 1) & 1)) % N;
		unsigned char msg[512];
		size_t n;

		switch (op >> 5) {
		case 0: /* raw bytes */
		case 1:
			if (i >= size)
				break;
			n = data[i++];
			if (n > size - i)
				n = size - i;
			(void)dsm_tp_send_raw(tps[from], to, data + i, n);
			i += n;
			break;
		case 2: /* framed: the job key, the fuzzer's type, sequence number and payload */
		case 3: {
			struct dsm_tp_wire_hdr h = {DSM_TP_WIRE_MAGIC, DSM_TP_WIRE_VERSION, 0, 0,
			                            (uint32_t)from, 0, dsm_tp_wire_key(tps[from])};

			if (size - i < 4)
				break;
			h.type = data[i] >= 0xf0 ? DSM_TP_CTRL_TYPE : data[i];
			h.seq = (uint32_t)data[i + 1] | (uint32_t)data[i + 2] << 8;
			n = data[i + 3];
			i += 4;
			if (n > size - i)
				n = size - i;
			if (n > sizeof(msg) - sizeof(h))
				n = sizeof(msg) - sizeof(h);
			h.len = (uint32_t)n;
			if (op & 0x10)
				h.src = op & 0x4 ? (uint32_t)to : 0xffffffffu; /* a sender it is not */
			memcpy(msg, &h, sizeof(h));
			memcpy(msg + sizeof(h), data + i, n);
			(void)dsm_tp_send_raw(tps[from], to, msg, sizeof(h) + n);
			i += n;
			break;
		}
		case 4: /* an ordinary send */
			n = i < size ? data[i++] : 0;
			(void)dsm_tp_send(tps[from], to, 1 + n % MAX_TYPE, data + (i < size ? i : 0),
			                  n < size - i ? n : size - i);
			break;
		case 5: /* a segment read, which asks for a chunk's key */
			(void)dsm_tp_seg_read(segs[from], to, (size_t)(op & 0xf) * CHUNK, msg, 8, NULL,
			                      NULL);
			break;
		default:
			pump(tps);
			break;
		}
	}
	for (int k = 0; k < 8; k++)
		pump(tps);
	check_bounded(tps);
	for (int r = 0; r < N; r++) {
		dsm_tp_seg_destroy(segs[r]);
		dsm_tp_close(tps[r]);
		munmap(mem[r], SEG_LEN);
	}
	dsm_tp_loop_fabric_destroy(fab);
	return 0;
}
