/*
 * A 1 GiB value through a daemon with --max-value 2G and the default 64M
 * buffer pool: the put's payload is streamed from a deterministic generator
 * over a raw socket, a megabyte at a time, so neither side ever holds the
 * value; the daemon's peak RSS (VmHWM) must stay far below the value's size;
 * the get's frames are compared byte for byte as they arrive; and after a
 * restart the value reads back the same.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "zappend.pb-c.h"

#define VLEN	(1ull << 30)
#define BLOCK	(1u << 20) /* the generator's unit, and the writer's */
#define SEED	0x5a11a9e
#define HWM_MAX (300ull << 20)
#define KEY	"large/one-gibibyte"
#define IO_SECS 60

static struct zt_daemon d;

/* --- the value: block i is zt_fill(SEED + i) --- */

static uint8_t gen_buf[BLOCK];
static uint64_t gen_block = UINT64_MAX;

/* Bytes [off, off + len) of the value. */
static void gen_range(uint8_t *out, uint64_t off, size_t len)
{
	while (len) {
		uint64_t b = off / BLOCK;
		size_t at = off % BLOCK, n = BLOCK - at < len ? BLOCK - at : len;

		if (b != gen_block) {
			zt_fill(gen_buf, BLOCK, SEED + b);
			gen_block = b;
		}
		memcpy(out, gen_buf + at, n);
		out += n;
		off += n;
		len -= n;
	}
}

/* --- raw socket --- */

static void recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, IO_SECS * 1000) == 0)
			zt_fail("no answer from the daemon in %d s", IO_SECS);
		n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			zt_fail("recv: %s",
				n ? strerror(errno) : "the daemon closed the connection");
		p += n;
		len -= n;
	}
}

static void send_req(int fd, uint64_t id, int op, uint32_t plen)
{
	Zappend__Request r = ZAPPEND__REQUEST__INIT;
	uint8_t buf[256];
	size_t n;

	r.id = id;
	r.op = op;
	r.key.data = (uint8_t *)KEY;
	r.key.len = strlen(KEY);
	n = zappend__request__pack(&r, buf + ZAP_FRAME_PREFIX);
	zap_frame_encode(buf, n, plen);
	zt_send_all(fd, buf, ZAP_FRAME_PREFIX + n);
}

/* One response frame's header; its payload (fr->plen bytes) is the caller's to read. */
static Zappend__Response *recv_resp(int fd, struct zap_frame *fr)
{
	uint8_t pre[ZAP_FRAME_PREFIX], h[4096];
	Zappend__Response *r;

	recv_all(fd, pre, sizeof(pre));
	zt_check(!zap_frame_decode(pre, fr) && fr->hlen <= sizeof(h),
		 "a response header of %u bytes", fr->hlen);
	recv_all(fd, h, fr->hlen);
	r = zappend__response__unpack(NULL, fr->hlen, h);
	zt_check(r, "a response that does not parse");
	return r;
}

static void check_hwm(const char *when)
{
	long hwm = zt_proc_kib(&d, "VmHWM:");

	fprintf(stderr, "  daemon peak RSS %s: %ld MiB\n", when, hwm >> 10);
	zt_check((uint64_t)hwm << 10 < HWM_MAX, "the daemon's peak RSS %s is %ld MiB", when,
		 hwm >> 10);
}

/* --- put and get --- */

static void put_value(void)
{
	uint8_t *buf = malloc(BLOCK);
	struct zap_frame fr;
	Zappend__Response *r;
	double t0 = zt_now();
	int fd = zt_raw_connect(&d);

	send_req(fd, 1, ZAPPEND__OP__OP_PUT, (uint32_t)VLEN);
	for (uint64_t off = 0; off < VLEN; off += BLOCK) {
		gen_range(buf, off, BLOCK);
		zt_send_all(fd, buf, BLOCK);
	}
	r = recv_resp(fd, &fr);
	zt_check(r->id == 1 && r->status == ZAPPEND__STATUS__STATUS_OK && !fr.plen,
		 "the put: id %llu status %d: %s", (unsigned long long)r->id, r->status,
		 r->message);
	fprintf(stderr, "  put 1 GiB in %.1f s (zone %u, offset %llu, seq %llu)\n", zt_now() - t0,
		r->zone, (unsigned long long)r->offset, (unsigned long long)r->seq);
	zappend__response__free_unpacked(r, NULL);
	close(fd);
	free(buf);
}

/* Gets the value and compares every frame's payload with the generator as it comes. */
static void get_value(const char *when)
{
	uint8_t *buf = malloc(BLOCK), *want = malloc(BLOCK);
	uint64_t got = 0;
	unsigned frames = 0;
	double t0 = zt_now();
	bool more = true;
	int fd = zt_raw_connect(&d);

	send_req(fd, 2, ZAPPEND__OP__OP_GET, 0);
	while (more) {
		struct zap_frame fr;
		Zappend__Response *r = recv_resp(fd, &fr);

		zt_check(r->id == 2 && r->status == ZAPPEND__STATUS__STATUS_OK,
			 "get %s, frame %u: id %llu status %d: %s", when, frames,
			 (unsigned long long)r->id, r->status, r->message);
		if (!frames)
			zt_check(r->value_len == VLEN, "get %s: value_len %llu", when,
				 (unsigned long long)r->value_len);
		more = r->more;
		zappend__response__free_unpacked(r, NULL);
		zt_check(got + fr.plen <= VLEN, "get %s: more bytes than the value has", when);
		for (uint32_t left = fr.plen; left;) {
			uint32_t n = left < BLOCK ? left : BLOCK;

			recv_all(fd, buf, n);
			gen_range(want, got, n);
			if (memcmp(buf, want, n)) {
				uint32_t i = 0;

				while (buf[i] == want[i])
					i++;
				zt_fail("get %s: byte %llu differs", when,
					(unsigned long long)(got + i));
			}
			got += n;
			left -= n;
		}
		frames++;
	}
	zt_check(got == VLEN, "get %s: %llu bytes, not %llu", when, (unsigned long long)got,
		 (unsigned long long)VLEN);
	fprintf(stderr, "  get %s: 1 GiB in %u frames, byte-exact, in %.1f s\n", when, frames,
		zt_now() - t0);
	close(fd);
	free(buf);
	free(want);
}

int main(void)
{
	static const char *const args[] = { "--max-value", "2G",  "--size", "4G",
					    "--zone-size", "64M", NULL };

	zt_init(&d, args);
	zt_start(&d);
	put_value();
	check_hwm("after the put");
	get_value("after the put");
	check_hwm("after the get");
	zt_check(zt_stop(&d) == 0, "zappendd did not stop cleanly");
	zt_start(&d);
	get_value("after a restart");
	check_hwm("after the restart and get");
	zt_check(zt_stop(&d) == 0, "zappendd did not stop cleanly");
	zt_cleanup(&d);
	return 0;
}
