/*
 * Bad input against a real daemon, on raw sockets (frames written by hand
 * with the generated protobuf code), while a second client keeps putting and
 * getting values and checking them:
 *   (a) a frame header longer than the limit: that connection is closed, with
 *       one log line;
 *   (b) garbage protobuf in a well-framed message: INVALID, the connection
 *       goes on;
 *   (c) an unknown request type: INVALID, the connection goes on;
 *   (d) a key of 2000 bytes: TOO_LARGE; an empty key: INVALID;
 *   (e) a value over --max-value: TOO_LARGE once its payload was read and
 *       dropped, and the connection stays in step;
 *   (f) peers that send half a frame (a part of the header; a header and a
 *       part of a put's value) and go away: one log line each, the half put
 *       is not stored;
 *   (g) a peer that pipelines 5,000 gets of a 1 MiB value and never reads:
 *       the daemon stops reading from it, its memory does not grow without
 *       bound, other clients' requests complete promptly, and once the peer
 *       goes everything is released.
 *
 * Built twice: test-badinput runs (a) to (g); test-badinput-noread
 * (NOREAD_STRICT) runs (g) alone. (g) found that a peer's 1,024 admitted gets
 * could take the whole buffer pool before any answer was queued, so everyone
 * else waited; fixed by giving each connection a share of buffer memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "zappend.pb-c.h"

#define MAX_VALUE (2u << 20) /* the daemon's --max-value */
#define BIG	  (1u << 20)
#define NGREEDY	  5000u
#define IO_MS	  10000

static struct zt_daemon d;

/* --- raw frames --- */

/* A request frame; plen is the payload length announced (the bytes are sent apart). */
static size_t encode_req(uint8_t *out, uint64_t id, int op, const void *key, size_t klen,
			 uint32_t plen)
{
	Zappend__Request r = ZAPPEND__REQUEST__INIT;
	size_t n;

	r.id = id;
	r.op = op;
	r.key.data = (uint8_t *)key;
	r.key.len = klen;
	n = zappend__request__pack(&r, out + ZAP_FRAME_PREFIX);
	zap_frame_encode(out, n, plen);
	return ZAP_FRAME_PREFIX + n;
}

static void send_req(int fd, uint64_t id, int op, const void *key, size_t klen, uint32_t plen)
{
	uint8_t buf[4096];

	zt_send_all(fd, buf, encode_req(buf, id, op, key, klen, plen));
}

/* Reads len bytes within IO_MS: 0, or -1 at end of stream / reset, -2 on timeout. */
static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	double until = zt_now() + IO_MS / 1000.0;

	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 100) == 0) {
			if (zt_now() > until)
				return -2;
			continue;
		}
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return -1;
		if (n < 0)
			zt_fail("read: %s", strerror(errno));
		p += n;
		len -= n;
	}
	return 0;
}

/* One response frame; its payload is appended to *val (may be NULL: dropped). */
static Zappend__Response *read_resp(int fd, uint8_t **val, size_t *vlen)
{
	uint8_t pre[ZAP_FRAME_PREFIX], *h;
	struct zap_frame fr;
	Zappend__Response *r;
	int ret = read_full(fd, pre, sizeof(pre));

	if (ret)
		zt_fail("no response: %s", ret == -2 ? "timed out" : "connection closed");
	zt_check(!zap_frame_decode(pre, &fr), "a response header of %u bytes", fr.hlen);
	h = malloc(fr.hlen ? fr.hlen : 1);
	zt_check(h && !read_full(fd, h, fr.hlen), "reading a response header");
	r = zappend__response__unpack(NULL, fr.hlen, h);
	free(h);
	zt_check(r, "a response that does not parse");
	if (fr.plen) {
		uint8_t *p = malloc(fr.plen);

		zt_check(p && !read_full(fd, p, fr.plen), "reading a response payload");
		if (val) {
			*val = realloc(*val, *vlen + fr.plen);
			memcpy(*val + *vlen, p, fr.plen);
			*vlen += fr.plen;
		}
		free(p);
	}
	return r;
}

