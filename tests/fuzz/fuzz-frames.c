/*
 * fuzz-frames, and fuzz-resp (built from this file with FUZZ_RESP): the
 * daemon's real input path, native frames or RESP. Once per process: an event loop,
 * the io_uring, a small buffer pool, an emulated zoned device in a temporary
 * directory, a store and a server listening on a temporary socket, all as
 * zappendd sets them up. Per input: a client connects to that socket, the
 * input is written as the client's byte stream, in pieces of 1 to 512 bytes
 * that the daemon reads one at a time, and the write side shut, and
 * the event loop runs until the daemon has closed the connection, reading
 * (and checking the framing of) everything the daemon answers so that its
 * responses never block. That covers the frame parser, protobuf decoding,
 * dispatch, the put/get/delete/list/stat/zones paths, limits, backpressure
 * and the response writer.
 *
 * fuzz-resp writes the input to the RESP listener instead, and checks that
 * everything the daemon answers is well-formed RESP: replies, each whole.
 *
 * The store is formatted again after any input that wrote to it, so that each
 * input runs against the same empty store and a crash reproduces alone.
 * A connection still open 10 s after its input ended is reported as a hang.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "dev.h"
#include "frame.h"
#include "fuzz-util.h"
#include "log.h"
#include "pool.h"
#include "ring.h"
#include "server.h"
#include "recovery.h"
#include "store.h"
#include "zappend.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define ZONE_SIZE (2 * MiB)
#define NR_ZONES  8
#define POOL	  (256 * KiB) /* small, so that puts and gets wait for buffers */
#define REC_MAX	  (16 * KiB)  /* small records: values of a few KiB take several chunks */
#define MAX_VALUE (256 * KiB)
#define HANG_MS	  10000

