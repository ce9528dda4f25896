/*
 * Crash torture: many clients put, overwrite and delete values of random
 * sizes while zappendd is killed with SIGKILL at a random moment, round after
 * round; after every restart each key is checked against the clients' own
 * logs of what was acknowledged.
 *
 * The model. Every value is derived from (key, op id), so any bytes read back
 * can be checked without keeping them. Each client logs its operations with
 * the times it sent them and got the answer; an operation that ended in an
 * error (the kill, or a NO_SPACE answer) is "uncertain": it may or may not
 * have happened, but if it did, it happened before it returned. After a
 * restart, a key may hold the result of:
 *   - the state verified at the start of the round, if no operation on the
 *     key was acknowledged in the round;
 *   - an operation X of the round, unless some acknowledged operation on the
 *     key was sent after X returned (it is newer than X), or X is an
 *     acknowledged put and an acknowledged put of the key has a higher
 *     sequence number.
 * Nothing else: not an older acknowledged version, not a torn value, not
 * another key's bytes. Each client owns a disjoint set of keys, where this
 * leaves exactly the last acknowledged operation plus the one in flight; a
 * few keys are shared by all clients, where it leaves the operations that
 * overlapped at the end. The state read back becomes the next round's start.
 *
 * Also checked: `keys` of stat, the listing (every existing key once, nothing
 * else), keys never written are not found, sequence numbers of acknowledged
 * puts only grow (also across restarts), and reads during the round return
 * the client's own newest value. Half the rounds run with --sync none (a kill,
 * unlike a power loss, keeps what was written), some kill the daemon again
 * while it recovers, and the device is formatted again when it fills up.
 *
 * Environment: TORTURE_ROUNDS (default 12), TORTURE_SEED (default: the time;
 * printed), TORTURE_VERBOSE=1 (a line per round), TORTURE_SIZE and
 * TORTURE_ZONE_SIZE (device geometry, default 384M and 16M: small, so that GC runs).
 *
 * TORTURE_PROFILE=large (the default of test-torture-large, built with
 * -DTORTURE_LARGE): a 64 MiB device of 4 MiB zones whose device fills while
 * a large value is still landing (issue 13). Fewer keys (160 own, 8 shared)
 * with values of up to 64 KiB; worker 0 also puts values of 1 to 40 MiB,
 * keeping at most two (it deletes the older before it puts a third): two may
 * not fit (NO_SPACE is a fair answer), and GC runs under most of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WORKERS	    8
#define OWN_KEYS    2000 /* at most; key k belongs to worker k % WORKERS */
#define SHARED_KEYS 40	 /* at most */
#define NKEYS	    (OWN_KEYS + SHARED_KEYS)
#define NEVER_KEYS  16
#define SMALL_MAX   (300 * 1024)
#define BIG_MIN	    (1024 * 1024)
#define BIG_MAX	    (3 * 1024 * 1024)
/*
 * The device is formatted again once a round got NO_SPACE or this much of it
 * is used; with garbage collection it may never fill, and then GC runs under
 * the kills too.
 */
#define FILL_LIMIT 0.97
#define KEY_MAX	   1024

enum { OP_PUT, OP_DEL };
enum { ACKED, UNCERTAIN };

struct op {
	uint64_t id;  /* unique in the run: names the value of a put */
	uint64_t seq; /* of an acknowledged put */
	int64_t t_send, t_end;
	uint32_t key;
	uint32_t len;
	uint8_t type, status, worker;
	int err; /* what an uncertain op returned */
};

struct kstate {
	uint64_t id;
	uint32_t len;
	bool exists;
};

struct worker {
	unsigned id;
	pthread_t th;
	uint64_t rng;
	uint8_t *buf;
	struct op *ops;
	size_t nops, cap;
	uint64_t last_seq;
	int64_t big_key[2]; /* large profile, worker 0: keys of its large values, older first */
	int err;
	int64_t t_err;
	char err_what[128];
	char *fail; /* a failure found by this thread, with its story */
	/* counters */
	uint64_t gets, nospc, checked, applied, not_applied;
};