/* The answer to request id: its status (and, for a get, the whole value). */
static int expect_status(int fd, uint64_t id, uint8_t **val, size_t *vlen)
{
	Zappend__Response *r;
	int st;

	if (val) {
		*val = NULL;
		*vlen = 0;
	}
	r = read_resp(fd, val, vlen);
	zt_check(r->id == id, "a response to %llu, expected %llu (message: %s)",
		 (unsigned long long)r->id, (unsigned long long)id, r->message);
	st = r->status;
	while (r->more && r->status == ZAPPEND__STATUS__STATUS_OK) {
		zappend__response__free_unpacked(r, NULL);
		r = read_resp(fd, val, vlen);
		zt_check(r->id == id, "a value frame of %llu amid %llu's",
			 (unsigned long long)r->id, (unsigned long long)id);
		if (r->status != ZAPPEND__STATUS__STATUS_OK)
			st = r->status;
	}
	zappend__response__free_unpacked(r, NULL);
	return st;
}

/* The daemon closes fd: reads return end of stream (or a reset) within IO_MS. */
static void expect_closed(int fd, const char *what)
{
	uint8_t buf[4096];
	int ret;

	while ((ret = read_full(fd, buf, sizeof(buf))) == 0)
		;
	zt_check(ret == -1, "%s: the daemon did not close the connection", what);
}

/* A valid get on fd works: the connection is still in step. */
static void expect_in_step(int fd, uint64_t id, const char *what)
{
	uint8_t *val;
	size_t len;
	int st;

	send_req(fd, id, ZAPPEND__OP__OP_GET, "badinput/known", 14, 0);
	st = expect_status(fd, id, &val, &len);
	zt_check(st == ZAPPEND__STATUS__STATUS_OK && len == 5 && !memcmp(val, "known", 5),
		 "%s: a get after it failed (status %d, %zu bytes)", what, st, len);
	free(val);
}

/* --- the daemon's log and memory --- */

static size_t log_lines(void)
{
	FILE *f = fopen(d.log, "r");
	size_t n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* The log's line number `from` on (0-based), or "" */
static void log_tail(size_t from, char *out, size_t len)
{
	FILE *f = fopen(d.log, "r");
	char line[1024];
	size_t n = 0;

	out[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (n++ >= from && strlen(out) + strlen(line) < len)
			strcat(out, line);
	}
	if (f)
		fclose(f);
}

/* Exactly one line was logged since `before` (waiting for it), and it mentions word. */
static void expect_one_log_line(size_t before, const char *word, const char *what)
{
	char tail[4096];
	size_t n = before;

	for (int i = 0; i < 500 && n == before; i++) {
		zt_sleep_ms(10);
		n = log_lines();
	}
	zt_sleep_ms(200); /* a second line would come now */
	n = log_lines();
	log_tail(before, tail, sizeof(tail));
	zt_check(n == before + 1, "%s: %zu log lines, not one:\n%s", what, n - before, tail);
	zt_check(strstr(tail, word), "%s: the log line does not mention '%s': %s", what, word,
		 tail);
	fprintf(stderr, "  logged: %s", tail);
}

/* --- the other client: puts and gets all along, each checked --- */

static struct {
	pthread_t th;
	volatile int stop;
	unsigned ops;
	double worst;  /* slowest put or get, seconds */
	double cur_t0; /* when the put and get under way began, 0 if none */
	char err[256];
	pthread_mutex_t lock;
} bg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *bg_main(void *arg)
{
	zap_client *c = zt_connect(&d);
	unsigned n = 0;

	while (!bg.stop) {
		char key[32];
		size_t len = 1 + (n * 7919) % 65536, glen;
		uint8_t *val = malloc(len);
		void *got;
		double t0 = zt_now(), t;
		int ret;

		pthread_mutex_lock(&bg.lock);
		bg.cur_t0 = t0;
		pthread_mutex_unlock(&bg.lock);
		zt_fill(val, len, n);
		snprintf(key, sizeof(key), "bg/%u", n % 64);
		ret = zap_put(c, key, strlen(key), val, len, NULL);
		if (!ret)
			ret = zap_get(c, key, strlen(key), &got, &glen);
		t = zt_now() - t0;
		pthread_mutex_lock(&bg.lock);
		if (ret && !bg.err[0])
			snprintf(bg.err, sizeof(bg.err), "put/get %s: %s", key, zap_strerror(ret));
		if (!ret && (glen != len || memcmp(got, val, len)) && !bg.err[0])
			snprintf(bg.err, sizeof(bg.err), "%s: read back %zu bytes, not the %zu put",
				 key, glen, len);
		if (t > bg.worst)
			bg.worst = t;
		bg.cur_t0 = 0;
		bg.ops++;
		pthread_mutex_unlock(&bg.lock);
		if (!ret)
			free(got);
		free(val);
		n++;
	}
	zap_close(c);
	return arg;
}

static void bg_check(const char *when)
{
	pthread_mutex_lock(&bg.lock);
	zt_check(!bg.err[0], "the other client, %s: %s", when, bg.err);
	pthread_mutex_unlock(&bg.lock);
}

/* --- the cases --- */

__attribute__((unused)) static void case_header_too_long(void)
{
	size_t before = log_lines();
	uint8_t buf[ZAP_FRAME_PREFIX + 10];
	int fd = zt_raw_connect(&d);

	/* One send: the daemon may close as soon as it has read the prefix. */
	zap_frame_encode(buf, ZAP_FRAME_MAX_HEADER + 1, 0);
	memcpy(buf + ZAP_FRAME_PREFIX, "0123456789", 10);
	zt_send_all(fd, buf, sizeof(buf));
	expect_closed(fd, "(a) header too long");
	close(fd);
	expect_one_log_line(before, "header", "(a) header too long");
}

__attribute__((unused)) static void case_garbage(void)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					0xff, 0xff, 0xff, 0xff, 0x0f, 0x1a, 0x7f };
	uint8_t pre[ZAP_FRAME_PREFIX];
	int fd = zt_raw_connect(&d), st;

	zap_frame_encode(pre, sizeof(junk), 3);
	zt_send_all(fd, pre, sizeof(pre));
	zt_send_all(fd, junk, sizeof(junk));
	zt_send_all(fd, "abc", 3); /* its payload, to be skipped */
	st = expect_status(fd, 0, NULL, NULL);
	zt_check(st == ZAPPEND__STATUS__STATUS_INVALID, "(b) garbage protobuf: status %d", st);
	expect_in_step(fd, 2, "(b) garbage protobuf");
	close(fd);
}

