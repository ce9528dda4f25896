/*
 * The pipelined asynchronous API against a real daemon:
 *   - 10,000 requests in flight on ONE connection: puts, then gets, then a mix
 *     of overwrites, deletes, gets and gets of missing keys. Every callback
 *     runs once, matched to its own request (values byte-exact per key), and
 *     the daemon answered out of order at least once;
 *   - callbacks that queue follow-up requests, call the synchronous API, and
 *     close the client;
 *   - the client driven by a plain poll() loop through zap_fd/zap_process;
 *   - a put refused with TOO_LARGE amid others (perhaps while its value is
 *     still going out): it fails alone, the stream stays in step;
 *   - zap_close with requests pending: -ECANCELED;
 *   - a daemon restart with requests pending: they fail with a connection
 *     error, every acknowledged put survives, and later requests reconnect.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N	  10000u
#define MAX_VALUE (4u << 20) /* the daemon's --max-value */

static struct zt_daemon d;

static bool conn_error(int err)
{
	return err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN || err == -ECONNREFUSED;
}

/* --- one request of a batch, and the order answers came in --- */

enum kind { K_PUT, K_GET, K_DEL, K_MISSING };

struct op {
	unsigned idx; /* submission order within its batch */
	unsigned key;
	enum kind kind;
	uint64_t seed; /* put: the value written; get: the value expected */
	size_t len;
	void *val; /* put: the value, freed once answered */
	int calls;
	int err;
};

struct batch {
	struct op *ops;
	unsigned n, done;
	unsigned *order; /* idx of the ops in the order their callbacks ran */
};

static size_t value_len(uint64_t seed)
{
	uint64_t st = seed * 7919 + 1;
	uint64_t r = zt_rand(&st);

	/* Mostly small; some span several records and several get frames. */
	return r % 97 == 0 ? 300000 + r % 100000 : r % 6000;
}

static void key_name(char *buf, size_t cap, const char *prefix, unsigned key)
{
	snprintf(buf, cap, "%s/%05u", prefix, key);
}

static void batch_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct op *o = arg;

	(void)c;
	o->calls++;
	o->err = r->err;
	switch (o->kind) {
	case K_PUT:
		zt_check(r->op == ZAP_OP_PUT, "put %u: op %d", o->key, r->op);
		zt_check(!r->err, "put %u: %s", o->key, zap_strerror(r->err));
		zt_check(r->info.seq > 0, "put %u: no sequence number", o->key);
		free(o->val);
		o->val = NULL;
		break;
	case K_GET: {
		uint8_t *want = malloc(o->len + 1);

		zt_check(r->op == ZAP_OP_GET, "get %u: op %d", o->key, r->op);
		zt_check(!r->err, "get %u: %s", o->key, zap_strerror(r->err));
		zt_check(r->val && r->vlen == o->len, "get %u: %zu bytes, expected %zu", o->key,
			 r->vlen, o->len);
		zt_fill(want, o->len, o->seed);
		zt_check(!memcmp(want, r->val, o->len), "get %u: not the value put for this key",
			 o->key);
		free(want);
		free(r->val);
		break;
	}
	case K_DEL:
		zt_check(r->op == ZAP_OP_DEL, "del %u: op %d", o->key, r->op);
		zt_check(!r->err, "del %u: %s", o->key, zap_strerror(r->err));
		break;
	case K_MISSING:
		zt_check(r->err == -ENOENT, "get of missing %u: %s", o->key, zap_strerror(r->err));
		zt_check(!r->val, "get of missing %u: a value", o->key);
		break;
	}
}

/* The batch the callbacks report to (one at a time). */
static struct batch *cur;

static void order_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct op *o = arg;

	batch_cb(c, r, arg);
	cur->order[cur->done++] = o->idx;
}

static struct batch *batch_new(unsigned n)
{
	struct batch *b = calloc(1, sizeof(*b));

	b->ops = calloc(n, sizeof(*b->ops));
	b->order = calloc(n, sizeof(*b->order));
	b->n = n;
	return b;
}