static struct {
	struct zlog log;
	struct event_base *base;
	struct event *tick;
	struct zdev *dev;
	struct zring ring;
	struct zpool pool;
	struct store store;
	struct server srv;
	char img[300];
	char sock[300];
	char resp[310];
} D;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static void mount(bool format)
{
	struct store_cfg cfg = { .max_value = MAX_VALUE, .sync = false, .open_zones = 2 };
	struct zerr err = { "" };

	if (store_init(&D.store, D.dev, &D.ring, &D.pool, &cfg))
		fz_die("store_init failed");
	if (store_mount(&D.store, format, &err))
		fz_die("store_mount: %s", err.msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct event_config *ecfg = event_config_new();
	struct zdev_opts dopt = { .backend = "file",
				  .size = NR_ZONES * ZONE_SIZE,
				  .zone_size = ZONE_SIZE,
				  .format = true };
	struct server_cfg scfg = { .max_connections = 16 };
	struct zerr err = { "" };
	int ret;

	zlog_init(&D.log, getenv("FUZZ_VERBOSE") ? LOG_DEBUG : LOG_CRIT);
	signal(SIGPIPE, SIG_IGN);
	snprintf(D.img, sizeof(D.img), "%s/zones.img", fz_tmpdir());
	snprintf(D.sock, sizeof(D.sock), "%s/zappend.sock", fz_tmpdir());
	snprintf(D.resp, sizeof(D.resp), "unix:%s/resp.sock", fz_tmpdir());
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
	D.base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (!D.base || event_base_priority_init(D.base, 2))
		fz_die("event_base");
	D.tick = event_new(D.base, -1, 0, on_tick, NULL);
	dopt.path = D.img;
	if (zdev_open(&dopt, &D.dev, &err))
		fz_die("zdev_open: %s", err.msg);
	ret = zring_init(&D.ring, D.base, 256, D.dev->info.ring_flags);
	if (ret)
		fz_die("zring_init: %s", strerror(-ret));
	if (zpool_init(&D.pool, POOL, REC_MAX))
		fz_die("zpool_init");
	zring_register_buffer(&D.ring, D.pool.base, D.pool.size);
	zdev_attach(D.dev, &D.ring, &D.pool);
	mount(true);
	scfg.socket_path = D.sock;
#ifdef FUZZ_RESP
	scfg.resp = D.resp;
#endif
	if (server_start(&D.srv, D.base, &D.store, &D.log, &scfg, &err))
		fz_die("server_start: %s", err.msg);
	return 0;
}

/* Runs what is ready; with wait, blocks up to a millisecond for something to be. */
static void turn(bool wait)
{
	static const struct timeval ms = { 0, 1000 };

	if (!wait) {
		event_base_loop(D.base, EVLOOP_NONBLOCK);
		return;
	}
	event_add(D.tick, &ms);
	event_base_loop(D.base, EVLOOP_ONCE);
	event_del(D.tick);
}

/* --- the daemon's answers: every reply must be one a client can parse --- */

#ifdef FUZZ_RESP
#define RX_MAX (64u << 20)

struct rx {
	uint8_t *buf; /* all the connection's answers */
	size_t len, cap;
	uint64_t frames;
};

static void rx_bytes(struct rx *rx, const uint8_t *p, size_t n)
{
	if (rx->len + n > RX_MAX)
		fz_die("the daemon answered more than %u bytes", RX_MAX);
	if (rx->len + n > rx->cap) {
		rx->cap = MAX(rx->cap * 2, rx->len + n);
		rx->buf = realloc(rx->buf, rx->cap);
		if (!rx->buf)
			fz_die("out of memory");
	}
	memcpy(rx->buf + rx->len, p, n);
	rx->len += n;
}

/* One reply at *at: false if the bytes end inside it; malformed ones fail. */
static bool resp_reply(const struct rx *rx, size_t *at, int depth)
{
	const uint8_t *p = rx->buf + *at, *end = rx->buf + rx->len;
	const uint8_t *nl = memchr(p, '\n', end - p);
	long long n;
	char *e;

	if (!nl)
		return false;
	if (nl == p || nl[-1] != '\r' || depth > 4)
		fz_die("a reply line without CRLF at byte %zu", *at);
	*at += nl + 1 - p;
	switch (*p) {
	case '+':
		return true;
	case '-':
		if (strncmp((const char *)p + 1, "ERR ", 4) &&
		    strncmp((const char *)p + 1, "NOAUTH", 6) &&
		    strncmp((const char *)p + 1, "WRONGPASS", 9) &&
		    strncmp((const char *)p + 1, "NOPROTO", 7))
			fz_die("an error reply of an unknown kind: %.40s", p);
		return true;
	case ':':
	case '$':
	case '*':
		n = strtoll((const char *)p + 1, &e, 10);
		if ((const uint8_t *)e != nl - 1 || (*p != ':' && n < -1))
			fz_die("a reply with a bad number: %.40s", p);
		break;
	default:
		fz_die("a reply of unknown type 0x%02x", *p);
	}
	if (*p == '$' && n >= 0) {
		if ((size_t)(end - rx->buf) < *at + n + 2)
			return false;
		if (rx->buf[*at + n] != '\r' || rx->buf[*at + n + 1] != '\n')
			fz_die("a bulk reply not as long as it said");
		*at += n + 2;
	}
	for (long long i = 0; *p == '*' && i < n; i++)
		if (!resp_reply(rx, at, depth + 1))
			return false;
	return true;
}

/*
 * Once the connection closed: every byte is part of a whole reply, but for
 * the last when the daemon closed it cut short (EOF inside a value).
 */
static void rx_check(struct rx *rx, bool cut)
{
	size_t at = 0;

	while (at < rx->len) {
		if (!resp_reply(rx, &at, 0)) {
			if (!cut)
				fz_die("a reply cut short at byte %zu", at);
			break;
		}
		rx->frames++;
	}
	rx->len = 0;
}

static void rx_reset(struct rx *rx)
{
	rx->len = 0;
	rx->frames = 0;
}

#define CONNS(srv) ((srv)->resp.n)
#define CUTS(srv)  ((srv)->resp.cut_short)
#define SOCK	   (D.resp + 5)
#else
struct rx {
	uint8_t buf[ZAP_FRAME_PREFIX + ZAP_FRAME_MAX_HEADER];
	size_t have; /* bytes of prefix + header buffered */
	struct zap_frame fr;
	bool in_payload; /* prefix and header done: skipping fr.plen bytes */
	uint64_t skip;
	uint64_t frames;
};

static void rx_bytes(struct rx *rx, const uint8_t *p, size_t n)
{
	while (n) {
		size_t take;

		if (rx->in_payload) {
			take = MIN(n, rx->skip);
			rx->skip -= take;
			p += take;
			n -= take;
			if (!rx->skip)
				rx->in_payload = false;
			continue;
		}
		if (rx->have < ZAP_FRAME_PREFIX) {
			take = MIN(n, ZAP_FRAME_PREFIX - rx->have);
			memcpy(rx->buf + rx->have, p, take);
			rx->have += take;
			p += take;
			n -= take;
			if (rx->have < ZAP_FRAME_PREFIX)
				continue;
			if (zap_frame_decode(rx->buf, &rx->fr) ||
			    rx->fr.hlen > sizeof(rx->buf) - ZAP_FRAME_PREFIX)
				fz_die("the daemon sent a frame header of %u bytes", rx->fr.hlen);
		}
		take = MIN(n, ZAP_FRAME_PREFIX + rx->fr.hlen - rx->have);
		memcpy(rx->buf + rx->have, p, take);
		rx->have += take;
		p += take;
		n -= take;
		if (rx->have == ZAP_FRAME_PREFIX + rx->fr.hlen) {
			Zappend__Response *r = zappend__response__unpack(
			    NULL, rx->fr.hlen, rx->buf + ZAP_FRAME_PREFIX);

			if (!r)
				fz_die("the daemon sent a response that does not parse");
			if (r->status > ZAPPEND__STATUS__STATUS_SNAPSHOT_GONE)
				fz_die("the daemon sent status %d", r->status);
			zappend__response__free_unpacked(r, NULL);
			rx->frames++;
			rx->have = 0;
			rx->skip = rx->fr.plen;
			rx->in_payload = rx->skip > 0;
		}
	}
}

static void rx_check(struct rx *rx, bool cut)
{
}

static void rx_reset(struct rx *rx)
{
	rx->have = 0;
	rx->in_payload = false;
	rx->frames = 0;
}

#define CONNS(srv) ((srv)->conns.n)
#define CUTS(srv)  ((srv)->conns.cut_short)
#define SOCK	   D.sock
#endif

/* Reads what the daemon sent: 1 once it closed the connection. */
static int drain(int fd, struct rx *rx, bool *progress)
{
	uint8_t buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			rx_bytes(rx, buf, n);
			*progress = true;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return 1;
		return 0;
	}
}

