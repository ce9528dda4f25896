/*
 * Model-checked stress test, in the spirit of RocksDB's db_stress (an
 * expected state that knows every version a key may hold) and FoundationDB's
 * simulation (one seed drives the client's every choice).
 *
 * The real zappendd runs on a tiny file-backed device (32M in zones of 2M by
 * default), so that GC runs all the time and the device is often near full.
 * Several connections, each with many requests in flight through the
 * pipelined API, all driven from one thread (poll on every zap_fd(), then
 * zap_process), issue random puts (0 bytes up to several zones), overwrites,
 * deletes and gets over a small key space, with bursts of pipelined
 * operations on one key. Phases alternate --sync always and none and end in
 * a kill -9 with requests in flight, a SIGTERM with requests in flight, or a
 * SIGTERM after the requests drained; after every restart each key is read
 * and the listing compared with what the reads found.
 *
 * Every answer is checked against the protocol's rules (README, DESIGN):
 *  1. operations on one key take effect in the order the daemon received
 *     them; one connection's requests are received in the order sent; an
 *     operation sent after another's answer arrived was received after it;
 *  2. a put/del answered OK took effect; NO_SPACE, TOO_LARGE, INVALID: it did
 *     not; IO_ERROR, INTERNAL, BUSY, a broken connection or a kill: uncertain
 *     (it may or may not have, at its place in the order);
 *  3. a delete answered NOT_FOUND had no effect and observed "absent";
 *  4. a get returns the state after every put/del received before it;
 *  5. what was answered OK survives kill -9 (--sync none too: the file
 *     backend writes with O_DIRECT, and a kill keeps what was written).
 * The checker (see "the model" below) keeps per key the writes that may
 * still be visible, and accepts a read returning X only if X is the result
 * of a write that is not definitely after the read with no write answered OK
 * definitely between the two. Values name the put that wrote them (a header
 * with key, op id and length, then PRNG bytes), so torn or foreign bytes are
 * caught too. A self-check feeds the checker known-good and known-bad
 * histories first: it must be able to fail.
 *
 * Environment:
 *   STRESS_SEED        the seed (default: the time; printed first)
 *   STRESS_SECONDS     run time (default 45; 25 under AddressSanitizer)
 *   STRESS_OPS         stop after this many operations instead
 *   STRESS_SIZE, STRESS_ZONE_SIZE   device geometry (32M, 2M)
 *   STRESS_KEYS (48), STRESS_CONNS (5), STRESS_MAX_DEPTH (64),
 *   STRESS_MAX_VALUE (3 zones), STRESS_INFLIGHT_BYTES (64M of puts in flight)
 *   STRESS_HANG_SECONDS (60): a request unanswered this long fails the test
 *   STRESS_FAULT=SPEC  run $ZAPPENDD_FAULT with ZAPPEND_FAULT=SPEC (skip without it);
 *                      STRESS_FAULT=1: delays, flush delays and 1% failed, misplaced
 *                      and short appends; seed= defaults to one from STRESS_SEED
 *   STRESS_KEEP_GOING=N  go on until N divergences (default 1: stop at the first)
 *   STRESS_VERBOSE=1   a line per phase
 *   STRESS_STRICT=1    also: an uncertain write a read found applied may not vanish
 *                      again while the same daemon runs
 *   STRESS_SELFTEST=1  only the checker's self-check
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define MAX_KEYS    256
#define MAX_CONNS   16
#define HDR	    32 /* the self-identifying header of a value */
#define MAGIC	    0x5a535456u
#define RING	    40 /* completed ops remembered per key, for the report */
#define EVENTS	    16 /* restarts remembered, for the report */
#define NO_TICK	    UINT64_MAX
#define ID_SEQ_MASK ((UINT64_C(1) << 40) - 1) /* an op id: connection + 1, then its n-th op */
#define CHECK_CONN  MAX_CONNS /* the connection that reads every key after a restart */

/* --- configuration and counters --- */

static uint64_t seed;
static unsigned nkeys = 48, nconns = 5, max_depth = 64;
static uint64_t dev_bytes, zone_bytes, max_value, inflight_budget;
static const char *dev_size = "32M", *zone_size = "2M";
static double hang_seconds = 60;
static uint64_t keep_going = 1; /* divergences before the test stops */
static bool verbose, selftest_mode, strict;
static double t0; /* zt_now() at start */

static struct {
	uint64_t sent[4], put_ok, del_ok, del_nf, get_val, get_nf, put_failed, del_failed;
	uint64_t uncertain_put, uncertain_del, seen_uncertain, put_bytes;
	uint64_t errs_nospc, errs_2big, errs_inval, errs_io, errs_busy, errs_conn, errs_other;
	uint64_t restarts, kills, term_inflight, gc_moved, zones_reset, max_inflight_zone;
	uint64_t checks, divergences, phases, max_hist;
} S;

/* --- values: every byte re-derivable from (key, op id) --- */

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t s = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);

	return zt_rand(&s);
}

/* The first bytes of value (key, id, len): the header, cut short for values under HDR. */
static void value_head(uint8_t *h, uint32_t key, uint64_t id, uint64_t len)
{
	uint32_t magic = MAGIC;
	uint64_t chk = mix(mix(key, id), len);

	/* The op id first: even a value of a few bytes then tells most puts apart. */
	memcpy(h, &id, 8);
	memcpy(h + 8, &key, 4);
	memcpy(h + 12, &magic, 4);
	memcpy(h + 16, &len, 8);
	memcpy(h + 24, &chk, 8);
}

static void value_fill(uint8_t *v, uint64_t len, uint32_t key, uint64_t id)
{
	uint8_t h[HDR];

	value_head(h, key, id, len);
	memcpy(v, h, len < HDR ? len : HDR);
	if (len > HDR)
		zt_fill(v + HDR, len - HDR, mix(key, id));
}

/* Offset of the first byte of v that is not value (key, id, len), or len if none. */
static uint64_t value_diff(const uint8_t *v, uint64_t len, uint32_t key, uint64_t id)
{
	uint8_t h[HDR], w[8];
	uint64_t st = mix(key, id), x = 0;

	value_head(h, key, id, len);
	for (uint64_t i = 0; i < len && i < HDR; i++) {
		if (v[i] != h[i])
			return i;
	}
	/* zt_fill's stream, 8 bytes at a time, without a buffer the size of the value. */
	for (uint64_t i = HDR; i < len; i += 8) {
		uint64_t n = len - i < 8 ? len - i : 8;

		x = zt_rand(&st);
		memcpy(w, &x, 8);
		if (memcmp(v + i, w, n)) {
			for (uint64_t j = 0; j < n; j++) {
				if (v[i + j] != w[j])
					return i + j;
			}
		}
	}
	return len;
}

/*
 * --- the model ---
 *
 * Per key, the writes (puts, deletes answered anything but NOT_FOUND) that a
 * read may still return, each with its connection, send time, answer time and
 * outcome; the initial "absent" is a write before everything. Reads (gets,
 * deletes answered NOT_FOUND, the reads after a restart) are checked once
 * every write sent before their answer has been answered, so that each
 * write's outcome is known.
 *
 * before(a, b), "a was definitely received before b": a and b went on the
 * same connection, a first; or a was received by the time b was sent. The
 * latter uses recv_ub, the earliest moment known by which the daemon had
 * received a: its own answer, or the answer to any later request on its
 * connection (requests on one connection are received in the order sent).
 * That makes before() transitive without a search for chains.
 *
 * A read r returning X is valid iff some write w with result X was answered
 * OK or uncertain, before(r, w) is false, and no write b answered OK has
 * before(w, b) and before(b, r). Writes refused for sure are never w nor b;
 * uncertain ones may be w but never b.
 *
 * Forgetting: once a write b answered OK was received before every read
 * still to be checked was sent (and every later read is sent later still),
 * every write w with before(w, b) is hidden from all of them for good.
 */