static void batch_free(struct batch *b)
{
	for (unsigned i = 0; i < b->n; i++)
		free(b->ops[i].val);
	free(b->ops);
	free(b->order);
	free(b);
}

static void submit(zap_client *c, struct op *o)
{
	char key[32];

	key_name(key, sizeof(key), o->kind == K_MISSING ? "missing" : "p", o->key);
	switch (o->kind) {
	case K_PUT:
		o->val = malloc(o->len + 1);
		zt_fill(o->val, o->len, o->seed);
		zt_ok(zap_put_async(c, key, strlen(key), o->val, o->len, order_cb, o));
		break;
	case K_GET:
	case K_MISSING:
		zt_ok(zap_get_async(c, key, strlen(key), order_cb, o));
		break;
	case K_DEL:
		zt_ok(zap_del_async(c, key, strlen(key), order_cb, o));
		break;
	}
}

/*
 * Queues the whole batch, then waits for all of it: every op answered once.
 * Returns how many answers came before that of a request submitted earlier.
 */
static unsigned run_batch(zap_client *c, struct batch *b, const char *what)
{
	unsigned inversions = 0, max = 0;

	cur = b;
	for (unsigned i = 0; i < b->n; i++) {
		b->ops[i].idx = i;
		submit(c, &b->ops[i]);
	}
	zt_check(zap_pending(c) == b->n, "%s: %u pending, expected %u", what, zap_pending(c), b->n);
	zt_ok(zap_wait_all(c));
	zt_check(zap_pending(c) == 0, "%s: %u still pending after zap_wait_all", what,
		 zap_pending(c));
	zt_check(b->done == b->n, "%s: %u callbacks for %u requests", what, b->done, b->n);
	for (unsigned i = 0; i < b->n; i++)
		zt_check(b->ops[i].calls == 1, "%s: op %u: %d callbacks", what, i, b->ops[i].calls);
	for (unsigned i = 0; i < b->n; i++) {
		if (b->order[i] < max)
			inversions++;
		else
			max = b->order[i];
	}
	printf("%s: %u requests in flight on one connection, %u answered before an earlier one\n",
	       what, b->n, inversions);
	cur = NULL;
	return inversions;
}

/* What each key holds now: seed and length, or len SIZE_MAX when deleted. */
static uint64_t now_seed[N];
static size_t now_len[N];

static void test_pipeline(zap_client *c)
{
	unsigned inversions = 0;
	struct batch *b;

	/* 1: puts of every key. */
	b = batch_new(N);
	for (unsigned i = 0; i < N; i++) {
		b->ops[i] = (struct op){ .key = i, .kind = K_PUT, .seed = i + 1 };
		b->ops[i].len = value_len(b->ops[i].seed);
		now_seed[i] = b->ops[i].seed;
		now_len[i] = b->ops[i].len;
	}
	inversions += run_batch(c, b, "puts");
	batch_free(b);

	/* 2: gets of every key, in a shuffled order. */
	b = batch_new(N);
	for (unsigned i = 0; i < N; i++) {
		unsigned k = (i * 7333u) % N; /* 7333 and 10000 are coprime: a permutation */

		b->ops[i] =
		    (struct op){ .key = k, .kind = K_GET, .seed = now_seed[k], .len = now_len[k] };
	}
	inversions += run_batch(c, b, "gets");
	batch_free(b);

	/*
	 * 3: a mix. Each key appears once: gets of keys nobody touches in this
	 * batch, overwrites, deletes, and gets of keys that never existed.
	 */
	b = batch_new(N);
	for (unsigned i = 0; i < N; i++) {
		struct op *o = &b->ops[i];

		*o = (struct op){ .key = i };
		switch (i % 4) {
		case 0:
			o->kind = K_PUT;
			o->seed = N + i + 1;
			o->len = value_len(o->seed);
			now_seed[i] = o->seed;
			now_len[i] = o->len;
			break;
		case 1:
			o->kind = K_DEL;
			now_len[i] = SIZE_MAX;
			break;
		case 2:
			o->kind = K_GET;
			o->seed = now_seed[i];
			o->len = now_len[i];
			break;
		default:
			o->kind = K_MISSING;
			break;
		}
	}
	inversions += run_batch(c, b, "mix");
	batch_free(b);
	zt_check(inversions > 0, "the daemon answered 30,000 requests strictly in order");

	/* Check the mix's effects with the synchronous API on the same client. */
	for (unsigned i = 0; i < N; i += 3) {
		char key[32];
		void *v;
		size_t len;
		int ret;

		key_name(key, sizeof(key), "p", i);
		ret = zap_get(c, key, strlen(key), &v, &len);
		if (now_len[i] == SIZE_MAX) {
			zt_check(ret == -ENOENT, "%s: deleted, but get says %s", key,
				 zap_strerror(ret));
			continue;
		}
		zt_ok(ret);
		zt_check(len == now_len[i], "%s: %zu bytes, expected %zu", key, len, now_len[i]);
		uint8_t *want = malloc(len + 1);
		zt_fill(want, len, now_seed[i]);
		zt_check(!memcmp(want, v, len), "%s: wrong value", key);
		free(want);
		free(v);
	}
}

