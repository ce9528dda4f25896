/*
 * Operations on one key take effect in the order the daemon received them
 * (issue 13, finding 2), whatever order their appends complete in; this is
 * part of the protocol. A delete of a key that has a value or a put in flight
 * writes a tombstone and answers OK; a get returns the state after every put
 * and delete of its key received before it.
 *
 * On ONE connection, pipelined (every sequence sent back to back, before any
 * answer), for values of several sizes and with --sync always and none:
 *   put k v1; del k             -> both OK; then k is not found
 *   put k v1; put k v2; get k   -> the get returns v2
 *   put k v1; del k; put k v3; get k -> v3
 *   del k (nothing there)       -> NOT_FOUND
 * Across two connections: A sends a put of 16 MiB until all of it is written
 * to the socket, then B deletes the key before A's answer: both OK, and the
 * key is absent. Every outcome holds again after a restart.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define NSIZES 6
static const size_t sizes[NSIZES] = { 0, 100, 4000, 65536, 1u << 20, 3u << 20 };

static struct zt_daemon d;

enum kind { PUT, GET, DEL };

struct op {
	enum kind kind;
	char key[48];
	uint64_t seed; /* put: the value's; get: the one expected (with len) */
	size_t len;
	int want;      /* the answer expected: 0 or -ENOENT */
	bool want_val; /* get: a value expected (else NOT_FOUND) */
	void *val;
	bool done;
	int err;
	char what[112];
};

#define MAX_OPS 512
static struct op ops[MAX_OPS];
static unsigned nops;

/* Wrong answers: each is reported, and the test fails once the batch is checked. */
static unsigned wrong;

#define report(...)                                                                                \
	do {                                                                                       \
		fprintf(stderr, "FAIL: " __VA_ARGS__);                                             \
		fputc('\n', stderr);                                                               \
		wrong++;                                                                           \
	} while (0)

static void cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct op *o = arg;

	(void)c;
	o->done = true;
	o->err = r->err;
	if (o->kind == GET && !r->err) {
		uint8_t *want = malloc(o->len + 1);

		zt_check(want, "out of memory");
		zt_fill(want, o->len, o->seed);
		if (!o->want_val)
			report("%s: get of %s returned %zu bytes; expected not found", o->what,
			       o->key, r->vlen);
		else if (r->vlen != o->len || memcmp(r->val, want, o->len))
			report(
			    "%s: get of %s returned %zu bytes that are not the value of the last "
			    "put before it (%zu bytes)",
			    o->what, o->key, r->vlen, o->len);
		free(want);
		free(r->val);
	}
	if (o->kind == PUT) {
		free(o->val);
		o->val = NULL;
	}
}

static struct op *add(enum kind kind, const char *what, const char *key, uint64_t seed, size_t len,
		      int want)
{
	struct op *o = &ops[nops++];

	zt_check(nops <= MAX_OPS, "too many ops");
	*o = (struct op){ .kind = kind, .seed = seed, .len = len, .want = want };
	snprintf(o->key, sizeof(o->key), "%s", key);
	snprintf(o->what, sizeof(o->what), "%s", what);
	return o;
}

static void submit(zap_client *c, struct op *o)
{
	switch (o->kind) {
	case PUT:
		o->val = malloc(o->len + 1);
		zt_check(o->val, "out of memory");
		zt_fill(o->val, o->len, o->seed);
		zt_ok(zap_put_async(c, o->key, strlen(o->key), o->val, o->len, cb, o));
		break;
	case GET:
		zt_ok(zap_get_async(c, o->key, strlen(o->key), cb, o));
		break;
	case DEL:
		zt_ok(zap_del_async(c, o->key, strlen(o->key), cb, o));
		break;
	}
}

static const char *kind_name(enum kind k)
{
	return k == PUT ? "put" : k == GET ? "get" : "del";
}