__attribute__((unused)) static void case_unknown_op(void)
{
	int fd = zt_raw_connect(&d), st;

	send_req(fd, 5, 99, "k", 1, 4);
	zt_send_all(fd, "abcd", 4);
	st = expect_status(fd, 5, NULL, NULL);
	zt_check(st == ZAPPEND__STATUS__STATUS_INVALID, "(c) unknown op: status %d", st);
	expect_in_step(fd, 6, "(c) unknown op");
	close(fd);
}

__attribute__((unused)) static void case_keys(void)
{
	static char longkey[2000];
	int fd = zt_raw_connect(&d), st;

	memset(longkey, 'x', sizeof(longkey));
	send_req(fd, 10, ZAPPEND__OP__OP_PUT, longkey, sizeof(longkey), 6);
	zt_send_all(fd, "value!", 6);
	st = expect_status(fd, 10, NULL, NULL);
	zt_check(st == ZAPPEND__STATUS__STATUS_TOO_LARGE, "(d) put of a 2000-byte key: status %d",
		 st);
	send_req(fd, 11, ZAPPEND__OP__OP_GET, longkey, sizeof(longkey), 0);
	st = expect_status(fd, 11, NULL, NULL);
	zt_check(st == ZAPPEND__STATUS__STATUS_TOO_LARGE, "(d) get of a 2000-byte key: status %d",
		 st);
	send_req(fd, 12, ZAPPEND__OP__OP_PUT, "", 0, 6);
	zt_send_all(fd, "value!", 6);
	st = expect_status(fd, 12, NULL, NULL);
	zt_check(st == ZAPPEND__STATUS__STATUS_INVALID, "(d) put of an empty key: status %d", st);
	send_req(fd, 13, ZAPPEND__OP__OP_GET, "", 0, 0);
	st = expect_status(fd, 13, NULL, NULL);
	zt_check(st == ZAPPEND__STATUS__STATUS_INVALID, "(d) get of an empty key: status %d", st);
	expect_in_step(fd, 14, "(d) bad keys");
	close(fd);
}