/* --- callbacks that queue more: put -> get -> del -> get (not found) --- */

struct chain {
	unsigned key;
	int step;
	uint8_t val[512];
	bool finished;
};

static unsigned chains_finished;

static void chain_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct chain *ch = arg;
	char key[32];

	key_name(key, sizeof(key), "chain", ch->key);
	switch (ch->step++) {
	case 0: /* put answered */
		zt_check(!r->err, "chain put %s: %s", key, zap_strerror(r->err));
		zt_ok(zap_get_async(c, key, strlen(key), chain_cb, ch));
		break;
	case 1: /* get answered */
		zt_check(!r->err, "chain get %s: %s", key, zap_strerror(r->err));
		zt_check(r->vlen == sizeof(ch->val) && !memcmp(r->val, ch->val, r->vlen),
			 "chain get %s: wrong value", key);
		free(r->val);
		if (ch->key % 50 == 0) {
			/* The synchronous API from inside a callback, on the same client. */
			void *v;
			size_t len;

			zt_ok(zap_get(c, key, strlen(key), &v, &len));
			zt_check(len == sizeof(ch->val) && !memcmp(v, ch->val, len),
				 "sync get in a callback: wrong value");
			free(v);
		}
		zt_ok(zap_del_async(c, key, strlen(key), chain_cb, ch));
		break;
	case 2: /* del answered */
		zt_check(!r->err, "chain del %s: %s", key, zap_strerror(r->err));
		zt_ok(zap_get_async(c, key, strlen(key), chain_cb, ch));
		break;
	case 3: /* get of the deleted key answered */
		zt_check(r->err == -ENOENT, "chain get after del %s: %s", key,
			 zap_strerror(r->err));
		ch->finished = true;
		chains_finished++;
		break;
	default:
		zt_fail("chain %s: callback after its end", key);
	}
}

static void test_chains(zap_client *c)
{
	enum { CHAINS = 500 };
	struct chain *ch = calloc(CHAINS, sizeof(*ch));
	char key[32];

	for (unsigned i = 0; i < CHAINS; i++) {
		ch[i].key = i;
		zt_fill(ch[i].val, sizeof(ch[i].val), 1000000 + i);
		key_name(key, sizeof(key), "chain", i);
		zt_ok(zap_put_async(c, key, strlen(key), ch[i].val, sizeof(ch[i].val), chain_cb,
				    &ch[i]));
	}
	zt_ok(zap_wait_all(c));
	zt_check(zap_pending(c) == 0, "chains: %u pending", zap_pending(c));
	zt_check(chains_finished == CHAINS, "chains: %u of %u finished", chains_finished, CHAINS);
	printf("chains: %u callbacks queued 3 follow-ups each\n", CHAINS);
	free(ch);
}

/* --- zap_close inside a callback, and with requests pending --- */

static unsigned cancelled, answered;

static void count_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	(void)c;
	(void)arg;
	if (r->err == -ECANCELED) {
		cancelled++;
	} else {
		zt_check(!r->err || r->err == -ENOENT, "close test: %s", zap_strerror(r->err));
		answered++;
	}
	if (r->val)
		free(r->val);
}