enum kind { K_PUT, K_DEL, K_GET };
enum outcome { O_PENDING, O_OK, O_FAILED, O_UNCERTAIN, O_NOTFOUND, O_DROPPED };
enum result { R_NONE, R_ABSENT, R_VALUE, R_SHORT };

struct op {
	uint64_t id; /* (connection + 1) << 40 | its n-th op: names a put's value */
	/*
	 * Logical times from one counter (single thread, so real order): sent
	 * is taken after the request was queued (nothing goes out before that),
	 * done when its callback ran. recv_ub: the daemon received it by then
	 * -- its own answer, or the answer to a later request of its connection.
	 */
	uint64_t t_sent, t_done, recv_ub;
	double ms_sent, ms_done;
	uint32_t key, epoch, gen;
	int conn;
	uint8_t kind, outcome, res;
	int err;
	uint64_t len; /* put: the value's length; read: the length returned */
	uint64_t res_id;
	uint8_t res_short[HDR];
	bool observed; /* an uncertain write that a read found: it took effect */
	uint64_t t_obs;
	uint32_t obs_epoch;
	void *val; /* a put's value until its answer */
	struct op *cnext, *cprev;
};

/* A model connection: the requests in flight on it, in the order sent. */
struct mconn {
	int idx;
	uint32_t gen; /* a new connection (after a break or a restart): no order with the old one */
	struct op *head, *tail;
	unsigned inflight;
};

struct vec {
	struct op **v;
	size_t n, cap;
};

struct keystate {
	struct vec hist;  /* writes that may still be visible, in the order sent */
	struct vec reads; /* reads not yet checked: in flight or waiting for writes to resolve */
	struct op ring[RING];
	unsigned ring_n;
	bool dirty;
};

static struct keystate keys[MAX_KEYS];
static char key_names[MAX_KEYS][400];
static size_t key_lens[MAX_KEYS];
static uint64_t tick = 1;
static uint32_t epoch; /* daemon lifetimes */
static bool expect_conn_errors;
static struct {
	uint64_t tick;
	double ms;
	const char *what;
} events[EVENTS];
static unsigned nevents;
static uint64_t selftest_violations;

static double now_ms(void)
{
	return (zt_now() - t0) * 1e3;
}

static void vec_push(struct vec *v, struct op *o)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? 2 * v->cap : 16;
		v->v = realloc(v->v, v->cap * sizeof(*v->v));
		if (!v->v)
			abort();
	}
	v->v[v->n++] = o;
}

static void vec_remove(struct vec *v, struct op *o)
{
	for (size_t i = 0; i < v->n; i++) {
		if (v->v[i] == o) {
			memmove(&v->v[i], &v->v[i + 1], (v->n - i - 1) * sizeof(*v->v));
			v->n--;
			return;
		}
	}
	abort();
}

static void note_event(const char *what)
{
	unsigned i = nevents++ % EVENTS;

	events[i].tick = tick++;
	events[i].ms = now_ms();
	events[i].what = what;
}

/* a definitely received before b (rule 1; recv_ub makes the relation transitive). */
static bool before(const struct op *a, const struct op *b)
{
	if (a->conn == b->conn && a->gen == b->gen && a->t_sent < b->t_sent)
		return true;
	return a->recv_ub < b->t_sent;
}

static const char *kind_name(int k)
{
	return k == K_PUT ? "put" : k == K_DEL ? "del" : "get";
}

static const char *outcome_name(const struct op *o)
{
	static char buf[80];

	switch (o->outcome) {
	case O_PENDING:
		return "in flight";
	case O_OK:
		return o->kind == K_GET ? (o->res == R_ABSENT ? "not found" : "value") : "OK";
	case O_NOTFOUND:
		return "NOT_FOUND";
	case O_FAILED:
		snprintf(buf, sizeof(buf), "refused (%s)", zap_strerror(o->err));
		return buf;
	case O_UNCERTAIN:
		snprintf(buf, sizeof(buf), "uncertain (%s)%s", zap_strerror(o->err),
			 o->observed ? ", seen applied" : "");
		return buf;
	default:
		snprintf(buf, sizeof(buf), "dropped (%s)", zap_strerror(o->err));
		return buf;
	}
}

static void print_op(FILE *f, const char *pfx, const struct op *o)
{
	if (o->conn < 0) {
		fprintf(f, "%sinitial state: absent\n", pfx);
		return;
	}
	fprintf(f, "%s%s op %d:%" PRIu64 " conn %d.%u epoch %u", pfx, kind_name(o->kind), o->conn,
		o->id & ID_SEQ_MASK, o->conn, o->gen, o->epoch);
	if (o->kind == K_PUT)
		fprintf(f, " len %" PRIu64, o->len);
	fprintf(f, " sent t%" PRIu64 " (%.3f ms)", o->t_sent, o->ms_sent);
	if (o->t_done != NO_TICK)
		fprintf(f, " answered t%" PRIu64 " (%.3f ms)", o->t_done, o->ms_done);
	if (o->recv_ub != NO_TICK && o->recv_ub != o->t_done)
		fprintf(f, " received by t%" PRIu64, o->recv_ub);
	fprintf(f, ": %s", outcome_name(o));
	if (o->kind != K_PUT && o->res == R_VALUE)
		fprintf(f, " -> value of op %d:%" PRIu64 " len %" PRIu64,
			(int)(o->res_id >> 40) - 1, o->res_id & ID_SEQ_MASK, o->len);
	else if (o->kind != K_PUT && o->res == R_SHORT)
		fprintf(f, " -> %" PRIu64 " bytes (too short to name their put)", o->len);
	fputc('\n', f);
}

static void print_key(FILE *f, uint32_t k)
{
	struct keystate *ks = &keys[k];
	unsigned n = ks->ring_n < RING ? ks->ring_n : RING;

	fprintf(f, "key %u \"%.40s%s\": writes that may still be visible (in the order sent):\n", k,
		key_names[k], key_lens[k] > 40 ? "..." : "");
	for (size_t i = 0; i < ks->hist.n; i++)
		print_op(f, "    ", ks->hist.v[i]);
	fprintf(f, "  its last %u completed operations (in the order answered):\n", n);
	for (unsigned i = ks->ring_n - n; i < ks->ring_n; i++)
		print_op(f, "    ", &ks->ring[i % RING]);
	fprintf(f, "  daemon lifetimes ended:\n");
	for (unsigned i = nevents > EVENTS ? nevents - EVENTS : 0; i < nevents; i++)
		fprintf(f, "    t%" PRIu64 " (%.3f ms): %s\n", events[i % EVENTS].tick,
			events[i % EVENTS].ms, events[i % EVENTS].what);
}

static void daemon_gone(void);

