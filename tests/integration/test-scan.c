/*
 * SCAN over the real socket: a step's work is bounded by its count, every key
 * present for a whole scan comes exactly once (while other clients put and
 * delete between steps), deleted keys never, a prefix holds, and a cursor the
 * daemon did not give, or gave before a restart, is refused with INVALID.
 * zap_list, built on it, still lists in byte order: checked against qsort on
 * keys made to be hard for its radix sort (prefixes of each other, bytes 0x00
 * and 0xff, long shared prefixes, runs past its insertion-sort cutoff).
 * Steps yield to other clients' requests (they wait, counted in
 * scan_steps_paced), and run at once when none come; a dozen listings at
 * once take turns rather than all waking each time one may go on.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N	 4000
#define NEW_KEYS 3000

struct seen {
	unsigned times[N];
	unsigned fresh;	 /* keys put during the scan, seen */
	unsigned others; /* keys without the prefix, seen */
	size_t step;
};

static int seen_key(const void *key, size_t klen, void *arg)
{
	struct seen *sn = arg;
	char buf[64];
	unsigned i;

	zt_check(klen < sizeof(buf), "a key of %zu bytes", klen);
	memcpy(buf, key, klen);
	buf[klen] = 0;
	sn->step++;
	if (sscanf(buf, "scan/%u", &i) == 1) {
		zt_check(i < N, "unexpected key %s", buf);
		sn->times[i]++;
	} else if (!strncmp(buf, "scan-new/", 9)) {
		sn->fresh++;
	} else {
		sn->others++;
	}
	return 0;
}

static void put_key(zap_client *c, const char *fmt, unsigned i)
{
	char key[64];

	snprintf(key, sizeof(key), fmt, i);
	zt_ok(zap_put(c, key, strlen(key), key, strlen(key), NULL));
}

/* Keys deleted before a scan (every 7th) and during one (from 3000 up). */
static bool gone[N];

static void del_key(zap_client *c, unsigned i)
{
	char key[64];

	if (gone[i])
		return;
	snprintf(key, sizeof(key), "scan/%05u", i);
	zt_ok(zap_del(c, key, strlen(key)));
	gone[i] = true;
}

/* A scan in steps of 100 while another client puts new keys and deletes others. */
static void scan_during_churn(zap_client *c, zap_client *other)
{
	static struct seen sn;
	uint64_t cursor = 0;
	unsigned steps = 0, next = 0, most = 0;

	do {
		sn.step = 0;
		zt_ok(zap_scan(c, "scan", 4, &cursor, 100, seen_key, &sn));
		most = sn.step > most ? sn.step : most;
		steps++;
		for (unsigned j = 0; j < 20 && next < NEW_KEYS; j++)
			put_key(other, "scan-new/%05u", next++);
		/* Keys 3000 and up go while the scan runs. */
		if (3000 + steps < N)
			del_key(other, 3000 + steps);
	} while (cursor);
	zt_check(steps > 20, "a scan of %u keys in steps of 100 took only %u steps", N, steps);
	zt_check(most <= 400, "a step of count 100 handed over %u keys", most);
	zt_check(!sn.others, "%u keys without the prefix listed", sn.others);
	for (unsigned i = 0; i < N; i++) {
		if (i % 7 == 0)
			zt_check(!sn.times[i], "deleted key scan/%05u listed", i);
		else if (i < 3000)
			zt_check(sn.times[i] == 1, "key scan/%05u listed %u times", i, sn.times[i]);
		else
			zt_check(sn.times[i] <= 1, "key scan/%05u listed %u times", i, sn.times[i]);
	}
	zt_check(sn.fresh <= NEW_KEYS, "keys put during the scan listed twice");
}

/* Every key present (not gone) came once. */
static void check_all_once(const struct seen *sn, const char *what)
{
	for (unsigned i = 0; i < N; i++)
		zt_check(sn->times[i] == !gone[i], "%s: key scan/%05u listed %u times", what, i,
			 sn->times[i]);
}

/*
 * A listing yields to requests: a step right behind another client's request
 * waits (scan_steps_paced counts it) and still hands over every key once;
 * with no request for a while, steps run at once.
 */
