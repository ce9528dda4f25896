/*
 * A slow reader must not stop the writers (issue 13, finding 4). A client
 * starts a get of an 8 MiB value V on a raw socket and reads its answer a
 * few bytes at a time, slowly, all through the test. Meanwhile another
 * client overwrites V with a small value, deletes the values put just
 * before V in the zone where V begins, and overwrites other keys on a tiny
 * device (--size 64M --zone-size 4M, one open zone so V's chunks sit
 * together) until GC reclaims that zone for its dead values. V's chunks the
 * reader still reads are copied out of it, not lost, and not taken for
 * garbage either: a zone that holds only them gains nothing from a reclaim.
 *   - every put answers, each within 10 s (a hang guard, not a speed test);
 *   - the zone that held V's first chunk is reset meanwhile;
 *   - when the slow reader finally reads everything, it got either exactly
 *     the old V, or a clean error (an error frame, or the connection closed)
 *     after bytes that are all V's -- never wrong bytes.
 * Then every key reads back, before and after a restart.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"
#include "zappend.pb-c.h"

#define MiB	(1024u * 1024u)
#define VLEN	(8u * MiB)
#define V2LEN	4096u
#define HOT_LEN (256u * 1024u)
/*
 * 20 MiB live beside V, which the reader holds as if it were live too: the
 * 64 MiB device is then half full, and the overwrites keep GC busy.
 */
#define HOT_KEYS   80u
#define HOT_PUTS   640u /* about three times the device */
#define PUT_GUARD  10.0
#define SLOW_BYTES 16 /* a read of the slow reader */
#define FILLERS	   8  /* values of HOT_LEN put before V, deleted after its get starts */
#define SLOW_MS	   5  /* between two */

static struct zt_daemon d;

static struct {
	pthread_t th;
	int fd;
	atomic_bool fast; /* read the rest at full speed */
	uint8_t *buf;	  /* everything received */
	size_t len, cap;
	bool eof;
	char err[128];
} rd;

/* Whether rd.buf holds the last frame of the answer (parsing on from *off). */
static bool answer_complete(size_t *off)
{
	struct zap_frame fr;

	while (*off + ZAP_FRAME_PREFIX <= rd.len && !zap_frame_decode(rd.buf + *off, &fr) &&
	       *off + ZAP_FRAME_PREFIX + fr.hlen + fr.plen <= rd.len) {
		Zappend__Response *r =
		    zappend__response__unpack(NULL, fr.hlen, rd.buf + *off + ZAP_FRAME_PREFIX);
		bool last = !r || !r->more || r->status != ZAPPEND__STATUS__STATUS_OK;

		if (r)
			zappend__response__free_unpacked(r, NULL);
		*off += ZAP_FRAME_PREFIX + fr.hlen + fr.plen;
		if (last)
			return true;
	}
	return false;
}

static void *slow_reader(void *arg)
{
	size_t parsed = 0;
	double until = 0;

	(void)arg;
	for (;;) {
		struct pollfd pfd = { .fd = rd.fd, .events = POLLIN };
		bool fast = atomic_load(&rd.fast);
		size_t want = fast ? 65536 : SLOW_BYTES;
		ssize_t n;

		if (fast && !until)
			until = zt_now() + 30;
		if (fast && zt_now() > until) {
			snprintf(rd.err, sizeof(rd.err), "the answer did not end within 30 s");
			break;
		}
		if (poll(&pfd, 1, fast ? 100 : SLOW_MS) <= 0)
			continue;
		if (rd.len + want > rd.cap) {
			rd.cap = 2 * rd.cap + want;
			rd.buf = realloc(rd.buf, rd.cap);
			if (!rd.buf)
				abort();
		}
		n = recv(rd.fd, rd.buf + rd.len, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			rd.eof = true;
			break;
		}
		if (n < 0) {
			snprintf(rd.err, sizeof(rd.err), "recv: %s", strerror(errno));
			break;
		}
		rd.len += n;
		if (fast && answer_complete(&parsed))
			break;
		if (!fast)
			zt_sleep_ms(SLOW_MS);
	}
	return NULL;
}

/* Sends GET of key on fd as one raw frame. */
static void send_get(int fd, const char *key)
{
	Zappend__Request r = ZAPPEND__REQUEST__INIT;
	uint8_t buf[256];
	size_t n;

	r.id = 7;
	r.op = ZAPPEND__OP__OP_GET;
	r.key.data = (uint8_t *)key;
	r.key.len = strlen(key);
	n = zappend__request__pack(&r, buf + ZAP_FRAME_PREFIX);
	zap_frame_encode(buf, n, 0);
	zt_send_all(fd, buf, ZAP_FRAME_PREFIX + n);
}