/* A rule was broken: tell the whole story of the key, then stop (or count on). */
__attribute__((format(printf, 2, 3))) static void violation(uint32_t k, const char *fmt, ...)
{
	va_list ap;

	if (selftest_mode) {
		/* STRESS_SELFTEST=2 shows what the checker said about each known-bad history. */
		selftest_violations++;
		if (verbose) {
			va_start(ap, fmt);
			fprintf(stderr, "  self-check finds: ");
			vfprintf(stderr, fmt, ap);
			fputc('\n', stderr);
			va_end(ap);
		}
		return;
	}
	S.divergences++;
	fprintf(stderr, "DIVERGENCE (STRESS_SEED=%" PRIu64 "): ", seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_key(stderr, k);
	fflush(stderr);
	if (S.divergences >= keep_going) {
		daemon_gone();
		exit(1);
	}
}

static void ring_add(uint32_t k, const struct op *o)
{
	struct keystate *ks = &keys[k];

	ks->ring[ks->ring_n++ % RING] = *o;
}

/* The self-check keeps freed ops readable: its scenarios still name them. */
static struct op *graveyard;

static void op_free(struct op *o)
{
	free(o->val);
	o->val = NULL;
	if (selftest_mode) {
		o->cnext = graveyard;
		graveyard = o;
		return;
	}
	free(o);
}

static void model_reset(void)
{
	for (unsigned k = 0; k < MAX_KEYS; k++) {
		struct keystate *ks = &keys[k];
		struct op *init;

		for (size_t i = 0; i < ks->hist.n; i++)
			op_free(ks->hist.v[i]);
		for (size_t i = 0; i < ks->reads.n; i++)
			op_free(ks->reads.v[i]);
		free(ks->hist.v);
		free(ks->reads.v);
		memset(ks, 0, sizeof(*ks));
		/* A new store: every key starts absent, before everything. */
		init = calloc(1, sizeof(*init));
		if (!init)
			abort();
		*init = (struct op){ .conn = -1, .kind = K_DEL, .outcome = O_OK, .key = k };
		vec_push(&ks->hist, init);
	}
	while (graveyard) {
		struct op *o = graveyard;

		graveyard = o->cnext;
		free(o);
	}
	tick = 1;
	epoch = 0;
	nevents = 0;
}

static void model_send(struct mconn *mc, struct op *o)
{
	o->t_sent = tick++;
	o->ms_sent = now_ms();
	o->t_done = o->recv_ub = NO_TICK;
	o->conn = mc->idx;
	o->gen = mc->gen;
	o->epoch = epoch;
	o->outcome = O_PENDING;
	o->cprev = mc->tail;
	o->cnext = NULL;
	if (mc->tail)
		mc->tail->cnext = o;
	else
		mc->head = o;
	mc->tail = o;
	mc->inflight++;
	if (o->kind == K_GET)
		vec_push(&keys[o->key].reads, o);
	else
		vec_push(&keys[o->key].hist, o);
	S.sent[o->kind]++;
}

static bool conn_error(int err)
{
	return err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN || err == -ECONNREFUSED ||
	       err == -ECANCELED;
}

static void count_err(int err)
{
	if (err == -ENOENT) /* an answer, not an error */
		return;
	if (err == -ENOSPC)
		S.errs_nospc++;
	else if (err == -E2BIG)
		S.errs_2big++;
	else if (err == -EINVAL)
		S.errs_inval++;
	else if (err == -EIO)
		S.errs_io++;
	else if (err == -EBUSY)
		S.errs_busy++;
	else if (conn_error(err))
		S.errs_conn++;
	else
		S.errs_other++;
}

/*
 * What a get returned. A value long enough to carry its header must verify
 * byte for byte; a shorter one is kept to be matched against the puts later.
 */
static void read_result(struct op *o, const void *val, size_t vlen)
{
	const uint8_t *v = val;
	uint32_t magic, hk;
	uint64_t id, hl, chk, at;

	o->len = vlen;
	if (!val) {
		o->res = R_ABSENT;
		return;
	}
	if (vlen < HDR) {
		o->res = R_SHORT;
		memcpy(o->res_short, v, vlen);
		return;
	}
	memcpy(&id, v, 8);
	memcpy(&hk, v + 8, 4);
	memcpy(&magic, v + 12, 4);
	memcpy(&hl, v + 16, 8);
	memcpy(&chk, v + 24, 8);
	o->res = R_VALUE;
	o->res_id = id;
	if (magic != MAGIC || chk != mix(mix(hk, id), hl)) {
		violation(o->key,
			  "a get of key %u (conn %d.%u, sent t%" PRIu64 ") returned %zu bytes "
			  "with no valid value header: torn or foreign bytes",
			  o->key, o->conn, o->gen, o->t_sent, vlen);
		o->res = R_NONE;
		return;
	}
	if (hk != o->key || hl != vlen) {
		violation(o->key,
			  "a get of key %u (conn %d.%u, sent t%" PRIu64 ") returned %zu bytes "
			  "naming op %d:%" PRIu64 " of key %u with %" PRIu64 " bytes: %s",
			  o->key, o->conn, o->gen, o->t_sent, vlen, (int)(id >> 40) - 1,
			  id & ID_SEQ_MASK, hk, hl,
			  hk != o->key ? "another key's value" : "a value cut short or too long");
		o->res = R_NONE;
		return;
	}
	at = value_diff(v, vlen, hk, id);
	if (at != vlen) {
		violation(o->key,
			  "a get of key %u (conn %d.%u, sent t%" PRIu64 ") returned the %zu "
			  "bytes of op %d:%" PRIu64 " with a wrong byte at offset %" PRIu64
			  ": torn or corrupt",
			  o->key, o->conn, o->gen, o->t_sent, vlen, (int)(id >> 40) - 1,
			  id & ID_SEQ_MASK, at);
		o->res = R_NONE;
	}
}

static bool matches(const struct op *w, const struct op *r)
{
	uint8_t h[HDR];

	if (r->res == R_ABSENT)
		return w->kind == K_DEL;
	if (w->kind != K_PUT || w->len != r->len)
		return false;
	if (r->res == R_VALUE)
		return w->id == r->res_id;
	value_head(h, w->key, w->id, w->len);
	return !memcmp(h, r->res_short, r->len);
}

/* A write (answered OK, or uncertain but seen applied) that hides w from read r. */
static const struct op *barrier(const struct vec *h, const struct op *w, const struct op *r)
{
	for (size_t i = 0; i < h->n; i++) {
		const struct op *b = h->v[i];

		if (b == w || !before(w, b))
			continue;
		if (b->outcome == O_OK && before(b, r))
			return b;
		/*
		 * STRESS_STRICT: an uncertain write that a read found had taken
		 * effect; a read sent after that one's answer, by the same
		 * daemon, is after it too (across a kill it may have been lost:
		 * it was not acknowledged). Stricter than the protocol's rules
		 * as written, which never let an uncertain write hide another.
		 */
		if (strict && b->outcome == O_UNCERTAIN && b->observed &&
		    b->obs_epoch == r->epoch && b->t_obs < r->t_sent)
			return b;
	}
	return NULL;
}

static void describe_read(char *buf, size_t cap, const struct op *r)
{
	if (r->res == R_ABSENT)
		snprintf(buf, cap, "absent");
	else if (r->res == R_VALUE)
		snprintf(buf, cap, "the value of op %d:%" PRIu64 " (%" PRIu64 " bytes)",
			 (int)(r->res_id >> 40) - 1, r->res_id & ID_SEQ_MASK, r->len);
	else
		snprintf(buf, cap, "%" PRIu64 " bytes (too short to name their put)", r->len);
}

/* Appends to a fixed buffer, dropping what does not fit. */
__attribute__((format(printf, 3, 4))) static void appendf(char *buf, size_t cap, const char *fmt,
							  ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
}

static void op_label(char *buf, size_t cap, const struct op *o)
{
	if (o->conn < 0)
		snprintf(buf, cap, "the initial state (absent)");
	else
		snprintf(buf, cap, "%s op %d:%" PRIu64 " (%s)", kind_name(o->kind), o->conn,
			 o->id & ID_SEQ_MASK, outcome_name(o));
}

/* Rule 4 for one answered read whose writes have all resolved. */
static void check_read(struct op *r)
{
	struct keystate *ks = &keys[r->key];
	struct op *found = NULL;
	unsigned nvalid = 0;
	char what[160], why[1200], a[120], b2[120];

	S.checks++;
	why[0] = 0;
	for (size_t i = 0; i < ks->hist.n; i++) {
		struct op *w = ks->hist.v[i];
		const struct op *b;

		if (!matches(w, r))
			continue;
		op_label(a, sizeof(a), w);
		if (w->conn >= 0 && before(r, w)) {
			appendf(why, sizeof(why), "\n  %s was sent after the read", a);
			continue;
		}
		if (w->outcome != O_OK && w->outcome != O_UNCERTAIN) {
			appendf(why, sizeof(why), "\n  %s cannot be it", a);
			continue;
		}
		b = barrier(&ks->hist, w, r);
		if (b) {
			op_label(b2, sizeof(b2), b);
			appendf(why, sizeof(why),
				"\n  %s is hidden by %s, received after it and before the read", a,
				b2);
			continue;
		}
		nvalid++;
		found = w;
	}
	if (!nvalid) {
		describe_read(what, sizeof(what), r);
		violation(r->key,
			  "%s of key %u on conn %d.%u (sent t%" PRIu64 ", answered t%" PRIu64
			  ", epoch %u) returned %s, which no allowed write explains:%s",
			  r->kind == K_DEL	  ? "a delete answered NOT_FOUND"
			  : r->conn == CHECK_CONN ? "the read after a restart"
						  : "a get",
			  r->key, r->conn, r->gen, r->t_sent, r->t_done, r->epoch, what,
			  why[0] ? why
				 : "\n  no write of this key kept in the model has that value "
				   "(forgotten long ago as overwritten, or never written)");
		return;
	}
	/* Only a value that names its put proves which write took effect. */
	if (found->outcome == O_UNCERTAIN && r->res == R_VALUE) {
		if (!found->observed)
			S.seen_uncertain++;
		/* The earliest sighting in the newest daemon lifetime orders the most reads. */
		if (!found->observed || r->epoch > found->obs_epoch ||
		    (r->epoch == found->obs_epoch && r->t_done < found->t_obs)) {
			found->t_obs = r->t_done;
			found->obs_epoch = r->epoch;
		}
		found->observed = true;
	}
}

/*
 * Checks the reads of key k whose verdict is settled (every write sent
 * before the read's answer has its own answer), in the order answered, then
 * forgets the writes no read can return any more.
 */
static void model_settle(uint32_t k)
{
	struct keystate *ks = &keys[k];
	uint64_t pend_w = NO_TICK, min_read = NO_TICK;
	bool *dead;
	size_t n = 0;

	ks->dirty = false;
	for (size_t i = 0; i < ks->hist.n; i++) {
		if (ks->hist.v[i]->outcome == O_PENDING && ks->hist.v[i]->t_sent < pend_w)
			pend_w = ks->hist.v[i]->t_sent;
	}
	for (;;) {
		struct op *r = NULL;

		for (size_t i = 0; i < ks->reads.n; i++) {
			struct op *x = ks->reads.v[i];

			if (x->outcome != O_PENDING && (!r || x->t_done < r->t_done))
				r = x;
		}
		if (!r || r->t_done > pend_w)
			break;
		if (r->res != R_NONE)
			check_read(r);
		vec_remove(&ks->reads, r);
		op_free(r);
	}
	/*
	 * Pruning: w is dead once a write b answered OK is definitely after w
	 * and definitely before every read still to be checked and every read
	 * still to come (b's answer is older than all of them). Reads in flight
	 * include deletes in flight: they may turn out NOT_FOUND.
	 */
	for (size_t i = 0; i < ks->reads.n; i++) {
		if (ks->reads.v[i]->t_sent < min_read)
			min_read = ks->reads.v[i]->t_sent;
	}
	for (size_t i = 0; i < ks->hist.n; i++) {
		struct op *x = ks->hist.v[i];

		if (x->kind == K_DEL && x->outcome == O_PENDING && x->t_sent < min_read)
			min_read = x->t_sent;
	}
	dead = calloc(ks->hist.n + 1, sizeof(*dead));
	if (!dead)
		abort();
	for (size_t j = 0; j < ks->hist.n; j++) {
		struct op *b = ks->hist.v[j];

		if (b->outcome != O_OK || b->recv_ub >= min_read)
			continue;
		for (size_t i = 0; i < ks->hist.n; i++) {
			struct op *w = ks->hist.v[i];

			if (i != j && w->outcome != O_PENDING && before(w, b))
				dead[i] = true;
		}
	}
	for (size_t i = 0; i < ks->hist.n; i++) {
		if (dead[i])
			op_free(ks->hist.v[i]);
		else
			ks->hist.v[n++] = ks->hist.v[i];
	}
	ks->hist.n = n;
	free(dead);
	if (n > S.max_hist)
		S.max_hist = n;
}

/*
 * The answer to o arrived (its callback runs now). err 0 with val: a get's
 * value; val NULL: not found, or a put/del's OK.
 */
static void model_answer(struct mconn *mc, struct op *o, int err, const void *val, size_t vlen)
{
	struct keystate *ks = &keys[o->key];
	bool daemon_said = !conn_error(err) && err != -EPROTO;

	o->t_done = tick++;
	o->ms_done = now_ms();
	if (o->recv_ub > o->t_done) /* it may already be known from a later request's answer */
		o->recv_ub = o->t_done;
	o->err = err;
	/*
	 * An answer from the daemon proves that it received every earlier
	 * request of this connection by now. (A broken connection proves
	 * nothing of the kind, but whatever was received was received before
	 * the break: o's own bound holds.)
	 */
	if (daemon_said) {
		for (struct op *x = mc->head; x && x != o; x = x->cnext) {
			if (x->recv_ub > o->t_done)
				x->recv_ub = o->t_done;
		}
	}
	if (o->cprev)
		o->cprev->cnext = o->cnext;
	else
		mc->head = o->cnext;
	if (o->cnext)
		o->cnext->cprev = o->cprev;
	else
		mc->tail = o->cprev;
	mc->inflight--;
	free(o->val);
	o->val = NULL;
	ks->dirty = true;
	if (err)
		count_err(err);

	switch (o->kind) {
	case K_PUT:
		if (!err) {
			o->outcome = O_OK;
			S.put_ok++;
		} else if (err == -ENOSPC || err == -E2BIG || err == -EINVAL) {
			o->outcome = O_FAILED;
			S.put_failed++;
		} else {
			o->outcome = O_UNCERTAIN;
			S.uncertain_put++;
		}
		break;
	case K_DEL:
		if (!err) {
			o->outcome = O_OK;
			S.del_ok++;
		} else if (err == -ENOENT) {
			/* Rule 3: no effect; it read "absent" at its place. */
			o->outcome = O_NOTFOUND;
			o->res = R_ABSENT;
			S.del_nf++;
			vec_remove(&ks->hist, o);
			vec_push(&ks->reads, o);
		} else if (err == -ENOSPC || err == -E2BIG || err == -EINVAL) {
			o->outcome = O_FAILED;
			S.del_failed++;
		} else {
			o->outcome = O_UNCERTAIN;
			S.uncertain_del++;
		}
		break;
	default:
		if (!err || err == -ENOENT) {
			o->outcome = O_OK;
			read_result(o, err ? NULL : val, vlen);
			if (err)
				S.get_nf++;
			else
				S.get_val++;
		} else {
			o->outcome = O_DROPPED;
			o->res = R_NONE;
		}
		break;
	}
	ring_add(o->key, o);
	/* A write refused for sure is neither a value nor an order: forget it now. */
	if (o->outcome == O_FAILED) {
		vec_remove(&ks->hist, o);
		op_free(o);
	}
}

/* --- the checker's self-check: known histories, known verdicts --- */

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

static struct mconn st_conn[4];
static uint64_t st_n;

static struct op *st_send(int c, int kind, uint32_t k)
{
	struct op *o = calloc(1, sizeof(*o));

	if (!o)
		abort();
	o->id = ((uint64_t)c + 1) << 40 | ++st_n;
	o->kind = kind;
	o->key = k;
	o->len = kind == K_PUT ? (st_n * 37) % 3 == 0 ? 7 : 100 + st_n % 50 : 0;
	model_send(&st_conn[c], o);
	return o;
}

static void st_answer(int c, struct op *o, int err)
{
	model_answer(&st_conn[c], o, err, NULL, 0);
	model_settle(o->key);
}

/*
 * A get on connection c answered with the value of put w (NULL: not found);
 * tear: 5000 bytes of w's stream with the last one wrong.
 */
static void st_get(int c, struct op *g, const struct op *w, bool tear)
{
	uint64_t len = w ? tear ? 5000 : w->len : 0;
	uint8_t *v = NULL;

	if (w) {
		v = malloc(len + 1);
		if (!v)
			abort();
		value_fill(v, len, w->key, w->id);
		if (tear)
			v[len - 1] ^= 1;
	}
	model_answer(&st_conn[c], g, w ? 0 : -ENOENT, v, len);
	model_settle(g->key);
	free(v);
}

static void st_restart(void)
{
	for (int c = 0; c < 4; c++)
		st_conn[c].gen++;
	epoch++;
}

/* Each scenario: a history and how many violations the checker must report. */
static void selftest(void)
{
	struct op *p, *p1, *p2, *d, *g, *g2, *u, *x, *b;
	unsigned failures = 0;

#define SCENARIO(name, expect, body)                                                               \
	do {                                                                                       \
		model_reset();                                                                     \
		for (int c_ = 0; c_ < 4; c_++)                                                     \
			st_conn[c_] = (struct mconn){ .idx = c_ };                                 \
		selftest_violations = 0;                                                           \
		body;                                                                              \
		for (unsigned k_ = 0; k_ < 4; k_++)                                                \
			model_settle(k_);                                                          \
		if (selftest_violations != (expect)) {                                             \
			fprintf(stderr,                                                            \
				"checker self-check '%s': %" PRIu64 " violations, want %d\n",      \
				name, selftest_violations, (int)(expect));                         \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

	selftest_mode = true;
	verbose = env_u64("STRESS_SELFTEST", 0) >= 2;
	SCENARIO("pipelined put;del answered NOT_FOUND", 1, {
		p = st_send(0, K_PUT, 0);
		d = st_send(0, K_DEL, 0);
		st_answer(0, d, -ENOENT);
		st_answer(0, p, 0);
	});
	SCENARIO("pipelined put;del, the put refused: NOT_FOUND is right", 0, {
		p = st_send(0, K_PUT, 0);
		d = st_send(0, K_DEL, 0);
		st_answer(0, d, -ENOENT);
		st_answer(0, p, -ENOSPC);
	});
	SCENARIO("pipelined put;get returns the old state", 1, {
		p = st_send(0, K_PUT, 0);
		g = st_send(0, K_GET, 0);
		st_get(0, g, NULL, false);
		st_answer(0, p, 0);
	});
	SCENARIO("pipelined put;get returns the put", 0, {
		p = st_send(0, K_PUT, 0);
		g = st_send(0, K_GET, 0);
		st_get(0, g, p, false);
		st_answer(0, p, 0);
	});
	SCENARIO("deleted value comes back", 1, {
		p = st_send(0, K_PUT, 0);
		d = st_send(0, K_DEL, 0);
		st_answer(0, p, 0);
		st_answer(0, d, 0);
		g = st_send(1, K_GET, 0);
		st_get(1, g, p, false);
	});
	SCENARIO("concurrent put: old or new, then only new", 1, {
		p1 = st_send(0, K_PUT, 0);
		st_answer(0, p1, 0);
		p2 = st_send(1, K_PUT, 0);
		g = st_send(2, K_GET, 0);
		g2 = st_send(3, K_GET, 0);
		st_get(2, g, p1, false);
		st_get(3, g2, p2, false);
		st_answer(1, p2, 0);
		g = st_send(2, K_GET, 0);
		st_get(2, g, p1, false); /* stale: p2 was acknowledged before it was sent */
	});
	SCENARIO("refused put read back", 1, {
		p = st_send(0, K_PUT, 0);
		st_answer(0, p, -ENOSPC);
		g = st_send(1, K_GET, 0);
		st_get(1, g, p, false);
	});
	SCENARIO("torn value", 1, {
		p = st_send(0, K_PUT, 1);
		st_answer(0, p, 0);
		g = st_send(1, K_GET, 1);
		st_get(1, g, p, true);
	});
	SCENARIO("acknowledged put lost in a kill", 1, {
		p = st_send(0, K_PUT, 0);
		st_answer(0, p, 0);
		st_restart();
		g = st_send(CHECK_CONN % 4, K_GET, 0);
		st_get(CHECK_CONN % 4, g, NULL, false);
	});
	SCENARIO("uncertain put: either way, and late", 0, {
		p = st_send(0, K_PUT, 0);
		st_answer(0, p, 0);
		u = st_send(1, K_PUT, 0);
		g = st_send(2, K_GET, 0);
		st_get(2, g, p, false);
		st_answer(1, u, -ECONNRESET);
		st_restart();
		g = st_send(2, K_GET, 0);
		st_get(2, g, p, false);
		st_restart();
		g = st_send(2, K_GET, 0);
		st_get(2, g, u, false); /* it may appear only after a later restart */
	});
	strict = true;
	SCENARIO("STRESS_STRICT: uncertain put seen, then the older value again", 1, {
		p = st_send(0, K_PUT, 0);
		st_answer(0, p, 0);
		u = st_send(1, K_PUT, 0);
		st_answer(1, u, -EIO);
		g = st_send(2, K_GET, 0);
		st_get(2, g, u, false);
		g = st_send(2, K_GET, 0);
		st_get(2, g, p, false);
	});
	strict = false;
	SCENARIO("uncertain put seen, then the older value again: allowed by the rules", 0, {
		p = st_send(0, K_PUT, 0);
		st_answer(0, p, 0);
		u = st_send(1, K_PUT, 0);
		st_answer(1, u, -EIO);
		g = st_send(2, K_GET, 0);
		st_get(2, g, u, false);
		g = st_send(2, K_GET, 0);
		st_get(2, g, p, false);
	});
	SCENARIO("an uncertain write is no barrier", 0, {
		p = st_send(0, K_PUT, 0);
		st_answer(0, p, 0);
		u = st_send(1, K_DEL, 0);
		st_answer(1, u, -EIO);
		g = st_send(2, K_GET, 0);
		st_get(2, g, p, false);
	});
	SCENARIO("order through another key of the same connection", 1, {
		/* w on conn 0, then x (another key) on conn 0 answered: w was received
		 * before x's answer, so before b, which was sent after it. */
		p = st_send(0, K_PUT, 0);
		x = st_send(0, K_PUT, 1);
		st_answer(0, x, 0);
		b = st_send(1, K_PUT, 0);
		st_answer(1, b, 0);
		st_answer(0, p, 0);
		g = st_send(2, K_GET, 0);
		st_get(2, g, p, false);
	});
	SCENARIO("delete of a key with a put in flight, concurrent: NOT_FOUND is fine", 0, {
		p = st_send(0, K_PUT, 0);
		d = st_send(1, K_DEL, 0);
		st_answer(1, d, -ENOENT);
		st_answer(0, p, 0);
	});
	SCENARIO("history stays bounded", 0, {
		for (int i = 0; i < 20000; i++) {
			p = st_send(i % 3, K_PUT, 2);
			g = st_send(3, K_GET, 2);
			st_answer(i % 3, p, i % 7 == 3 ? -EIO : 0);
			st_get(3, g, p, false);
		}
		if (keys[2].hist.n > 8) {
			fprintf(stderr, "checker self-check: %zu writes kept\n", keys[2].hist.n);
			failures++;
		}
	});
	(void)u;
	(void)d;
	selftest_mode = false;
	verbose = false;
	model_reset();
	memset(&S, 0, sizeof(S));
	if (failures) {
		fprintf(stderr, "FAIL: the checker's self-check failed %u times\n", failures);
		exit(1);
	}
#undef SCENARIO
}

/* --- the daemon --- */

static struct zt_daemon d;

/* On the way out after a failure: the daemon stopped, its log shown, the directory kept. */
static void daemon_gone(void)
{
	char cmd[400];

	if (!d.dir[0])
		return;
	if (d.pid) {
		kill(d.pid, SIGKILL);
		waitpid(d.pid, NULL, 0);
		d.pid = 0;
	}
	fprintf(stderr, "--- daemon log %s (last 30 lines) ---\n", d.log);
	fflush(stderr);
	snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", d.log);
	if (system(cmd) < 0)
		perror("system");
	fprintf(stderr, "--- test directory kept for inspection: %s ---\n", d.dir);
}

/* Interrupted (^C, a timeout): no daemon left behind. */
static void on_signal(int sig)
{
	if (d.pid)
		kill(d.pid, SIGKILL);
	_exit(128 + sig);
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL test-stress (STRESS_SEED=%" PRIu64 "): ", seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	daemon_gone();
	exit(1);
}

/* Still running? Leaves a dead daemon unreaped, for zt_stop to reap. */
static bool daemon_alive(int *status)
{
	siginfo_t si = { 0 };

	if (!d.pid)
		return false;
	if (waitid(P_PID, d.pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return false;
	if (si.si_pid != d.pid)
		return true;
	*status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	return false;
}

static void set_args(bool sync_always)
{
	size_t n = 0;

	d.args[n++] = "--size";
	d.args[n++] = dev_size;
	d.args[n++] = "--zone-size";
	d.args[n++] = zone_size;
	d.args[n++] = "--sync";
	d.args[n++] = sync_always ? "always" : "none";
	d.args[n] = NULL;
}

/* The counters of a daemon about to go: they die with it. */
static void collect_stats(void)
{
	zap_client *c;
	uint64_t v;

	if (zap_connect(d.sock, &c))
		return;
	S.gc_moved += zt_stat(c, "gc_bytes_moved");
	S.zones_reset += zt_stat(c, "zones_reset");
	v = zt_stat(c, "max_inflight_per_zone");
	if (v > S.max_inflight_zone)
		S.max_inflight_zone = v;
	zap_close(c);
}

/* --- the clients --- */

struct conn {
	struct mconn m;
	zap_client *c;
	uint64_t rng, nops;
	unsigned depth;
	bool have_next;
	uint8_t next_kind;
	uint32_t next_key, burst_key, burst_left;
	uint64_t next_len;
};

static struct conn conns[MAX_CONNS];
static struct mconn check_mc = { .idx = CHECK_CONN };
static uint64_t put_bytes_out;
static unsigned heavy; /* this phase's weight of large values, 0..2 */

static uint64_t pick_len(uint64_t *rng)
{
	uint64_t r = zt_rand(rng) % 1000, x = zt_rand(rng);
	uint64_t big = heavy == 2 ? 120 : heavy == 1 ? 60 : 30;

	if (r < 40)
		return 0;
	if (r < 80)
		return 1 + x % (HDR - 1);
	if (r < 1000 - big - 250)
		return HDR + x % 4096;
	if (r < 1000 - big - 120)
		return 4096 + x % 61440;
	if (r < 1000 - big)
		return 65536 + x % (512 * 1024);
	/* Large: up to a zone, or several, so values fill zones while their chunks land. */
	if (r < 1000 - big / 3 || max_value <= zone_bytes)
		return 512 * 1024 + x % (zone_bytes > 512 * 1024 ? zone_bytes - 512 * 1024 + 1 : 1);
	return zone_bytes + x % (max_value - zone_bytes + 1);
}

/* The connection's next operation, from its own generator: the same seed, the same stream. */
static void draw(struct conn *cn)
{
	uint64_t r = zt_rand(&cn->rng), pick = r % 100;

	if (cn->burst_left) {
		/* A burst: put, del and get pipelined on one key (rule 1 and 4 at close range). */
		cn->burst_left--;
		cn->next_key = cn->burst_key;
	} else if ((r >> 8) % 100 < 12) {
		cn->burst_key = (r >> 16) % nkeys;
		cn->burst_left = 1 + (r >> 24) % 5;
		cn->next_key = cn->burst_key;
	} else if ((r >> 32) % 100 < 20) {
		cn->next_key = (r >> 40) % 4; /* hot keys: overlap across connections */
	} else {
		cn->next_key = (r >> 40) % nkeys;
	}
	cn->next_kind = pick < 45 ? K_PUT : pick < 58 ? K_DEL : K_GET;
	cn->next_len = cn->next_kind == K_PUT ? pick_len(&cn->rng) : 0;
	cn->have_next = true;
}

static void op_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct op *o = arg;
	struct mconn *mc = o->conn == CHECK_CONN ? &check_mc : &conns[o->conn].m;

	(void)c;
	if (o->kind == K_PUT)
		put_bytes_out -= o->len;
	if (r->err && (conn_error(r->err) || r->err == -EPROTO)) {
		/*
		 * Later requests go on a new connection: no order with this
		 * one's. An error the daemon did not cause is a failure.
		 */
		mc->gen++;
		if (!expect_conn_errors)
			die("%s op %d:%" PRIu64 " of key %u failed while the daemon was up: %s",
			    kind_name(o->kind), o->conn, o->id & ID_SEQ_MASK, o->key,
			    zap_strerror(r->err));
	}
	if (o->kind == K_GET && r->err && r->err != -ENOENT && !conn_error(r->err))
		violation(o->key, "a get of key %u (conn %d.%u, sent t%" PRIu64 ") failed: %s%s%s",
			  o->key, o->conn, o->gen, o->t_sent, zap_strerror(r->err),
			  r->message ? ": " : "", r->message ? r->message : "");
	model_answer(mc, o, r->err, r->val, r->vlen);
	free(r->val);
}

static bool issue(struct conn *cn)
{
	struct op *o;
	int ret;

	if (!cn->have_next)
		draw(cn);
	if (cn->next_kind == K_PUT && put_bytes_out &&
	    put_bytes_out + cn->next_len > inflight_budget)
		return false;
	if (!cn->c) {
		ret = zap_connect(d.sock, &cn->c);
		if (ret)
			die("connect: %s", zap_strerror(ret));
		cn->m.gen++;
	}
	/* Failed requests' callbacks first: they tell of a broken connection (a new gen). */
	if (zap_fd(cn->c) < 0 && zap_pending(cn->c))
		zap_process(cn->c);
	o = calloc(1, sizeof(*o));
	if (!o)
		abort();
	o->id = (uint64_t)(cn->m.idx + 1) << 40 | ++cn->nops;
	o->kind = cn->next_kind;
	o->key = cn->next_key;
	o->len = cn->next_len;
	if (o->kind == K_PUT) {
		o->val = malloc(o->len ? o->len : 1);
		if (!o->val)
			abort();
		value_fill(o->val, o->len, o->key, o->id);
		ret = zap_put_async(cn->c, key_names[o->key], key_lens[o->key], o->val, o->len,
				    op_cb, o);
	} else if (o->kind == K_DEL) {
		ret = zap_del_async(cn->c, key_names[o->key], key_lens[o->key], op_cb, o);
	} else {
		ret = zap_get_async(cn->c, key_names[o->key], key_lens[o->key], op_cb, o);
	}
	if (ret)
		die("queueing %s of key %u: %s", kind_name(o->kind), o->key, zap_strerror(ret));
	/* Queued, not yet sent: nothing leaves before zap_process. */
	model_send(&cn->m, o);
	if (o->kind == K_PUT) {
		put_bytes_out += o->len;
		S.put_bytes += o->len;
	}
	cn->have_next = false;
	return true;
}

static unsigned total_inflight(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < nconns; i++)
		n += conns[i].m.inflight;
	return n;
}

static void settle_all(void)
{
	for (unsigned k = 0; k < nkeys; k++) {
		if (keys[k].dirty)
			model_settle(k);
	}
}

/* A request unanswered for too long: a hang (issue 13's full device) is a failure too. */
static void check_hang(void)
{
	for (unsigned i = 0; i < nconns; i++) {
		const struct op *o = conns[i].m.head;

		if (o && now_ms() - o->ms_sent > hang_seconds * 1e3) {
			fprintf(stderr, "the oldest request in flight:\n");
			print_op(stderr, "    ", o);
			if (d.pid) {
				zap_client *c;

				if (!zap_connect(d.sock, &c)) {
					fprintf(stderr,
						"daemon: waiting_for_space %" PRIu64
						" used_bytes %" PRIu64 " live_bytes %" PRIu64
						" gc_bytes_moved %" PRIu64 "\n",
						zt_stat(c, "waiting_for_space"),
						zt_stat(c, "used_bytes"), zt_stat(c, "live_bytes"),
						zt_stat(c, "gc_bytes_moved"));
					zap_close(c);
				}
			}
			die("%s of key %u on conn %d unanswered for %.0f s (%u requests in flight)",
			    kind_name(o->kind), o->key, o->conn, hang_seconds, total_inflight());
		}
	}
}

/* One round of the event loop: poll every connection, then let each process. */
static void pump(bool allow_issue)
{
	struct pollfd pfd[MAX_CONNS];
	unsigned n = 0;
	int status;

	for (unsigned i = 0; allow_issue && i < nconns; i++) {
		struct conn *cn = &conns[i];

		while (cn->m.inflight < cn->depth && issue(cn))
			;
	}
	for (unsigned i = 0; i < nconns; i++) {
		int fd = conns[i].c ? zap_fd(conns[i].c) : -1;

		if (fd < 0)
			continue;
		pfd[n].fd = fd;
		pfd[n].events = POLLIN | (zap_want_write(conns[i].c) ? POLLOUT : 0);
		pfd[n].revents = 0;
		n++;
	}
	if (n && poll(pfd, n, 20) < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	if (!n)
		zt_sleep_ms(1);
	for (unsigned i = 0; i < nconns; i++) {
		if (conns[i].c && (zap_fd(conns[i].c) >= 0 || zap_pending(conns[i].c)))
			zap_process(conns[i].c);
	}
	settle_all();
	check_hang();
	if (!expect_conn_errors && !daemon_alive(&status))
		die("zappendd died under load (status %d); log: %s", status, d.log);
}

static void close_conns(void)
{
	for (unsigned i = 0; i < nconns; i++) {
		/* Pending requests complete with -ECANCELED: uncertain, as at a kill. */
		zap_close(conns[i].c);
		conns[i].c = NULL;
		conns[i].m.gen++;
	}
	settle_all();
	if (total_inflight())
		die("requests left in flight after closing the connections");
}

struct list_ctx {
	bool seen[MAX_KEYS];
	const bool *exists;
	unsigned n;
};

static int list_one(const void *key, size_t klen, void *arg)
{
	struct list_ctx *x = arg;

	for (unsigned k = 0; k < nkeys; k++) {
		if (klen != key_lens[k] || memcmp(key, key_names[k], klen))
			continue;
		if (x->seen[k] || !x->exists[k]) {
			violation(k, "the listing after a restart has key %u %s", k,
				  x->seen[k] ? "twice" : "which get found absent");
			return 0;
		}
		x->seen[k] = true;
		x->n++;
		return 0;
	}
	die("the listing has a key never written: %.*s", (int)(klen > 80 ? 80 : klen),
	    (const char *)key);
}

/*
 * NO_SPACE is a fair answer on a store this small, so the model alone cannot
 * tell a full store from one that can no longer make room (GC with nowhere
 * to copy to). With at most half the capacity live, a small put must go
 * through, GC given a few seconds.
 */
static void check_room(zap_client *c)
{
	uint64_t live = zt_stat(c, "live_bytes"), cap = zt_stat(c, "capacity_bytes");
	double until = zt_now() + 10;
	int ret;

	if (live > cap / 2)
		return;
	while ((ret = zap_put(c, "stress-probe", 12, "room?", 5, NULL)) == -ENOSPC &&
	       zt_now() < until)
		zt_sleep_ms(100);
	if (ret)
		die("the store is wedged: %" PRIu64 " of %" PRIu64
		    " bytes live, yet a put of 5 bytes gets %s (zones_empty %" PRIu64
		    ", used_bytes %" PRIu64 ", gc_victims_given_up %" PRIu64 ")",
		    live, cap, zap_strerror(ret), zt_stat(c, "zones_empty"),
		    zt_stat(c, "used_bytes"), zt_stat(c, "gc_victims_given_up"));
	ret = zap_del(c, "stress-probe", 12);
	if (ret)
		die("deleting the probe key: %s", zap_strerror(ret));
}

/* After a restart: every key read and checked, the listing exactly the keys found. */
static void check_all(void)
{
	bool exists[MAX_KEYS] = { false };
	struct list_ctx lx = { .exists = exists };
	unsigned nexist = 0;
	zap_client *c;
	uint64_t nk;
	int ret;

	c = zt_connect(&d);
	check_mc.gen++;
	for (unsigned k = 0; k < nkeys; k++) {
		struct op *o = calloc(1, sizeof(*o));
		void *val = NULL;
		size_t vlen = 0;

		if (!o)
			abort();
		o->id = (uint64_t)(CHECK_CONN + 1) << 40 | (tick & ID_SEQ_MASK);
		o->kind = K_GET;
		o->key = k;
		model_send(&check_mc, o);
		ret = zap_get(c, key_names[k], key_lens[k], &val, &vlen);
		if (ret && ret != -ENOENT)
			violation(k, "the check after a restart: get of key %u failed: %s", k,
				  zap_strerror(ret));
		exists[k] = !ret;
		nexist += !ret;
		model_answer(&check_mc, o, ret, val, vlen);
		free(val);
		model_settle(k);
	}
	ret = zap_list(c, NULL, 0, list_one, &lx);
	if (ret)
		die("listing the keys after a restart: %s", zap_strerror(ret));
	if (lx.n != nexist) {
		for (unsigned k = 0; k < nkeys; k++) {
			if (exists[k] && !lx.seen[k])
				violation(
				    k, "the listing after a restart lacks key %u, which get found",
				    k);
		}
	}
	nk = zt_stat(c, "keys");
	if (nk != nexist)
		violation(0, "stat says keys %" PRIu64 " after a restart, but %u keys exist", nk,
			  nexist);
	check_room(c);
	zap_close(c);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k':
	case 'K':
		return v << 10;
	case 'm':
	case 'M':
		return v << 20;
	case 'g':
	case 'G':
		return v << 30;
	default:
		return v;
	}
}

enum ending { END_KILL, END_TERM_INFLIGHT, END_DRAIN };

int main(void)
{
	const char *fault = getenv("STRESS_FAULT");
	uint64_t seconds = env_u64("STRESS_SECONDS", UNDER_ASAN ? 25 : 45);
	uint64_t max_ops = env_u64("STRESS_OPS", 0), rng, total_sent = 0;
	static char fault_spec[512];
	int status;

	t0 = zt_now();
	seed = env_u64("STRESS_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20));
	printf("stress: STRESS_SEED=%" PRIu64 "\n", seed);
	fflush(stdout);
	selftest();
	if (getenv("STRESS_SELFTEST") && *getenv("STRESS_SELFTEST")) {
		printf("stress: the checker's self-check passed\n");
		return 0;
	}

	if (getenv("STRESS_SIZE"))
		dev_size = getenv("STRESS_SIZE");
	if (getenv("STRESS_ZONE_SIZE"))
		zone_size = getenv("STRESS_ZONE_SIZE");
	dev_bytes = parse_size(dev_size);
	zone_bytes = parse_size(zone_size);
	nkeys = env_u64("STRESS_KEYS", nkeys);
	nconns = env_u64("STRESS_CONNS", nconns);
	max_depth = env_u64("STRESS_MAX_DEPTH", max_depth);
	max_value =
	    getenv("STRESS_MAX_VALUE") ? parse_size(getenv("STRESS_MAX_VALUE")) : 3 * zone_bytes;
	inflight_budget = getenv("STRESS_INFLIGHT_BYTES")
			      ? parse_size(getenv("STRESS_INFLIGHT_BYTES"))
			      : 64 << 20;
	hang_seconds = env_u64("STRESS_HANG_SECONDS", UNDER_ASAN ? 120 : 60);
	keep_going = env_u64("STRESS_KEEP_GOING", 1);
	if (!keep_going)
		keep_going = 1;
	verbose = env_u64("STRESS_VERBOSE", 0);
	strict = env_u64("STRESS_STRICT", 0);
	if (nkeys < 4 || nkeys > MAX_KEYS || !nconns || nconns > MAX_CONNS || !max_depth ||
	    !zone_bytes || dev_bytes < 4 * zone_bytes) {
		fprintf(stderr, "bad STRESS_* settings\n");
		return 2;
	}
	if (fault && *fault) {
		/* The fault device draws from its own seed: derive it from ours unless given. */
		if (!strcmp(fault, "1"))
			fault = "delay=20:2000,flush_delay=30:5000,append_fail=1,append_lie=1,"
				"append_short=1";
		if (strstr(fault, "seed="))
			snprintf(fault_spec, sizeof(fault_spec), "%s", fault);
		else
			snprintf(fault_spec, sizeof(fault_spec), "seed=%" PRIu64 ",%s", seed,
				 fault);
	}
	if (!(fault && *fault) &&
	    access(getenv("ZAPPENDD") ? getenv("ZAPPENDD") : "./zappendd", X_OK)) {
		fprintf(stderr, "SKIP: no zappendd (set ZAPPENDD)\n");
		return ZT_SKIP;
	}
	for (unsigned k = 0; k < nkeys; k++) {
		/* Some long keys, so records cross block boundaries in many ways. */
		size_t n = snprintf(key_names[k], sizeof(key_names[k]), "stress/%02u/", k);
		size_t pad = k % 7 == 5 ? 100 + k * 13 % 250 : k * 7 % 23;

		for (size_t i = 0; i < pad; i++)
			key_names[k][n++] = 'a' + (k + i) % 26;
		key_lens[k] = n;
	}
	printf("stress: device %s zones %s, %u keys, %u connections up to %u deep, values up to "
	       "%" PRIu64 " bytes\n",
	       dev_size, zone_size, nkeys, nconns, max_depth, max_value);
	if (max_ops)
		printf("stress: STRESS_OPS=%" PRIu64 "\n", max_ops);
	else
		printf("stress: STRESS_SECONDS=%" PRIu64 "\n", seconds);
	if (fault && *fault)
		printf("stress: ZAPPEND_FAULT=%s\n", fault_spec);
	fflush(stdout);

	rng = seed;
	model_reset();
	for (unsigned i = 0; i < nconns; i++) {
		conns[i].m.idx = i;
		conns[i].rng = mix(seed, i + 1);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	zt_init(&d, NULL);
	set_args(true);
	if (fault && *fault) {
		/*
		 * Formatted first without faults: a format whose superblock write
		 * fails ends the start with an error, rightly, and leaves nothing to
		 * test (STRESS_SEED=1202 did).
		 */
		zt_start(&d);
		if (zt_stop(&d))
			die("zappendd did not exit cleanly after the format");
		zt_use_fault(&d, fault_spec); /* exits 77 without $ZAPPENDD_FAULT */
	}
	zt_start(&d);
	check_all();

	for (unsigned phase = 0;; phase++) {
		uint64_t r = zt_rand(&rng), phase_ops, sent0 = total_sent, ph_moved = S.gc_moved;
		double phase_end, t_phase = zt_now();
		enum ending end;
		bool sync_always = phase % 2 == 0;

		if (max_ops ? total_sent >= max_ops : zt_now() - t0 >= (double)seconds)
			break;
		/* Phase shape: length, how deep each connection pipelines, how large the values. */
		phase_ops = 50 + r % (r % 3 ? 1500 : 6000);
		/* Phases end on their count of operations (the seed's choice); time only as a
		 * backstop. */
		phase_end = zt_now() + 10;
		end = (r >> 8) % 100 < 55   ? END_KILL
		      : (r >> 8) % 100 < 75 ? END_TERM_INFLIGHT
					    : END_DRAIN;
		heavy = (r >> 16) % 3;
		for (unsigned i = 0; i < nconns; i++) {
			uint64_t x = zt_rand(&rng);

			conns[i].depth = x % 4 == 0 ? 1 : 1 + (unsigned)(x >> 8) % max_depth;
		}
		S.phases++;
		while (total_sent - sent0 < phase_ops && zt_now() < phase_end &&
		       !(max_ops && total_sent >= max_ops)) {
			pump(true);
			total_sent = S.sent[K_PUT] + S.sent[K_DEL] + S.sent[K_GET];
		}
		if (end == END_DRAIN) {
			while (total_inflight())
				pump(false);
		}
		collect_stats();
		expect_conn_errors = true;
		if (end == END_KILL) {
			zt_kill(&d);
			S.kills++;
			note_event("kill -9");
		} else {
			/* SIGTERM: the daemon answers what it has in flight, then exits 0. */
			double t_stop = zt_now();

			kill(d.pid, SIGTERM);
			while (daemon_alive(&status)) {
				if (zt_now() - t_stop > hang_seconds)
					die("zappendd did not exit within %.0f s of SIGTERM",
					    hang_seconds);
				pump(false);
			}
			if (end == END_TERM_INFLIGHT)
				S.term_inflight++;
			status = zt_stop(&d);
			if (status)
				die("zappendd exited with status %d on SIGTERM; log: %s", status,
				    d.log);
			S.restarts++;
			note_event(end == END_DRAIN ? "SIGTERM (drained)" : "SIGTERM (in flight)");
		}
		close_conns();
		epoch++;
		if (verbose)
			printf("phase %u: --sync %s, %" PRIu64
			       " ops in %.2f s, depths %u.., heavy %u, "
			       "ended by %s, GC moved %" PRIu64 " KiB\n",
			       phase, sync_always ? "always" : "none", total_sent - sent0,
			       zt_now() - t_phase, conns[0].depth, heavy,
			       end == END_KILL		  ? "kill -9"
			       : end == END_TERM_INFLIGHT ? "SIGTERM in flight"
							  : "SIGTERM drained",
			       (S.gc_moved - ph_moved) >> 10);
		set_args(!sync_always);
		zt_start(&d);
		expect_conn_errors = false;
		check_all();
		fflush(stdout);
	}
	/* A last clean restart keeps everything too. */
	collect_stats();
	expect_conn_errors = true;
	if (zt_stop(&d))
		die("zappendd did not exit cleanly");
	S.restarts++;
	note_event("SIGTERM (final)");
	epoch++;
	zt_start(&d);
	expect_conn_errors = false;
	check_all();
	collect_stats();
	if (zt_stop(&d))
		die("zappendd did not exit cleanly");
	printf("stress: %s STRESS_SEED=%" PRIu64 " %.1f s, phases %" PRIu64 "; ops put %" PRIu64
	       " del %" PRIu64 " get %" PRIu64 " (%" PRIu64 " MiB put); acknowledged put %" PRIu64
	       " del %" PRIu64 " del-not-found %" PRIu64 " get-value %" PRIu64
	       " get-not-found %" PRIu64 "; refused put %" PRIu64 " del %" PRIu64
	       "; uncertain put %" PRIu64 " del %" PRIu64 " (seen applied %" PRIu64
	       "); errors nospc %" PRIu64 " toolarge %" PRIu64 " invalid %" PRIu64 " io %" PRIu64
	       " busy %" PRIu64 " conn %" PRIu64 " other %" PRIu64 "; restarts %" PRIu64
	       " (in flight %" PRIu64 "), kills %" PRIu64 "; reads checked %" PRIu64
	       "; GC moved %" PRIu64 " MiB, zones reset %" PRIu64
	       ", max in flight per zone %" PRIu64 "; model max %" PRIu64
	       " writes per key; divergences %" PRIu64 "\n",
	       S.divergences ? "FAIL" : "PASS", seed, zt_now() - t0, S.phases, S.sent[K_PUT],
	       S.sent[K_DEL], S.sent[K_GET], S.put_bytes >> 20, S.put_ok, S.del_ok, S.del_nf,
	       S.get_val, S.get_nf, S.put_failed, S.del_failed, S.uncertain_put, S.uncertain_del,
	       S.seen_uncertain, S.errs_nospc, S.errs_2big, S.errs_inval, S.errs_io, S.errs_busy,
	       S.errs_conn, S.errs_other, S.restarts, S.term_inflight, S.kills, S.checks,
	       S.gc_moved >> 20, S.zones_reset, S.max_inflight_zone, S.max_hist, S.divergences);
	zt_cleanup(&d);
	model_reset();
	return S.divergences ? 1 : 0;
}