static struct zt_daemon d;
static uint64_t seed;
static unsigned round_no;
static char phase[64] = "start-up";
static bool verbose;
static const char *dev_size = "384M", *zone_size = "16M";
/* The profile: keys in use, value sizes. */
static unsigned own_keys = OWN_KEYS, shared_keys = SHARED_KEYS, nkeys = NKEYS;
static uint32_t small_max = SMALL_MAX, big_min = BIG_MIN, big_max = BIG_MAX;
static bool large; /* worker 0 puts values of big_min to big_max, one at a time */
static const char *profile = "";
static struct worker workers[WORKERS];
static struct kstate base[NKEYS]; /* verified state at the start of the round */
static struct kstate obs[NKEYS];  /* read back after the restart */
static struct kstate cur[NKEYS];  /* own keys during the round, kept by their owner */
static bool unsure[NKEYS];	  /* own keys with an uncertain op in this round */
static size_t kstart[NKEYS + 1];
static struct op **kops;
static size_t kops_cap;
static atomic_bool stop_flag, full_flag;
static atomic_uint_fast64_t next_id = 1;
static int64_t t_round, t_kill;
static uint64_t seq_floor; /* highest acknowledged seq before this round (since format) */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms(int64_t t)
{
	return t == INT64_MAX ? -1 : (t - t_round) / 1e6;
}