/* Sends every op queued, back to back, then waits for all the answers and checks them. */
static void run_all(zap_client *c)
{
	for (unsigned i = 0; i < nops; i++)
		submit(c, &ops[i]);
	zt_ok(zap_wait_all(c));
	for (unsigned i = 0; i < nops; i++) {
		struct op *o = &ops[i];

		zt_check(o->done, "%s: %s of %s never answered", o->what, kind_name(o->kind),
			 o->key);
		/* A get's value was checked on arrival. */
		if (o->err != o->want && !(o->kind == GET && !o->err))
			report("%s: %s of %s answered %s, expected %s", o->what, kind_name(o->kind),
			       o->key, o->err ? zap_strerror(o->err) : "OK",
			       o->want ? zap_strerror(o->want) : "OK");
	}
	zt_check(!wrong, "%u wrong answers", wrong);
}

struct final {
	char key[48];
	bool exists;
	uint64_t seed;
	size_t len;
	char what[112];
};

#define MAX_FINAL 256
static struct final finals[MAX_FINAL];
static unsigned nfinal;

static void expect_final(const char *what, const char *key, bool exists, uint64_t seed, size_t len)
{
	struct final *f = &finals[nfinal++];

	zt_check(nfinal <= MAX_FINAL, "too many keys");
	*f = (struct final){ .exists = exists, .seed = seed, .len = len };
	snprintf(f->key, sizeof(f->key), "%s", key);
	snprintf(f->what, sizeof(f->what), "%s", what);
}

static void check_finals(zap_client *c, const char *when)
{
	for (unsigned i = 0; i < nfinal; i++) {
		const struct final *f = &finals[i];
		void *got = NULL;
		size_t glen = 0;
		int ret = zap_get(c, f->key, strlen(f->key), &got, &glen);

		if (!f->exists) {
			if (ret != -ENOENT)
				report("%s, %s: %s must be absent, yet get says %s (%zu bytes)",
				       f->what, when, f->key, ret ? zap_strerror(ret) : "OK", glen);
		} else {
			uint8_t *want = malloc(f->len + 1);

			zt_fill(want, f->len, f->seed);
			if (ret)
				report("%s, %s: get %s: %s", f->what, when, f->key,
				       zap_strerror(ret));
			else if (glen != f->len || memcmp(got, want, f->len))
				report("%s, %s: %s holds %zu bytes, not its last value (%zu bytes)",
				       f->what, when, f->key, glen, f->len);
			free(want);
		}
		free(got);
	}
	zt_check(!wrong, "%u keys in the wrong state %s", wrong, when);
}

/* The four sequences on one connection, for every size, all pipelined together. */
static void one_connection(zap_client *c, const char *sync, unsigned round)
{
	char what[112], key[48];

	nops = 0;
	for (unsigned s = 0; s < NSIZES; s++) {
		size_t len = sizes[s];
		uint64_t base = ((uint64_t)round << 16 | s << 8 | (sync[0] == 'a')) << 4;

		snprintf(what, sizeof(what),
			 "--sync %s, one connection, round %u: put k (%zu bytes); del k", sync,
			 round, len);
		snprintf(key, sizeof(key), "%s/putdel/%u/%u", sync, round, s);
		add(PUT, what, key, base + 1, len, 0);
		add(DEL, what, key, 0, 0, 0);
		add(GET, what, key, 0, 0, -ENOENT);
		expect_final(what, key, false, 0, 0);

		snprintf(what, sizeof(what),
			 "--sync %s, one connection, round %u: put k v1; put k v2 (%zu bytes); get "
			 "k",
			 sync, round, len);
		snprintf(key, sizeof(key), "%s/putput/%u/%u", sync, round, s);
		add(PUT, what, key, base + 2, len + 7, 0);
		add(PUT, what, key, base + 3, len, 0);
		add(GET, what, key, base + 3, len, 0)->want_val = true;
		expect_final(what, key, true, base + 3, len);

		snprintf(what, sizeof(what),
			 "--sync %s, one connection, round %u: put k v1; del k; put k v3 (%zu "
			 "bytes); get k",
			 sync, round, len);
		snprintf(key, sizeof(key), "%s/putdelput/%u/%u", sync, round, s);
		add(PUT, what, key, base + 4, len, 0);
		add(DEL, what, key, 0, 0, 0);
		add(PUT, what, key, base + 5, len, 0);
		add(GET, what, key, base + 5, len, 0)->want_val = true;
		expect_final(what, key, true, base + 5, len);

		snprintf(what, sizeof(what),
			 "--sync %s, one connection, round %u: del of a key never written", sync,
			 round);
		snprintf(key, sizeof(key), "%s/nothing/%u/%u", sync, round, s);
		add(DEL, what, key, 0, 0, -ENOENT);
		expect_final(what, key, false, 0, 0);
	}
	run_all(c);
	check_finals(c, "after all the answers");
}