static void scan_yields(zap_client *c, zap_client *other)
{
	static struct seen sn;
	uint64_t cursor = 0, before = zt_stat(c, "scan_steps_paced"), paced;
	unsigned steps = 0;

	do {
		put_key(other, "yield/%05u", steps++);
		zt_ok(zap_scan(c, "scan/", 5, &cursor, 100, seen_key, &sn));
	} while (cursor);
	paced = zt_stat(c, "scan_steps_paced") - before;
	zt_check(paced > 0, "%u steps, each right behind a put: none waited", steps);
	check_all_once(&sn, "a scan that yields to puts");
	printf("a scan of %u steps behind puts: %" PRIu64 " steps waited\n", steps, paced);

	memset(&sn, 0, sizeof(sn));
	before = zt_stat(c, "scan_steps_paced");
	zt_sleep_ms(100);
	do
		zt_ok(zap_scan(c, "scan/", 5, &cursor, 100, seen_key, &sn));
	while (cursor);
	paced = zt_stat(c, "scan_steps_paced") - before;
	zt_check(paced == 0, "a scan with no request beside it: %" PRIu64 " steps waited", paced);
	check_all_once(&sn, "a scan alone");
}

#define SCANNERS 12

struct scanner {
	zap_client *c;
	pthread_t t;
	unsigned steps, keys;
};

static int count_key(const void *key, size_t klen, void *arg)
{
	(*(unsigned *)arg)++;
	return 0;
}

static void *scanner_run(void *arg)
{
	struct scanner *sc = arg;
	uint64_t cursor = 0;

	do {
		zt_ok(zap_scan(sc->c, "scan/", 5, &cursor, 100, count_key, &sc->keys));
		sc->steps++;
	} while (cursor);
	return NULL;
}

/*
 * Many listings at once beside a stream of puts: each step waits for its own
 * turn, about once, rather than every waiting listing waking each time one
 * may go on (a herd that cost more than the listings themselves).
 */
static void scanners_take_turns(struct zt_daemon *d, zap_client *c, zap_client *other)
{
	static struct scanner sc[SCANNERS];
	uint64_t before = zt_stat(c, "scan_steps_paced"), waits;
	unsigned steps = 0, live = 0, done = 0, i = 0;

	for (unsigned k = 0; k < N; k++)
		live += !gone[k];
	for (unsigned k = 0; k < SCANNERS; k++) {
		sc[k].c = zt_connect(d);
		zt_check(!pthread_create(&sc[k].t, NULL, scanner_run, &sc[k]), "pthread_create");
	}
	while (done < SCANNERS) {
		put_key(other, "turns/%05u", i++ % 1000);
		done = 0;
		for (unsigned k = 0; k < SCANNERS; k++)
			done += __atomic_load_n(&sc[k].keys, __ATOMIC_RELAXED) >= live;
	}
	for (unsigned k = 0; k < SCANNERS; k++) {
		pthread_join(sc[k].t, NULL);
		zt_check(sc[k].keys == live, "a listing beside the others found %u keys of %u",
			 sc[k].keys, live);
		steps += sc[k].steps;
		zap_close(sc[k].c);
	}
	waits = zt_stat(c, "scan_steps_paced") - before;
	printf("%d listings at once beside puts: %u steps, %" PRIu64 " waits\n", SCANNERS, steps,
	       waits);
	zt_check(waits <= 2 * steps, "%u steps waited %" PRIu64 " times: listings woke in a herd",
		 steps, waits);
}

struct sorted {
	char last[64];
	size_t lastlen;
	unsigned n;
};

static int in_order(const void *key, size_t klen, void *arg)
{
	struct sorted *s = arg;
	size_t m = klen < s->lastlen ? klen : s->lastlen;
	int d = memcmp(key, s->last, m);

	zt_check(klen < sizeof(s->last), "a key of %zu bytes", klen);
	zt_check(!s->n || d > 0 || (d == 0 && klen > s->lastlen), "zap_list out of byte order");
	memcpy(s->last, key, klen);
	s->lastlen = klen;
	s->n++;
	return 0;
}

#define SORT_KEYS 3000

struct skey {
	uint16_t len;
	uint8_t b[ZAP_KEY_MAX_LEN];
};