static void closing_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	count_cb(c, r, arg);
	zap_close(c);
	/* c stays valid until we return; new requests are refused. */
	zt_check(zap_get_async(c, "k", 1, count_cb, NULL) == -ECANCELED,
		 "a request queued on a closing client");
	zt_check(zap_put(c, "k", 1, "v", 1, NULL) == -ECANCELED,
		 "a synchronous put on a closing client");
}

static uint8_t big[256 << 10];

static void test_close(void)
{
	zap_client *c = zt_connect(&d);

	cancelled = answered = 0;
	for (int i = 0; i < 100; i++)
		zt_ok(zap_get_async(c, "missing", 7, count_cb, NULL));
	zap_close(c); /* nothing was sent yet: every one is cancelled, every callback runs */
	zt_check(cancelled == 100 && answered == 0, "close: %u cancelled, %u answered", cancelled,
		 answered);

	/*
	 * A get, then 200 puts of 256 KiB: the get's answer comes while most of
	 * the puts still wait to be sent, and its callback closes the client.
	 */
	c = zt_connect(&d);
	cancelled = answered = 0;
	zt_ok(zap_get_async(c, "missing", 7, closing_cb, NULL));
	for (int i = 0; i < 200; i++)
		zt_ok(zap_put_async(c, "close/big", 9, big, sizeof(big), count_cb, NULL));
	zt_check(zap_wait_all(c) == -ECANCELED, "zap_wait_all after a callback closed the client");
	/* c is gone now. */
	zt_check(answered + cancelled == 201, "close in a callback: %u answered, %u cancelled",
		 answered, cancelled);
	zt_check(cancelled > 0, "close in a callback: nothing was cancelled");
	printf("close: in a callback with 200 pending: %u answered, %u cancelled\n", answered,
	       cancelled);
}

/* --- a plain poll() loop of our own --- */

struct loop_op {
	bool done;
	uint8_t val[2048];
};

static unsigned loop_done;

static void loop_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct loop_op *o = arg;

	(void)c;
	zt_check(!r->err, "poll loop: %s", zap_strerror(r->err));
	zt_check(!o->done, "poll loop: answered twice");
	if (r->op == ZAP_OP_GET) {
		zt_check(r->vlen == sizeof(o->val) && !memcmp(r->val, o->val, r->vlen),
			 "poll loop: wrong value");
		free(r->val);
	}
	o->done = true;
	loop_done++;
}

/* Puts of loop/0.. first, then gets of them once every put is answered. */
static void loop_submit(zap_client *c, struct loop_op *o, unsigned i, unsigned half)
{
	unsigned k = i % half;
	char key[32];

	key_name(key, sizeof(key), "loop", k);
	zt_fill(o->val, sizeof(o->val), 2000000 + k);
	if (i < half)
		zt_ok(zap_put_async(c, key, strlen(key), o->val, sizeof(o->val), loop_cb, o));
	else
		zt_ok(zap_get_async(c, key, strlen(key), loop_cb, o));
}

static void test_poll_loop(zap_client *c)
{
	enum { OPS = 4000, DEPTH = 32 };
	struct loop_op *ops = calloc(OPS, sizeof(*ops));
	unsigned next = 0, wakeups = 0;

	loop_done = 0;
	while (loop_done < OPS) {
		struct pollfd pfd;
		int n;

		/* Keep DEPTH in flight, queued from the loop (not from callbacks). */
		while (next < OPS && zap_pending(c) < DEPTH &&
		       (next < OPS / 2 || loop_done >= OPS / 2)) {
			loop_submit(c, &ops[next], next, OPS / 2);
			next++;
		}
		pfd.fd = zap_fd(c);
		pfd.events = POLLIN | (zap_want_write(c) ? POLLOUT : 0);
		pfd.revents = 0;
		zt_check(pfd.fd >= 0, "poll loop: no connection with requests pending");
		n = poll(&pfd, 1, 10000);
		zt_check(n >= 0, "poll: %s", strerror(errno));
		zt_check(n > 0, "poll loop: nothing happened for 10 s (%u of %u done)", loop_done,
			 OPS);
		wakeups++;
		n = zap_process(c);
		zt_check(n >= 0, "zap_process: %s", zap_strerror(n));
	}
	zt_check(zap_pending(c) == 0 && !zap_want_write(c), "poll loop: left pending");
	/* Nothing pending: zap_process has nothing to do and must not block. */
	zt_check(zap_process(c) == 0, "zap_process with nothing pending");
	printf("poll loop: %u requests at depth %u in %u wakeups\n", OPS, DEPTH, wakeups);
	free(ops);
}