/*
 * What the slow reader got: frames of request 7, whose payloads in order
 * are V (or its first part, then an error frame or the end of the stream).
 */
static void check_answer(const uint8_t *v)
{
	size_t off = 0, got = 0, vlen = 0;
	bool first = true, done = false;
	int status = 0;

	while (!done && off + ZAP_FRAME_PREFIX <= rd.len) {
		struct zap_frame fr;
		Zappend__Response *r;

		zt_check(!zap_frame_decode(rd.buf + off, &fr),
			 "slow reader: a broken frame prefix");
		if (off + ZAP_FRAME_PREFIX + fr.hlen + fr.plen > rd.len)
			break;
		r = zappend__response__unpack(NULL, fr.hlen, rd.buf + off + ZAP_FRAME_PREFIX);
		zt_check(r, "slow reader: a response that does not parse");
		zt_check(r->id == 7, "slow reader: an answer to request %" PRIu64, r->id);
		status = r->status;
		if (first && status == ZAPPEND__STATUS__STATUS_OK)
			vlen = r->value_len;
		first = false;
		if (status == ZAPPEND__STATUS__STATUS_OK) {
			const uint8_t *p = rd.buf + off + ZAP_FRAME_PREFIX + fr.hlen;

			zt_check(vlen == VLEN, "slow reader: value_len %zu, V has %u", vlen, VLEN);
			zt_check(got + fr.plen <= VLEN, "slow reader: more than V's bytes");
			if (memcmp(p, v + got, fr.plen)) {
				size_t i = 0;

				while (p[i] == v[got + i])
					i++;
				zt_fail(
				    "slow reader: wrong bytes at offset %zu of V (a zone reclaimed "
				    "under the reader, read back after it was rewritten?)",
				    got + i);
			}
			got += fr.plen;
		}
		done = !r->more || status != ZAPPEND__STATUS__STATUS_OK;
		zappend__response__free_unpacked(r, NULL);
		off += ZAP_FRAME_PREFIX + fr.hlen + fr.plen;
	}
	if (done && status == ZAPPEND__STATUS__STATUS_OK) {
		zt_check(got == VLEN, "slow reader: the answer ended after %zu of %u bytes", got,
			 VLEN);
		printf("slow reader: got all of the old V, byte-exact\n");
	} else if (done) {
		printf("slow reader: a clean error (status %d) after %zu bytes of V, all right\n",
		       status, got);
	} else {
		zt_check(rd.eof, "slow reader: the answer is incomplete (%zu bytes received; %s)",
			 rd.len, rd.err[0] ? rd.err : "no end of stream");
		printf("slow reader: the daemon closed the connection after %zu bytes of V, all "
		       "right\n",
		       got);
	}
}

static void hot_key(char *key, unsigned i)
{
	snprintf(key, 17, "hot/%012u", i);
}