static int skey_cmp(const void *a, const void *b)
{
	const struct skey *x = a, *y = b;
	int d = memcmp(x->b, y->b, x->len < y->len ? x->len : y->len);

	return d ? d : (x->len > y->len) - (x->len < y->len);
}

/* "sort/", then bytes from a small alphabet, or a long run of 'a' and a tail. */
static void skey_make(struct skey *k, uint64_t *rng)
{
	static const uint8_t abc[] = { 0x00, 0x01, 'a', 0x7f, 0xff };
	uint64_t r = zt_rand(rng);
	size_t n = 5;

	memcpy(k->b, "sort/", 5);
	if (r % 4 == 0) {
		memset(k->b + n, 'a', 900);
		n += 900;
	}
	for (size_t i = (r >> 8) % 12; i > 0; i--)
		k->b[n++] = abc[zt_rand(rng) % sizeof(abc)];
	k->len = n;
}

struct listed {
	const struct skey *want;
	size_t n, at;
};

static int listed_key(const void *key, size_t klen, void *arg)
{
	struct listed *l = arg;
	const struct skey *w = &l->want[l->at];

	zt_check(l->at < l->n, "zap_list listed more than the %zu keys put", l->n);
	zt_check(klen == w->len && !memcmp(key, w->b, klen),
		 "zap_list's key %zu (%zu bytes) is not qsort's (%u bytes)", l->at, klen, w->len);
	l->at++;
	return 0;
}

static void check_sorted_list(zap_client *c)
{
	static struct skey keys[SORT_KEYS];
	struct listed l = { .want = keys };
	uint64_t rng = 2026;

	for (size_t i = 0; i < SORT_KEYS; i++) {
		skey_make(&keys[i], &rng);
		zt_ok(zap_put(c, keys[i].b, keys[i].len, "v", 1, NULL));
	}
	qsort(keys, SORT_KEYS, sizeof(keys[0]), skey_cmp);
	for (size_t i = 0; i < SORT_KEYS; i++)
		if (!l.n || skey_cmp(&keys[l.n - 1], &keys[i]))
			keys[l.n++] = keys[i];
	zt_ok(zap_list(c, "sort/", 5, listed_key, &l));
	zt_check(l.at == l.n, "zap_list listed %zu of %zu keys", l.at, l.n);
}

int main(void)
{
	const char *args[] = { "--size", "1G", "--zone-size", "64M", "--sync", "none", NULL };
	static struct seen sn;
	struct zt_daemon d;
	struct sorted so = { .n = 0 };
	zap_client *c, *other;
	uint64_t cursor = 0, stale;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	other = zt_connect(&d);
	for (unsigned i = 0; i < N; i++)
		put_key(c, "scan/%05u", i);
	for (unsigned i = 0; i < 50; i++)
		put_key(c, "other/%u", i);
	for (unsigned i = 0; i < N; i += 7)
		del_key(c, i);

	scan_during_churn(c, other);
	scan_yields(c, other);
	scanners_take_turns(&d, c, other);

	zt_ok(zap_list(c, "scan/", 5, in_order, &so));
	for (unsigned i = 0; i < N; i++)
		so.n -= !gone[i];
	zt_check(so.n == 0, "zap_list listed %d keys too many", (int)so.n);

	cursor = 12345;
	zt_check(zap_scan(c, NULL, 0, &cursor, 10, seen_key, &sn) == -EINVAL,
		 "a made-up cursor was not refused");
	cursor = 0;
	zt_ok(zap_scan(c, NULL, 0, &cursor, 10, seen_key, &sn));
	zt_check(cursor, "a scan of %u keys ended after 10", N);
	stale = cursor;
	zap_close(c);
	zap_close(other);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	zt_start(&d);
	c = zt_connect(&d);
	zt_check(zap_scan(c, NULL, 0, &stale, 10, seen_key, &sn) == -EINVAL,
		 "a cursor from before the restart was not refused");
	cursor = 0;
	memset(&sn, 0, sizeof(sn));
	do
		zt_ok(zap_scan(c, "scan/", 5, &cursor, 1000, seen_key, &sn));
	while (cursor);
	check_all_once(&sn, "after a restart");
	check_sorted_list(c);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	return 0;
}