/* --- a put refused (TOO_LARGE) amid others: the stream stays in step --- */

static unsigned big_ok;

static void big_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	uintptr_t i = (uintptr_t)arg;

	(void)c;
	if (i == 0) {
		zt_check(r->err == -E2BIG, "a put over --max-value: %s", zap_strerror(r->err));
		zt_check(r->message != NULL, "a put over --max-value: no message from the daemon");
	} else {
		zt_check(!r->err, "a put next to a refused one: %s", zap_strerror(r->err));
		big_ok++;
	}
}

static void test_too_large(zap_client *c)
{
	size_t len = MAX_VALUE + 1;
	uint8_t *v = calloc(1, len), small[100];
	void *got;
	size_t glen;

	zt_fill(small, sizeof(small), 77);
	big_ok = 0;
	for (uintptr_t i = 1; i <= 50; i++)
		zt_ok(zap_put_async(c, "large/small", 11, small, sizeof(small), big_cb, (void *)i));
	zt_ok(zap_put_async(c, "large/big", 9, v, len, big_cb, (void *)0));
	for (uintptr_t i = 51; i <= 100; i++)
		zt_ok(zap_put_async(c, "large/small", 11, small, sizeof(small), big_cb, (void *)i));
	zt_ok(zap_wait_all(c));
	zt_check(big_ok == 100, "puts next to a refused one: %u of 100", big_ok);
	zt_check(zap_put(c, "large/big", 9, v, len, NULL) == -E2BIG, "sync put over --max-value");
	zt_ok(zap_get(c, "large/small", 11, &got, &glen));
	zt_check(glen == sizeof(small) && !memcmp(got, small, glen), "large/small: wrong value");
	free(got);
	zt_check(zap_get(c, "large/big", 9, &got, &glen) == -ENOENT, "the refused put was stored");
	free(v);
	printf("too large: a %zu-byte put refused amid 100 others, which all succeeded\n", len);
}

/* --- a daemon restart with requests pending --- */

struct rput {
	uint8_t *val;
	size_t len;
	int err;
	bool called;
};

static unsigned r_done, r_ok, r_failed;

static void restart_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct rput *p = arg;

	(void)c;
	zt_check(!p->called, "restart: a callback ran twice");
	p->called = true;
	p->err = r->err;
	r_done++;
	if (!r->err)
		r_ok++;
	else if (conn_error(r->err))
		r_failed++;
	else
		zt_fail("restart: put failed with %s, not a connection error",
			zap_strerror(r->err));
}

static void *stopper(void *arg)
{
	(void)arg;
	zt_check(zt_stop(&d) == 0, "daemon did not stop cleanly with clients pending");
	return NULL;
}