static void sleep_ms(long n)
{
	struct timespec ts = { n / 1000, (n % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void daemon_note(const char *fmt, ...)
{
	int fd = open(d.log, O_WRONLY | O_APPEND | O_CREAT, 0644);
	char line[256];
	va_list ap;
	int n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(fd, line, n) < 0)
		perror("write");
	close(fd);
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
	char cmd[400];
	va_list ap;

	fprintf(stderr, "FAIL test-torture (TORTURE_SEED=%" PRIu64 "%s%s, %s): ", seed,
		*profile ? " TORTURE_PROFILE=" : "", profile, phase);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (d.pid) {
		kill(d.pid, SIGKILL);
		waitpid(d.pid, NULL, 0);
		d.pid = 0;
	}
	fprintf(stderr, "--- daemon log %s (last 60 lines) ---\n", d.log);
	fflush(stderr);
	snprintf(cmd, sizeof(cmd), "tail -n 60 '%s' >&2", d.log);
	if (system(cmd) < 0)
		perror("system");
	fprintf(stderr, "--- test directory kept for inspection: %s ---\n", d.dir);
	exit(1);
}

/* --- keys and values --- */

static size_t key_name(uint32_t k, char *buf)
{
	size_t n = snprintf(buf, KEY_MAX, "t%05u", k);
	/* Key lengths vary, a few of them long, so records cross block boundaries in many ways. */
	size_t pad = k % 50 == 7 ? 400 + k % 600 : (k * 37) % 61;

	for (size_t i = 0; i < pad && n < KEY_MAX; i++)
		buf[n++] = 'a' + (k + i) % 26;
	return n;
}

/* The value of op id for key k: a header naming both (when it fits), then PRNG bytes. */
static void make_value(uint8_t *v, size_t len, uint32_t k, uint64_t id)
{
	uint32_t l = len;

	zt_fill(v, len, id * 0x9e3779b97f4a7c15ull ^ k);
	if (len >= 16) {
		memcpy(v, &id, 8);
		memcpy(v + 8, &k, 4);
		memcpy(v + 12, &l, 4);
	}
}

static uint32_t pick_big(uint64_t *rng)
{
	return big_min + zt_rand(rng) % (big_max - big_min + 1);
}

static uint32_t pick_len(uint64_t *rng)
{
	uint64_t r = zt_rand(rng);
	double u;

	if (!large && r % 100 < 3)
		return pick_big(rng);
	/* log-uniform over 0 .. small_max */
	u = (zt_rand(rng) >> 11) * 0x1.0p-53;
	return (uint32_t)(exp(u * log(small_max + 1.0)) - 1.0);
}

/* --- the clients --- */

static struct op *log_op(struct worker *w)
{
	if (w->nops == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 1024;
		w->ops = realloc(w->ops, w->cap * sizeof(*w->ops));
		if (!w->ops)
			abort();
	}
	return &w->ops[w->nops++];
}

static void worker_fail(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	if (w->fail)
		return;
	va_start(ap, fmt);
	if (vasprintf(&w->fail, fmt, ap) < 0)
		w->fail = strdup("(out of memory)");
	va_end(ap);
}

static bool is_own(uint32_t k)
{
	return k < own_keys;
}

/* A read in the middle of the round: the owner knows exactly what its key holds. */
static bool own_get(struct worker *w, zap_client *c, uint32_t k, const char *key, size_t klen)
{
	void *got = NULL;
	size_t glen = 0;
	int ret = zap_get(c, key, klen, &got, &glen);

	w->gets++;
	if (ret && ret != -ENOENT) {
		w->err = ret;
		w->t_err = now_ns();
		snprintf(w->err_what, sizeof(w->err_what), "get of key %u", k);
		return false;
	}
	if (!unsure[k]) {
		if (ret == -ENOENT && cur[k].exists)
			worker_fail(w,
				    "worker %u: get of key %u during the round: not found, but put "
				    "op %" PRIu64 " (%u bytes) was acknowledged and is its newest",
				    w->id, k, cur[k].id, cur[k].len);
		else if (!ret && !cur[k].exists)
			worker_fail(w,
				    "worker %u: get of key %u during the round returned %zu bytes, "
				    "but the key was deleted (or never written)",
				    w->id, k, glen);
		else if (!ret) {
			make_value(w->buf, cur[k].len, k, cur[k].id);
			if (glen != cur[k].len || memcmp(got, w->buf, glen))
				worker_fail(w,
					    "worker %u: get of key %u during the round returned "
					    "%zu bytes that are not op %" PRIu64
					    " (%u bytes), its newest acknowledged value",
					    w->id, k, glen, cur[k].id, cur[k].len);
		}
	}
	free(got);
	return !w->fail;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	char key[KEY_MAX];
	zap_client *c;
	int ret = zap_connect(d.sock, &c);

	if (ret) {
		w->err = ret;
		w->t_err = now_ns();
		snprintf(w->err_what, sizeof(w->err_what), "connect");
		return NULL;
	}
	while (!atomic_load(&stop_flag)) {
		uint64_t r = zt_rand(&w->rng);
		unsigned pick = r % 100;
		uint32_t k;
		size_t klen;
		struct op *o;
		struct zap_put_info info = { 0 };

		bool big = false;

		/* 8%: a shared key (put 3 times in 4, else delete); else one of its own keys: */
		if (pick < 8) {
			k = own_keys + (r >> 8) % shared_keys;
			pick = pick < 6 ? 0 : 70;
		} else {
			k = w->id + WORKERS * ((r >> 8) % (own_keys / WORKERS));
		}
		/*
		 * Large profile, worker 0, 1 op in 10: a large value, or with two
		 * already, the delete of the older.
		 */
		if (large && w->id == 0 && (r >> 40) % 10 == 0) {
			if (w->big_key[1] >= 0) {
				k = w->big_key[0];
				pick = 70;
			} else {
				big = true;
				pick = 0;
			}
		}
		klen = key_name(k, key);
		/* put below 70, delete below 85, else get */
		if (pick >= 85) {
			if (!own_get(w, c, k, key, klen))
				break;
			continue;
		}
		o = log_op(w);
		*o = (struct op){ .id = atomic_fetch_add(&next_id, 1),
				  .key = k,
				  .worker = w->id,
				  .type = pick < 70 ? OP_PUT : OP_DEL };
		if (o->type == OP_PUT) {
			o->len = big ? pick_big(&w->rng) : pick_len(&w->rng);
			make_value(w->buf, o->len, k, o->id);
			o->t_send = now_ns();
			ret = zap_put(c, key, klen, w->buf, o->len, &info);
		} else {
			o->t_send = now_ns();
			ret = zap_del(c, key, klen);
			/* Nothing to delete: that leaves the key deleted all the same. */
			if (ret == -ENOENT) {
				if (is_own(k) && !unsure[k] && cur[k].exists)
					worker_fail(
					    w,
					    "worker %u: delete of key %u said not found, but "
					    "put op %" PRIu64 " is its newest, acknowledged",
					    w->id, k, cur[k].id);
				ret = 0;
			}
		}
		o->t_end = now_ns();
		/* Asked for once, a large value is counted as there until deleted. */
		if (big) {
			w->big_key[w->big_key[0] >= 0] = k;
		} else if (large && o->type == OP_DEL && (int64_t)k == w->big_key[0] && !ret) {
			w->big_key[0] = w->big_key[1];
			w->big_key[1] = -1;
		}
		if (!ret) {
			o->status = ACKED;
			o->seq = info.seq;
			if (o->type == OP_PUT) {
				if (info.seq <= w->last_seq)
					worker_fail(
					    w,
					    "worker %u: put op %" PRIu64 " of key %u got seq "
					    "%" PRIu64 ", not above its previous put's %" PRIu64,
					    w->id, o->id, k, info.seq, w->last_seq);
				w->last_seq = info.seq;
			}
			if (is_own(k))
				cur[k] = (struct kstate){ .id = o->id,
							  .len = o->len,
							  .exists = o->type == OP_PUT };
		} else {
			o->status = UNCERTAIN;
			o->err = ret;
			if (is_own(k))
				unsure[k] = true;
		}
		if (w->fail)
			break;
		if (ret == -ENOSPC && !atomic_load(&stop_flag)) {
			/* The device is full: the op was refused; format again next round. */
			w->nospc++;
			atomic_store(&full_flag, true);
			continue;
		}
		if (ret) {
			w->err = ret;
			w->t_err = o->t_end;
			snprintf(w->err_what, sizeof(w->err_what), "%s op %" PRIu64 " of key %u",
				 o->type == OP_PUT ? "put" : "delete", o->id, k);
			break;
		}
	}
	zap_close(c);
	return NULL;
}

/* --- the checker --- */

static const char *errname(int err)
{
	return err ? zap_strerror(err) : "ok";
}

static void describe_key(FILE *f, uint32_t k)
{
	const struct kstate *b = &base[k];

	fprintf(f, "\n  key %u (%s, %s); times in ms since the round started, kill at %.3f", k,
		is_own(k) ? "own" : "shared", is_own(k) ? "one writer" : "all writers", ms(t_kill));
	if (b->exists)
		fprintf(f, "\n    at round start: put op %" PRIu64 " of %u bytes", b->id, b->len);
	else
		fprintf(f, "\n    at round start: absent");
	for (size_t i = kstart[k]; i < kstart[k + 1]; i++) {
		const struct op *o = kops[i];

		fprintf(f, "\n    worker %u %s op %" PRIu64, o->worker,
			o->type == OP_PUT ? "put" : "del", o->id);
		if (o->type == OP_PUT)
			fprintf(f, " %u bytes", o->len);
		fprintf(f, " sent %.3f returned %.3f: %s", ms(o->t_send), ms(o->t_end),
			o->status == ACKED ? "acknowledged" : errname(o->err));
		if (o->status == ACKED && o->type == OP_PUT)
			fprintf(f, " seq %" PRIu64, o->seq);
	}
}

/* Whose bytes are these? Names the op from the header, if the value had one. */
static void describe_bytes(FILE *f, uint32_t k, const uint8_t *v, size_t len, uint8_t *tmp)
{
	uint64_t id;
	uint32_t hk, hl;

	if (len < 16) {
		fprintf(f, "\n  returned %zu bytes (too short to name their op)", len);
		return;
	}
	memcpy(&id, v, 8);
	memcpy(&hk, v + 8, 4);
	memcpy(&hl, v + 12, 4);
	fprintf(f, "\n  returned %zu bytes whose header names op %" PRIu64 " of key %u, %u bytes",
		len, id, hk, hl);
	if (hk < nkeys && hl == len && len <= big_max) {
		make_value(tmp, len, hk, id);
		if (!memcmp(tmp, v, len))
			fprintf(f, " (and they are exactly that op's value%s)",
				hk == k ? ": an op that must not be the newest"
					: ": another key's!");
		else {
			size_t i = 0;

			while (i < len && tmp[i] == v[i])
				i++;
			fprintf(f, " (a torn or corrupt copy: first wrong byte at offset %zu)", i);
		}
	}
}

/* Checks one key after a restart; false (with w->fail set) when it is wrong. */
static bool check_key(struct worker *w, zap_client *c, uint32_t k)
{
	char key[KEY_MAX];
	size_t klen = key_name(k, key);
	const struct kstate *b = &base[k];
	int64_t max_send = INT64_MIN;
	uint64_t max_seq = 0;
	bool base_ok, ok = false, uncertain_left = false;
	const struct op *match = NULL;
	void *got = NULL;
	size_t glen = 0;
	int ret;

	for (size_t i = kstart[k]; i < kstart[k + 1]; i++) {
		const struct op *o = kops[i];

		if (o->status != ACKED)
			continue;
		if (o->t_send > max_send)
			max_send = o->t_send;
		if (o->type == OP_PUT && o->seq > max_seq)
			max_seq = o->seq;
	}
	base_ok = max_send == INT64_MIN;
	ret = zap_get(c, key, klen, &got, &glen);
	w->checked++;
	if (ret && ret != -ENOENT) {
		char *msg;
		size_t mlen;
		FILE *f = open_memstream(&msg, &mlen);

		fprintf(f, "get of key %u after the restart failed: %s", k, zap_strerror(ret));
		describe_key(f, k);
		fclose(f);
		w->fail = msg;
		return false;
	}
	if (ret == -ENOENT) {
		ok = base_ok && !b->exists;
	} else if (base_ok && b->exists && b->len == glen) {
		make_value(w->buf, glen, k, b->id);
		ok = !memcmp(w->buf, got, glen);
	}
	for (size_t i = kstart[k]; i < kstart[k + 1] && !ok; i++) {
		const struct op *o = kops[i];

		if (max_send > o->t_end ||
		    (o->status == ACKED && o->type == OP_PUT && max_seq > o->seq))
			continue; /* something newer was acknowledged */
		if (ret == -ENOENT) {
			ok = o->type == OP_DEL;
		} else if (o->type == OP_PUT && o->len == glen) {
			make_value(w->buf, glen, k, o->id);
			ok = !memcmp(w->buf, got, glen);
		}
		if (ok)
			match = o;
	}
	if (!ok) {
		char *msg;
		size_t mlen;
		FILE *f = open_memstream(&msg, &mlen);

		fprintf(f, "key %u after the restart: ", k);
		if (ret == -ENOENT)
			fprintf(f, "not found, but an acknowledged put must have survived");
		else
			fprintf(f, "returned %zu bytes that are none of the values it may hold",
				glen);
		describe_key(f, k);
		if (!ret)
			describe_bytes(f, k, got, glen, w->buf);
		fclose(f);
		w->fail = msg;
		free(got);
		return false;
	}
	/* What became of the op in flight (own keys: the owner's last op, if uncertain)? */
	if (is_own(k) && kstart[k + 1] > kstart[k]) {
		const struct op *last = kops[kstart[k + 1] - 1];

		uncertain_left = last->status == UNCERTAIN && last->err != -ENOSPC;
		if (uncertain_left && match == last)
			w->applied++;
		else if (uncertain_left)
			w->not_applied++;
	}
	if (ret == -ENOENT)
		obs[k] = (struct kstate){ 0 };
	else if (match)
		obs[k] = (struct kstate){ .id = match->id, .len = glen, .exists = true };
	else
		obs[k] = *b;
	free(got);
	return true;
}

static void *verify(void *arg)
{
	struct worker *w = arg;
	zap_client *c;
	int ret = zap_connect(d.sock, &c);

	if (ret) {
		worker_fail(w, "verifier %u cannot connect: %s", w->id, zap_strerror(ret));
		return NULL;
	}
	for (uint32_t k = w->id; k < nkeys; k += WORKERS) {
		if (!check_key(w, c, k))
			break;
	}
	zap_close(c);
	return NULL;
}

struct list_ctx {
	bool seen[NKEYS];
	size_t n;
	char msg[2 * KEY_MAX];
};

static int list_one(const void *key, size_t klen, void *arg)
{
	struct list_ctx *x = arg;
	char want[KEY_MAX];
	const char *s = key;
	unsigned k = 0;

	for (size_t i = 1; i < 6 && i < klen; i++)
		k = k * 10 + (s[i] - '0');
	if (klen < 6 || s[0] != 't' || k >= nkeys || key_name(k, want) != klen ||
	    memcmp(want, key, klen)) {
		snprintf(x->msg, sizeof(x->msg), "listing has a key never written: %.*s",
			 (int)(klen > 80 ? 80 : klen), s);
		return -EPROTO;
	}
	if (x->seen[k] || !obs[k].exists) {
		snprintf(x->msg, sizeof(x->msg), "listing has key %u %s", k,
			 x->seen[k] ? "twice" : "which get says is not found");
		return -EPROTO;
	}
	x->seen[k] = true;
	x->n++;
	return 0;
}

/* The store read back after a restart is one the clients' logs allow. */
static uint64_t check_all(void)
{
	static struct list_ctx lx;
	uint64_t checked = 0, nexist = 0, keys;
	zap_client *c;
	char key[32];
	int ret;

	for (unsigned i = 0; i < WORKERS; i++)
		pthread_create(&workers[i].th, NULL, verify, &workers[i]);
	for (unsigned i = 0; i < WORKERS; i++)
		pthread_join(workers[i].th, NULL);
	for (unsigned i = 0; i < WORKERS; i++) {
		if (workers[i].fail)
			die("%s", workers[i].fail);
	}
	c = zt_connect(&d);
	for (unsigned i = 0; i < NEVER_KEYS; i++) {
		void *got;
		size_t glen;

		snprintf(key, sizeof(key), "never-written/%u", i);
		ret = zap_get(c, key, strlen(key), &got, &glen);
		if (ret != -ENOENT)
			die("key %s was never written, but get returned %s", key,
			    ret ? zap_strerror(ret) : "a value");
		checked++;
	}
	for (uint32_t k = 0; k < nkeys; k++)
		nexist += obs[k].exists;
	keys = zt_stat(c, "keys");
	if (keys != nexist)
		die("stat says keys %" PRIu64 ", but %" PRIu64 " keys exist", keys, nexist);
	memset(&lx, 0, sizeof(lx));
	ret = zap_list(c, NULL, 0, list_one, &lx);
	if (ret == -EPROTO && lx.msg[0])
		die("%s", lx.msg);
	if (ret)
		die("listing the keys failed: %s", zap_strerror(ret));
	if (lx.n != nexist)
		die("listing has %zu keys, but %" PRIu64 " keys exist", lx.n, nexist);
	zap_close(c);
	memcpy(base, obs, sizeof(base));
	return checked;
}

/* Everything the round's clients did, filed by key. */
static void file_ops(void)
{
	size_t total = 0;

	memset(kstart, 0, sizeof(kstart));
	for (unsigned i = 0; i < WORKERS; i++) {
		for (size_t j = 0; j < workers[i].nops; j++)
			kstart[workers[i].ops[j].key + 1]++;
		total += workers[i].nops;
	}
	for (uint32_t k = 0; k < NKEYS; k++)
		kstart[k + 1] += kstart[k];
	if (total > kops_cap) {
		kops_cap = total * 2;
		kops = realloc(kops, kops_cap * sizeof(*kops));
		if (!kops)
			abort();
	}
	{
		size_t *pos = calloc(NKEYS, sizeof(*pos));

		/* In order of sending, within one worker; the checker needs no order across. */
		for (unsigned i = 0; i < WORKERS; i++) {
			for (size_t j = 0; j < workers[i].nops; j++) {
				const struct op *o = &workers[i].ops[j];

				kops[kstart[o->key] + pos[o->key]++] = (struct op *)o;
			}
		}
		free(pos);
	}
}

/* Sequence numbers of acknowledged puts: above all before the round, and in real-time order. */
static void check_seqs(uint64_t *max_out)
{
	uint64_t max = seq_floor;

	for (unsigned i = 0; i < WORKERS; i++) {
		for (size_t j = 0; j < workers[i].nops; j++) {
			const struct op *o = &workers[i].ops[j];

			if (o->status != ACKED || o->type != OP_PUT)
				continue;
			if (o->seq <= seq_floor)
				die("put op %" PRIu64 " of key %u got seq %" PRIu64
				    ", but seq %" PRIu64 " was acknowledged before the restart: "
				    "the sequence went backwards",
				    o->id, o->key, o->seq, seq_floor);
			if (o->seq > max)
				max = o->seq;
		}
	}
	for (uint32_t k = 0; k < NKEYS; k++) {
		for (size_t i = kstart[k]; i < kstart[k + 1]; i++) {
			const struct op *x = kops[i];

			if (x->status != ACKED || x->type != OP_PUT)
				continue;
			for (size_t j = kstart[k]; j < kstart[k + 1]; j++) {
				const struct op *y = kops[j];

				if (y->status == ACKED && y->type == OP_PUT &&
				    y->t_send > x->t_end && y->seq <= x->seq)
					die("key %u: put op %" PRIu64 " was sent after put op "
					    "%" PRIu64 " was acknowledged, but got seq %" PRIu64
					    " <= %" PRIu64,
					    k, y->id, x->id, y->seq, x->seq);
			}
		}
	}
	*max_out = max;
}

/* --- the daemon --- */

static const char *daemon_path(void)
{
	const char *p = getenv("ZAPPENDD");

	return p ? p : "./zappendd";
}

static void set_args(bool sync_always, bool format)
{
	size_t n = 0;

	d.args[n++] = "--size";
	d.args[n++] = dev_size;
	d.args[n++] = "--zone-size";
	d.args[n++] = zone_size;
	d.args[n++] = "--sync";
	d.args[n++] = sync_always ? "always" : "none";
	if (format)
		d.args[n++] = "--format";
	d.args[n] = NULL;
}

/* Starts the daemon and kills it after delay_us: a crash in the middle of recovery. */
static void kill_in_recovery(long delay_us)
{
	const char *argv[40] = { daemon_path(), "--config", "/dev/null", "--device",
				 d.dev,		"--socket", d.sock };
	size_t n = 7;
	int status;
	pid_t pid;

	for (size_t i = 0; d.args[i]; i++)
		argv[n++] = d.args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(d.log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	usleep(delay_us);
	if (waitpid(pid, &status, WNOHANG) == pid)
		die("zappendd exited during start-up (status %d)", status);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

#ifdef TORTURE_LARGE
#define DEFAULT_PROFILE "large"
#define DEFAULT_ROUNDS	6
#else
#define DEFAULT_PROFILE ""
#define DEFAULT_ROUNDS	12
#endif

int main(void)
{
	unsigned rounds = env_u64("TORTURE_ROUNDS", DEFAULT_ROUNDS);
	uint64_t rng, acked = 0, uncertain = 0, checks = 0, gets = 0, applied = 0;
	uint64_t not_applied = 0, nospc = 0, gc_moved = 0, max_inflight = 0, inflight, bigs = 0;
	unsigned kills = 0, rkills = 0, formats = 0;
	int64_t t_start = now_ns();
	bool need_format = false;

	seed = env_u64("TORTURE_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20));
	verbose = env_u64("TORTURE_VERBOSE", 0);
	profile = getenv("TORTURE_PROFILE") ? getenv("TORTURE_PROFILE") : DEFAULT_PROFILE;
	if (!strcmp(profile, "large")) {
		large = true;
		own_keys = 160;
		shared_keys = 8;
		nkeys = own_keys + shared_keys;
		small_max = 64 * 1024;
		big_min = 1024 * 1024;
		big_max = 40 * 1024 * 1024;
		dev_size = "64M";
		zone_size = "4M";
	} else if (*profile) {
		fprintf(stderr, "TORTURE_PROFILE=%s: unknown (large, or none)\n", profile);
		return 99;
	}
	if (getenv("TORTURE_SIZE"))
		dev_size = getenv("TORTURE_SIZE");
	if (getenv("TORTURE_ZONE_SIZE"))
		zone_size = getenv("TORTURE_ZONE_SIZE");
	if (access(daemon_path(), X_OK)) {
		fprintf(stderr, "SKIP: no zappendd at %s (set ZAPPENDD)\n", daemon_path());
		return ZT_SKIP;
	}
	printf("torture: TORTURE_SEED=%" PRIu64 "%s%s rounds %u, %u clients, %u keys (%u shared), "
	       "device %s zones %s, values up to %u bytes\n",
	       seed, *profile ? " TORTURE_PROFILE=" : "", profile, rounds, WORKERS, nkeys,
	       shared_keys, dev_size, zone_size, big_max);
	fflush(stdout);
	rng = seed;
	for (unsigned i = 0; i < WORKERS; i++) {
		workers[i].id = i;
		workers[i].big_key[0] = workers[i].big_key[1] = -1;
		workers[i].buf = malloc(big_max);
		if (!workers[i].buf)
			abort();
	}
	zt_init(&d, NULL);

	for (round_no = 0; round_no <= rounds; round_no++) {
		bool sync_always = round_no % 2 == 0;
		uint64_t r = zt_rand(&rng), used, cap, round_max;
		long delay;
		int status;

		/* Start (round 0: a new device), sometimes after a crash during recovery. */
		set_args(sync_always, false);
		if (round_no > 0 && r % 4 == 0) {
			kill_in_recovery((r >> 8) % 40000);
			rkills++;
		}
		zt_start(&d);
		if (round_no > 0) {
			uint64_t round_uncertain = 0;

			snprintf(phase, sizeof(phase), "checking after round %u's kill",
				 round_no - 1);
			file_ops();
			check_seqs(&round_max);
			for (unsigned i = 0; i < WORKERS; i++) {
				workers[i].checked = workers[i].applied = workers[i].not_applied =
				    0;
			}
			checks += check_all();
			for (unsigned i = 0; i < WORKERS; i++) {
				struct worker *w = &workers[i];

				checks += w->checked;
				applied += w->applied;
				not_applied += w->not_applied;
				for (size_t j = 0; j < w->nops; j++) {
					acked += w->ops[j].status == ACKED;
					bigs += w->ops[j].status == ACKED &&
						w->ops[j].type == OP_PUT &&
						w->ops[j].len >= big_min;
					round_uncertain += w->ops[j].status == UNCERTAIN;
				}
			}
			uncertain += round_uncertain;
			seq_floor = round_max;
			if (verbose) {
				zap_client *c = zt_connect(&d);

				printf("round %u: checked; recovered_records %" PRIu64
				       " torn_records %" PRIu64 " zones summarised %" PRIu64
				       " scanned %" PRIu64 " used %" PRIu64 " MiB\n",
				       round_no - 1, zt_stat(c, "recovered_records"),
				       zt_stat(c, "torn_records"),
				       zt_stat(c, "recovery_zones_summarised"),
				       zt_stat(c, "recovery_zones_scanned"),
				       zt_stat(c, "used_bytes") >> 20);
				zap_close(c);
			}
		}
		if (round_no == rounds)
			break;

		/* A device filling up is formatted again: a new epoch starts from nothing. */
		{
			zap_client *c = zt_connect(&d);

			used = zt_stat(c, "used_bytes");
			cap = zt_stat(c, "capacity_bytes");
			zap_close(c);
		}
		if (need_format || used > cap * FILL_LIMIT) {
			zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
			set_args(sync_always, true);
			zt_start(&d);
			set_args(sync_always, false);
			memset(base, 0, sizeof(base));
			memset(kstart, 0, sizeof(kstart));
			snprintf(phase, sizeof(phase), "checking the device formatted again");
			seq_floor = 0;
			for (unsigned i = 0; i < WORKERS; i++)
				workers[i].last_seq = 0;
			checks += check_all();
			formats++;
			need_format = false;
			if (verbose)
				printf("round %u: formatted again (%" PRIu64 " of %" PRIu64
				       " bytes used)\n",
				       round_no, used, cap);
		}

		/* The round: clients run until the daemon is killed under them. */
		memcpy(cur, base, sizeof(cur));
		memset(unsure, 0, sizeof(unsure));
		atomic_store(&stop_flag, false);
		atomic_store(&full_flag, false);
		for (unsigned i = 0; i < WORKERS; i++) {
			struct worker *w = &workers[i];

			w->nops = 0;
			w->err = 0;
			w->err_what[0] = 0;
			w->rng =
			    seed ^ ((uint64_t)round_no << 32) ^ (i + 1) * 0x2545f4914f6cdd1dull;
		}
		snprintf(phase, sizeof(phase), "round %u", round_no);
		delay = r % 5 == 1 ? (long)(r >> 16) % 50 : 50 + (long)(r >> 16) % 1450;
		daemon_note("--- torture: round %u starts, --sync %s, kill in %ld ms", round_no,
			    sync_always ? "always" : "none", delay);
		t_round = now_ns();
		for (unsigned i = 0; i < WORKERS; i++)
			pthread_create(&workers[i].th, NULL, work, &workers[i]);
		sleep_ms(delay);
		if (waitpid(d.pid, &status, WNOHANG) == d.pid) {
			d.pid = 0;
			die("zappendd died during the round before it was killed (status %d)",
			    status);
		}
		{
			/* What the daemon did up to now (its counters die with it). */
			zap_client *c = zt_connect(&d);

			gc_moved += zt_stat(c, "gc_bytes_moved");
			inflight = zt_stat(c, "max_inflight_per_zone");
			if (inflight > max_inflight)
				max_inflight = inflight;
			zap_close(c);
		}
		t_kill = now_ns();
		zt_kill(&d);
		kills++;
		atomic_store(&stop_flag, true);
		daemon_note("--- torture: round %u: SIGKILL at %.3f ms", round_no, ms(t_kill));
		for (unsigned i = 0; i < WORKERS; i++)
			pthread_join(workers[i].th, NULL);
		for (unsigned i = 0; i < WORKERS; i++) {
			struct worker *w = &workers[i];

			if (w->fail)
				die("%s", w->fail);
			if (w->err && w->t_err < t_kill)
				die("worker %u: %s failed before the kill, at %.3f ms: %s", i,
				    w->err_what, ms(w->t_err), zap_strerror(w->err));
			gets += w->gets;
			nospc += w->nospc;
			w->gets = w->nospc = 0;
		}
		if (atomic_load(&full_flag))
			need_format = true;
		if (verbose) {
			size_t n = 0;

			for (unsigned i = 0; i < WORKERS; i++)
				n += workers[i].nops;
			printf(
			    "round %u: --sync %s, killed after %ld ms, %zu ops, GC moved %" PRIu64
			    " MiB in all\n",
			    round_no, sync_always ? "always" : "none", delay, n, gc_moved >> 20);
		}
		fflush(stdout);
	}
	/* A clean stop and start after all that keeps everything too. */
	snprintf(phase, sizeof(phase), "checking after a clean restart");
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	memset(kstart, 0, sizeof(kstart));
	checks += check_all();
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);

	printf("torture: PASS TORTURE_SEED=%" PRIu64 "%s%s rounds %u, kills %u (+%u during "
	       "recovery), formats %u, ops acknowledged %" PRIu64 ", unacknowledged %" PRIu64
	       " (in flight at the kill: %" PRIu64 " found applied, %" PRIu64
	       " not), refused for space %" PRIu64 ", reads during rounds %" PRIu64
	       ", keys checked per round %u, total checks %" PRIu64 ", GC moved %" PRIu64
	       " MiB, max appends in flight to one zone %" PRIu64 ", %.1f s\n",
	       seed, *profile ? " TORTURE_PROFILE=" : "", profile, rounds, kills, rkills, formats,
	       acked, uncertain, applied, not_applied, nospc, gets, nkeys + NEVER_KEYS, checks,
	       gc_moved >> 20, max_inflight, (now_ns() - t_start) / 1e9);
	if (large)
		printf("torture: values of %u bytes or more: %" PRIu64 " put and acknowledged\n",
		       big_min, bigs);
	for (unsigned i = 0; i < WORKERS; i++) {
		free(workers[i].buf);
		free(workers[i].ops);
	}
	free(kops);
	return 0;
}