int main(void)
{
	const char *args[] = { "--size", "64M",		 "--zone-size", "4M", "--sync",
			       "none",	 "--open-zones", "1",		NULL };
	uint8_t *v = malloc(VLEN), *v2 = malloc(V2LEN), *hot = malloc(HOT_LEN);
	uint32_t ver[HOT_KEYS] = { 0 };
	struct zap_put_info info;
	double t0 = zt_now(), slowest = 0;
	uint64_t state = 0, resets_before;
	uint64_t v_wp = 0;
	bool v_zone_reset = false;
	zap_client *c;
	int ret;

	zt_check(v && v2 && hot, "out of memory");
	zt_watchdog(90, "test-slowreader");
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	zt_fill(v, VLEN, 1);
	zt_fill(v2, V2LEN, 2);
	zt_fill(hot, HOT_LEN, 3);
	for (unsigned i = 0; i < FILLERS; i++) {
		char key[17];

		snprintf(key, sizeof(key), "fill/%011u", i);
		zt_ok(zap_put(c, key, 16, hot, HOT_LEN, NULL));
	}
	zt_ok(zap_put(c, "slow/v", 6, v, VLEN, &info));
	{
		struct zap_zone *zs;
		size_t nz;

		zt_ok(zap_zones(c, &zs, &nz));
		zt_check(info.zone < nz, "V's zone %u of %zu", info.zone, nz);
		v_wp = zs[info.zone].write_pointer;
		free(zs);
	}

	/* The get starts; its answer will be read a few bytes at a time. */
	rd.fd = zt_raw_connect(&d);
	/* ZT_FAST_READER=1: no slow reader, to see the rest of the test works without one. */
	if (getenv("ZT_FAST_READER"))
		atomic_store(&rd.fast, true);
	send_get(rd.fd, "slow/v");
	pthread_create(&rd.th, NULL, slow_reader, NULL);
	zt_sleep_ms(200);
	/* Dead values in the zone where V begins: GC has a reason to reclaim it. */
	for (unsigned i = 0; i < FILLERS; i++) {
		char key[17];

		snprintf(key, sizeof(key), "fill/%011u", i);
		zt_ok(zap_del(c, key, 16));
	}

	/* The writer: V overwritten, then the hot keys, over and over. */
	resets_before = zt_stat(c, "zones_reset");
	ret = zt_put_timed(c, "slow/v", 6, v2, V2LEN, PUT_GUARD);
	zt_check(ret == 0, "overwriting V while a slow reader reads it: %s",
		 ret == -ETIMEDOUT ? "not answered within 10 s" : zap_strerror(ret));
	for (unsigned i = 0; i < HOT_PUTS; i++) {
		unsigned k = i < HOT_KEYS ? i : zt_rand(&state) % HOT_KEYS;
		double t = zt_now();
		char key[17];

		hot_key(key, k);
		zt_fill(hot, HOT_LEN, (uint64_t)k << 32 | ++ver[k]);
		ret = zt_put_timed(c, key, 16, hot, HOT_LEN, PUT_GUARD);
		if (ret == -ETIMEDOUT)
			zt_fail(
			    "put %u of %u (%s) waited over %.0f s while a slow reader held a get "
			    "of V open (zones_reset %" PRIu64 ", gc_bytes_moved %" PRIu64 ")",
			    i + 1, HOT_PUTS, key, PUT_GUARD, zt_stat(c, "zones_reset"),
			    zt_stat(c, "gc_bytes_moved"));
		zt_check(ret == 0, "put %u of %u (%s): %s", i + 1, HOT_PUTS, key,
			 zap_strerror(ret));
		if (zt_now() - t > slowest)
			slowest = zt_now() - t;
		if (i % 8 == 0 && !v_zone_reset) {
			struct zap_zone *zs;
			size_t nz;

			/* Reset shows as a write pointer gone back, or an empty zone. */
			zt_ok(zap_zones(c, &zs, &nz));
			v_zone_reset = zs[info.zone].write_pointer < v_wp ||
				       !strcmp(zs[info.zone].state, "empty");
			free(zs);
		}
	}
	printf("%u puts of 256 KiB with a slow reader: slowest %.2f s; GC reset %" PRIu64
	       " zones, moved %" PRIu64 " MiB\n",
	       HOT_PUTS, slowest, zt_stat(c, "zones_reset") - resets_before,
	       zt_stat(c, "gc_bytes_moved") >> 20);
	zt_check(v_zone_reset,
		 "the zone that held V's first chunk (%u) was never reset: the test did not make "
		 "GC reclaim it",
		 info.zone);

	/* The reader reads the rest at full speed now. */
	atomic_store(&rd.fast, true);
	pthread_join(rd.th, NULL);
	close(rd.fd);
	check_answer(v);

	/* Everything the writer acknowledged. */
	for (int pass = 0; pass < 2; pass++) {
		void *got;
		size_t glen;

		zt_ok(zap_get(c, "slow/v", 6, &got, &glen));
		zt_check(glen == V2LEN && !memcmp(got, v2, V2LEN),
			 "V does not hold its new value%s", pass ? " after a restart" : "");
		free(got);
		for (unsigned k = 0; k < HOT_KEYS; k++) {
			char key[17];

			hot_key(key, k);
			zt_fill(hot, HOT_LEN, (uint64_t)k << 32 | ver[k]);
			zt_ok(zap_get(c, key, 16, &got, &glen));
			zt_check(glen == HOT_LEN && !memcmp(got, hot, HOT_LEN),
				 "%s does not hold its last value%s", key,
				 pass ? " after a restart" : "");
			free(got);
		}
		if (pass)
			break;
		zap_close(c);
		zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
		zt_start(&d);
		c = zt_connect(&d);
	}
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(rd.buf);
	free(v);
	free(v2);
	free(hot);
	printf("test-slowreader: PASS in %.1f s\n", zt_now() - t0);
	return 0;
}