static void test_restart(zap_client *c)
{
	enum { PUTS = 2000, VLEN = 64 << 10 };
	struct rput *p = calloc(PUTS, sizeof(*p));
	pthread_t t;
	char key[32];
	int fd0;

	/* a: nothing sent yet when the daemon goes away: every request fails. */
	r_done = r_ok = r_failed = 0;
	for (unsigned i = 0; i < 500; i++) {
		key_name(key, sizeof(key), "gone", i);
		zt_ok(zap_put_async(c, key, strlen(key), "x", 1, restart_cb, &p[i]));
	}
	fd0 = zap_fd(c);
	zt_check(zt_stop(&d) == 0, "daemon did not stop cleanly");
	zt_ok(zap_wait_all(c));
	zt_check(r_done == 500 && r_failed == 500,
		 "daemon stopped before anything was sent: %u of 500 failed", r_failed);
	zt_check(zap_fd(c) == -1, "the broken connection is still open");
	/* While the daemon is down, a request cannot even be queued. */
	zt_check(zap_put_async(c, "k", 1, "v", 1, restart_cb, &p[0]) == -ECONNREFUSED,
		 "queued a request with no daemon");
	zt_start(&d);
	memset(p, 0, 500 * sizeof(*p));
	r_done = r_ok = r_failed = 0;
	for (unsigned i = 0; i < 500; i++) {
		key_name(key, sizeof(key), "gone", i);
		zt_ok(zap_put_async(c, key, strlen(key), "x", 1, restart_cb, &p[i]));
	}
	zt_check(zap_fd(c) >= 0, "no new connection");
	zt_ok(zap_wait_all(c));
	zt_check(r_ok == 500, "after the restart: %u of 500 succeeded", r_ok);
	printf("restart a: 500 unsent requests failed (fd %d), 500 succeeded after reconnecting"
	       " (fd %d)\n",
	       fd0, zap_fd(c));

	/* b: the daemon stops (SIGTERM) while thousands are in flight. */
	memset(p, 0, 500 * sizeof(*p));
	r_done = r_ok = r_failed = 0;
	for (unsigned i = 0; i < PUTS; i++) {
		p[i].len = VLEN;
		p[i].val = malloc(VLEN);
		zt_fill(p[i].val, VLEN, 3000000 + i);
		key_name(key, sizeof(key), "restart", i);
		zt_ok(zap_put_async(c, key, strlen(key), p[i].val, VLEN, restart_cb, &p[i]));
	}
	while (r_done < 100) {
		struct pollfd pfd = { zap_fd(c), POLLIN | (zap_want_write(c) ? POLLOUT : 0), 0 };

		zt_check(poll(&pfd, 1, 10000) > 0, "restart b: no progress");
		zt_check(zap_process(c) >= 0, "zap_process");
	}
	pthread_create(&t, NULL, stopper, NULL);
	zt_ok(zap_wait_all(c));
	pthread_join(t, NULL);
	zt_check(r_done == PUTS, "restart b: %u of %u callbacks", r_done, PUTS);
	zt_check(r_failed > 0, "restart b: the daemon stopped, yet all %u puts succeeded", PUTS);
	printf("restart b: SIGTERM with %u puts of 64 KiB in flight: %u acknowledged, %u failed"
	       " with a connection error\n",
	       PUTS, r_ok, r_failed);

	/* Every acknowledged put is there after the restart; later requests work. */
	zt_start(&d);
	for (unsigned i = 0; i < PUTS; i++) {
		void *v;
		size_t len;
		int ret;

		key_name(key, sizeof(key), "restart", i);
		ret = zap_get(c, key, strlen(key), &v, &len);
		if (p[i].err) {
			zt_check(ret == 0 || ret == -ENOENT, "%s: %s", key, zap_strerror(ret));
		} else {
			zt_ok(ret);
			zt_check(len == VLEN && !memcmp(v, p[i].val, VLEN),
				 "%s: acknowledged put lost or wrong after restart", key);
		}
		if (!ret)
			free(v);
		free(p[i].val);
	}
	memset(p, 0, PUTS * sizeof(*p));
	r_done = r_ok = r_failed = 0;
	for (unsigned i = 0; i < 100; i++) {
		key_name(key, sizeof(key), "after", i);
		zt_ok(zap_put_async(c, key, strlen(key), "y", 1, restart_cb, &p[i]));
	}
	zt_ok(zap_wait_all(c));
	zt_check(r_ok == 100, "after restart b: %u of 100 succeeded", r_ok);
	free(p);
}

int main(void)
{
	const char *args[] = { "--size", "2G", "--zone-size", "64M", "--max-value", "4M", NULL };
	zap_client *c;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	test_pipeline(c);
	test_chains(c);
	test_poll_loop(c);
	test_too_large(c);
	test_close();
	test_restart(c);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	return 0;
}