__attribute__((unused)) static void case_value_too_large(void)
{
	size_t len = MAX_VALUE + 1;
	uint8_t *val = malloc(len);
	int fd = zt_raw_connect(&d), st;
	zap_client *c = zt_connect(&d);
	void *got;
	size_t glen;

	zt_fill(val, len, 77);
	send_req(fd, 20, ZAPPEND__OP__OP_PUT, "badinput/too-large", 18, len);
	zt_send_all(fd, val, len); /* all of it: the daemon reads and drops it */
	st = expect_status(fd, 20, NULL, NULL);
	zt_check(st == ZAPPEND__STATUS__STATUS_TOO_LARGE, "(e) value over --max-value: status %d",
		 st);
	expect_in_step(fd, 21, "(e) value over --max-value");
	close(fd);
	zt_check(zap_get(c, "badinput/too-large", 18, &got, &glen) == -ENOENT,
		 "(e) the refused value was stored");
	zap_close(c);
	free(val);
}

__attribute__((unused)) static void case_half_frames(void)
{
	uint8_t buf[4096];
	size_t n, before = log_lines();
	zap_client *c = zt_connect(&d);
	void *got;
	size_t glen;
	int fd = zt_raw_connect(&d);

	/* The prefix and half the header, then gone. */
	n = encode_req(buf, 30, ZAPPEND__OP__OP_GET, "badinput/known", 14, 0);
	zt_send_all(fd, buf, ZAP_FRAME_PREFIX + (n - ZAP_FRAME_PREFIX) / 2);
	zt_sleep_ms(50);
	close(fd);
	expect_one_log_line(before, "away", "(f) half a header");

	/* A put's header and half its value, then gone: the put must not be stored. */
	before = log_lines();
	fd = zt_raw_connect(&d);
	n = encode_req(buf, 31, ZAPPEND__OP__OP_PUT, "badinput/half-put", 17, 3000);
	zt_send_all(fd, buf, n);
	zt_send_all(fd, buf, 1500);
	zt_sleep_ms(50);
	close(fd);
	expect_one_log_line(before, "away", "(f) half a value");
	zt_check(zap_get(c, "badinput/half-put", 17, &got, &glen) == -ENOENT,
		 "(f) the half put was stored");
	zap_close(c);
}

static uint64_t stat_of(const char *name)
{
	zap_client *c = zt_connect(&d);
	uint64_t v = zt_stat(c, name);

	zap_close(c);
	return v;
}