/* The store back to freshly formatted, once everything in flight has ended. */
static void reformat(void)
{
	uint64_t until = fz_now_ms() + HANG_MS;

	store_stop(&D.store);
	while (!store_idle(&D.store) || D.ring.inflight || D.ring.backlog || D.ring.queued) {
		if (fz_now_ms() > until)
			fz_die("hang: the store is still busy %d ms after its connection closed",
			       HANG_MS);
		turn(true);
	}
	store_done(&D.store);
	mount(true);
}

static bool store_dirty(void)
{
	for (uint32_t i = 1; i < D.store.zones.n; i++) {
		if (D.store.zones.z[i].used)
			return true;
	}
	return !store_idle(&D.store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static struct rx rx;
	uint64_t accepted = D.srv.st.connections, cuts = CUTS(&D.srv), until = 0;
	uint64_t give_up = fz_now_ms() + 3 * HANG_MS;
	size_t sent = 0;
	bool shut = false, closed = false;
	int fd;

	rx_reset(&rx);
	strcpy(sa.sun_path, SOCK);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fz_die("connect %s: %s", SOCK, strerror(errno));
	while (!closed || CONNS(&D.srv) || D.srv.st.connections == accepted) {
		bool progress = false;

		if (sent < size) {
			/* Pieces of 1 to 512 bytes: the parsers resume across reads. */
			size_t piece = 1 + (sent * 2654435761u ^ size) % 512;
			ssize_t w = write(fd, data + sent, MIN(piece, size - sent));

			if (w > 0) {
				sent += w;
				progress = true;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				sent = size; /* the daemon closed the connection */
			}
		}
		if (sent == size && !shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
			until = fz_now_ms() + HANG_MS;
		}
		if (!closed && drain(fd, &rx, &progress))
			closed = true;
		turn(false);
		if (!progress)
			turn(true);
		if ((shut && fz_now_ms() > until) || fz_now_ms() > give_up)
			fz_die("hang: the connection is still open %d ms after the input ended "
			       "(%llu response frames read)",
			       HANG_MS, (unsigned long long)rx.frames);
	}
	close(fd);
	rx_check(&rx, CUTS(&D.srv) != cuts);
	if (!getenv("FUZZ_NO_REFORMAT") && store_dirty())
		reformat();
	return 0;
}