static void put_big_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	int *res = arg;

	(void)c;
	*res = r->err;
}

/*
 * A's put goes out whole before B's delete is sent, so the daemon received
 * the put first: the delete wins.
 */
static void two_connections(const char *sync, unsigned round)
{
	char what[112];
	size_t len = 16u << 20;
	uint8_t *val = malloc(len);
	zap_client *a = zt_connect(&d), *b = zt_connect(&d);
	int put_res = 1, ret;
	char key[48];
	double until = zt_now() + 30;

	zt_check(val, "out of memory");
	snprintf(what, sizeof(what),
		 "--sync %s, two connections, round %u: A puts k (16 MiB), then B deletes k", sync,
		 round);
	snprintf(key, sizeof(key), "%s/twoconn/%u", sync, round);
	zt_fill(val, len, round);
	zt_ok(zap_put_async(a, key, strlen(key), val, len, put_big_cb, &put_res));
	while (zap_want_write(a) && put_res == 1) {
		struct pollfd pfd = { .fd = zap_fd(a), .events = POLLIN | POLLOUT };

		zt_check(zt_now() < until, "%s: the put did not go out within 30 s", what);
		poll(&pfd, 1, 100);
		zap_process(a);
	}
	zt_check(put_res == 1 || put_res == 0, "%s: the put failed: %s", what,
		 zap_strerror(put_res));
	ret = zap_del(b, key, strlen(key));
	zt_check(ret == 0,
		 "%s: the delete answered %s; expected OK (the put was received before it)", what,
		 zap_strerror(ret));
	zt_ok(zap_wait_all(a));
	zt_check(put_res == 0, "%s: the put answered %s", what, zap_strerror(put_res));
	expect_final(what, key, false, 0, 0);
	check_finals(b, "after both answers");
	zap_close(a);
	zap_close(b);
	free(val);
}

/* An argument runs one part alone: "one" or "two" (connections). */
int main(int argc, char **argv)
{
	const char *syncs[] = { "always", "none" };
	const char *only = argc > 1 ? argv[1] : "";
	double t0 = zt_now();

	zt_watchdog(120, "test-order");
	for (unsigned i = 0; i < 2; i++) {
		const char *args[] = { "--size", "256M",   "--zone-size", "8M",
				       "--sync", syncs[i], NULL };
		zap_client *c;

		nfinal = 0;
		zt_cleanup(&d);
		zt_init(&d, args);
		zt_start(&d);
		c = zt_connect(&d);
		for (unsigned round = 0; round < 3 && strcmp(only, "two"); round++)
			one_connection(c, syncs[i], round);
		for (unsigned round = 0; round < 3 && strcmp(only, "one"); round++)
			two_connections(syncs[i], round);
		zap_close(c);
		zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
		zt_start(&d);
		c = zt_connect(&d);
		check_finals(c, "after a restart");
		zap_close(c);
		zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
		printf("--sync %s: every sequence took effect in the order sent\n", syncs[i]);
	}
	zt_cleanup(&d);
	printf("test-order: PASS in %.1f s\n", zt_now() - t0);
	return 0;
}
