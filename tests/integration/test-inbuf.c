/*
 * A connection's input buffer grows to hold a large request header (up to
 * 1 MiB) and goes back to its usual size once that request is read (issue
 * 13, finding 9): many connections that each sent one large header and then
 * sit idle must not each keep a megabyte of the daemon's memory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "zappend.pb-c.h"

#define CONNS	48
#define KEY_LEN (1000u * 1000u) /* a STAT ignores its key: only the header is large */

/* Reads one whole response frame, whatever it says. */
static void read_frame(int fd)
{
	uint8_t pre[ZAP_FRAME_PREFIX], buf[4096];
	struct zap_frame fr;
	size_t left;

	for (size_t got = 0; got < sizeof(pre);) {
		ssize_t n = read(fd, pre + got, sizeof(pre) - got);

		zt_check(n > 0, "no answer to a large header");
		got += n;
	}
	zt_check(!zap_frame_decode(pre, &fr), "a broken answer");
	for (left = (size_t)fr.hlen + fr.plen; left;) {
		ssize_t n = read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));

		zt_check(n > 0, "the answer was cut short");
		left -= n;
	}
}

int main(void)
{
	const char *args[] = { "--size", "64M", "--zone-size", "4M", NULL };
	Zappend__Request r = ZAPPEND__REQUEST__INIT;
	uint8_t *frame = malloc(ZAP_FRAME_PREFIX + KEY_LEN + 64), *key = calloc(1, KEY_LEN);
	struct zt_daemon d;
	int fds[CONNS];
	uint64_t held;
	zap_client *c;
	size_t n;

	zt_check(frame && key, "out of memory");
	zt_watchdog(60, "test-inbuf");
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	r.op = ZAPPEND__OP__OP_STAT;
	r.key.data = key;
	r.key.len = KEY_LEN;
	n = zappend__request__pack(&r, frame + ZAP_FRAME_PREFIX);
	zt_check(n <= ZAP_FRAME_MAX_HEADER, "the header is over the limit");
	zap_frame_encode(frame, n, 0);
	for (int i = 0; i < CONNS; i++) {
		fds[i] = zt_raw_connect(&d);
		zt_send_all(fds[i], frame, ZAP_FRAME_PREFIX + n);
		read_frame(fds[i]);
	}
	/* Every connection is still open, idle, its large request answered. */
	held = zt_stat(c, "connection_buffer_bytes");
	printf("%d idle connections after a header of %zu bytes each: their input buffers hold "
	       "%" PRIu64 " bytes\n",
	       CONNS, n, held);
	zt_check(held < (uint64_t)CONNS * 256 * 1024,
		 "%d idle connections hold %" PRIu64 " bytes of input buffers: each keeps the "
		 "room its large header took",
		 CONNS, held);
	for (int i = 0; i < CONNS; i++)
		close(fds[i]);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(frame);
	free(key);
	return 0;
}