static void case_never_reads(void)
{
	uint8_t *big = malloc(BIG), *frames = malloc(NGREEDY * 64), *val;
	size_t flen = 0, sent = 0, len;
	zap_client *c = zt_connect(&d);
	long rss0, rss, rss_max = 0;
	uint64_t gets0, pool, pool_free;
	unsigned ops0;
	double t0, worst, until;
	int fd, st;

	zt_fill(big, BIG, 4242);
	zt_ok(zap_put(c, "badinput/big", 12, big, BIG, NULL));
	for (unsigned i = 0; i < NGREEDY; i++)
		flen +=
		    encode_req(frames + flen, 1000 + i, ZAPPEND__OP__OP_GET, "badinput/big", 12, 0);
	gets0 = stat_of("gets");
	rss0 = zt_proc_kib(&d, "VmRSS:");
	pthread_mutex_lock(&bg.lock);
	ops0 = bg.ops;
	bg.worst = 0;
	pthread_mutex_unlock(&bg.lock);

	/* Send all the gets we can, never reading an answer. */
	fd = zt_raw_connect(&d);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	t0 = zt_now();
	until = t0 + 4;
	while (zt_now() < until) {
		if (sent < flen) {
			ssize_t w = send(fd, frames + sent, flen - sent, MSG_NOSIGNAL);

			if (w > 0)
				sent += w;
			else if (errno != EAGAIN)
				zt_fail("(g) send: %s", strerror(errno));
		}
		rss = zt_proc_kib(&d, "VmRSS:");
		rss_max = rss > rss_max ? rss : rss_max;
		zt_sleep_ms(20);
	}
	pthread_mutex_lock(&bg.lock);
	worst = bg.worst;
	if (bg.cur_t0 && zt_now() - bg.cur_t0 > worst)
		worst = zt_now() - bg.cur_t0; /* one still waiting counts too */
	ops0 = bg.ops - ops0;
	pthread_mutex_unlock(&bg.lock);
	bg_check("while a peer did not read");
	fprintf(stderr,
		"  (g) %zu of %zu request bytes sent; daemon RSS %ld -> %ld KiB at most; "
		"the other client: %u puts+gets, the slowest %.3f s; gets done %llu\n",
		sent, flen, rss0, rss_max, ops0, worst,
		(unsigned long long)(stat_of("gets") - gets0));
	zt_check(rss_max - rss0 < 200 * 1024, "(g) the daemon grew by %ld KiB", rss_max - rss0);
	/* Each put+get of the other client is one get; the rest are the peer's. */
	zt_check(stat_of("gets") - gets0 < NGREEDY + ops0,
		 "(g) the daemon answered every get of a peer that reads nothing");
	zt_check(ops0 >= 10, "(g) the other client got %u puts+gets done in 4 s", ops0);
	zt_check(worst < 3.0, "(g) a put or get of the other client took %.3f s", worst);

	/* The peer goes: everything it held comes back, and the other client goes on. */
	close(fd);
	pthread_mutex_lock(&bg.lock);
	ops0 = bg.ops;
	pthread_mutex_unlock(&bg.lock);
	for (int i = 0; i < 500 && bg.ops < ops0 + 3; i++)
		zt_sleep_ms(10);
	zt_check(bg.ops >= ops0 + 3, "(g) the other client is still stuck 5 s after the peer left");
	pool = stat_of("buffer_pool_bytes");
	for (int i = 0; i < 500; i++) {
		pool_free = stat_of("buffer_pool_free");
		if (pool_free + 8 * BIG >= pool)
			break;
		zt_sleep_ms(10);
	}
	zt_check(pool_free + 8 * BIG >= pool,
		 "(g) %llu of %llu pool bytes free after the peer left",
		 (unsigned long long)pool_free, (unsigned long long)pool);
	fd = zt_raw_connect(&d);
	send_req(fd, 1, ZAPPEND__OP__OP_GET, "badinput/big", 12, 0);
	st = expect_status(fd, 1, &val, &len);
	zt_check(st == ZAPPEND__STATUS__STATUS_OK && len == BIG && !memcmp(val, big, BIG),
		 "(g) a get after the peer left: status %d, %zu bytes", st, len);
	free(val);
	close(fd);
	zap_close(c);
	free(frames);
	free(big);
}

int main(void)
{
	static const char *const args[] = { "--max-value", "2M", "--sync", "none", NULL };
	zap_client *c;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	zt_ok(zap_put(c, "badinput/known", 14, "known", 5, NULL));
	zap_close(c);
	pthread_create(&bg.th, NULL, bg_main, NULL);
#ifdef NOREAD_STRICT
	fprintf(stderr, "(g) a peer that never reads its answers: others must not wait\n");
	case_never_reads();
#else

	fprintf(stderr, "(a) a header longer than the limit\n");
	case_header_too_long();
	fprintf(stderr, "(b) garbage protobuf\n");
	case_garbage();
	fprintf(stderr, "(c) an unknown request type\n");
	case_unknown_op();
	fprintf(stderr, "(d) a key too long, an empty key\n");
	case_keys();
	fprintf(stderr, "(e) a value over --max-value\n");
	case_value_too_large();
	fprintf(stderr, "(f) half a frame, then gone\n");
	case_half_frames();
	bg_check("after (a)-(f)");
	fprintf(stderr, "(g) a peer that never reads its answers\n");
	case_never_reads();
#endif

	bg.stop = 1;
	pthread_join(bg.th, NULL);
	bg_check("at the end");
	fprintf(stderr, "the other client: %u puts+gets, all intact\n", bg.ops);
	zt_check(zt_stop(&d) == 0, "zappendd did not stop cleanly");
	zt_cleanup(&d);
	return 0;
}
