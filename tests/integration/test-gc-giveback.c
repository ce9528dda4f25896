/*
 * GC giving back its copies (GC_UNDO in daemon/gc.c): a tiny device failing appends
 * under GC, with gets and snapshots in flight, values of several records,
 * tombstones, and kill -9 / SIGTERM restarts in the middle of the faults.
 *
 * Three writer connections pipeline puts (50 B to 40 KB; a few keys take
 * values of 1.1 to 1.5 MB, several records each) and deletes; one connection
 * pipelines gets whose answers are checked against what was sent (every
 * value names its key and version); a thread keeps snapshots open and reads
 * through them. Every PHASE operations the daemon is killed (SIGKILL) or
 * stopped (SIGTERM, which must exit 0) and started again under faults with a
 * new seed, and every key must hold a state from its newest acknowledged one
 * on. At the end, with the faults over, every key takes a new value, and the
 * live bytes the zones count must be the same before and after a clean
 * restart (recovery counts them from scratch).
 *
 * GUA_SEED (1), GUA_ROUNDS (1), GUA_EXTRA (more of the fault spec, e.g.
 * append_lie=1,append_short=1). Run with ZAPPENDD and ZAPPENDD_FAULT set.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>

#include "harness.h"

#define CONNS	 3
#define KEYS	 150
#define DEPTH	 48
#define GDEPTH	 16
#define OPS	 40000
#define PHASE	 8000
#define MIN_LEN	 50
#define MAX_LEN	 40000
#define BIG_MIN	 (1100 * 1024)
#define BIG_MAX	 (1500 * 1024)
#define WAIT	 30
#define MAX_VERS 4096

struct key {
	_Atomic uint32_t acked;
	_Atomic uint32_t last;
	uint8_t *del;
};

struct op {
	struct key *k;
	uint32_t kid, version, acked_then;
	bool get;
	uint8_t *val;
};

static struct key keys[CONNS * KEYS];
static uint64_t round_seed;
static unsigned long acks, fails, gets_ok, gets_checked, snap_reads, snaps;
static bool dying; /* the daemon is being killed: any error may answer */
static atomic_bool snap_stop;
static const char *sock_path;

static void key_name(char *name, uint32_t k)
{
	snprintf(name, 16, "gua/%05u", k);
}

static bool is_big(uint32_t kid)
{
	return kid % 75 == 7;
}

static uint8_t *value_of(uint32_t k, uint32_t version, size_t *len)
{
	uint64_t st = round_seed ^ ((uint64_t)k << 32 | version);
	uint8_t *v;

	*len = is_big(k) && version % 3 == 1 ? BIG_MIN + zt_rand(&st) % (BIG_MAX - BIG_MIN)
					     : MIN_LEN + zt_rand(&st) % (MAX_LEN - MIN_LEN);
	v = malloc(*len);
	zt_check(v, "out of memory");
	zt_fill(v, *len, st);
	memcpy(v, &k, 4);
	memcpy(v + 4, &version, 4);
	return v;
}

/* The version the bytes are, if they are one of key kid's: 0 if not. */
static uint32_t version_in(uint32_t kid, const void *got, size_t glen)
{
	uint32_t k, v;
	uint8_t *want;
	size_t len;
	bool same;

	if (glen < 8)
		return 0;
	memcpy(&k, got, 4);
	memcpy(&v, (const uint8_t *)got + 4, 4);
	if (k != kid || !v || v >= MAX_VERS)
		return 0;
	want = value_of(kid, v, &len);
	same = len == glen && !memcmp(got, want, len);
	free(want);
	return same ? v : 0;
}

static void answered(zap_client *c, const struct zap_result *r, void *arg)
{
	struct op *o = arg;

	(void)c;
	if (o->get) {
		uint32_t last = atomic_load(&o->k->last), v;

		if (r->err && dying) {
		} else if (r->err == -ENOENT) {
			bool may = !o->acked_then;

			for (uint32_t x = o->acked_then; x <= last && !may; x++)
				may = o->k->del[x];
			zt_check(may, "get of key %u: absent, but version %u was acknowledged",
				 o->kid, o->acked_then);
			gets_checked++;
		} else {
			zt_check(!r->err, "get of key %u: %s", o->kid, zap_strerror(r->err));
			v = version_in(o->kid, r->val, r->vlen);
			zt_check(v, "get of key %u: %zu bytes that are no version of it", o->kid,
				 r->vlen);
			zt_check(v >= o->acked_then && v <= last && !o->k->del[v],
				 "get of key %u: version %u, acknowledged %u, last %u", o->kid, v,
				 o->acked_then, last);
			gets_ok++;
			gets_checked++;
		}
		free(r->val);
		free(o);
		return;
	}
	bool del = o->k->del[o->version];

	if (!r->err || (del && r->err == -ENOENT)) {
		acks++;
		if (o->version > o->k->acked)
			o->k->acked = o->version;
	} else {
		zt_check(dying || r->err == -EIO || r->err == -ENOSPC, "%s %u of key %u: %s (%s)",
			 del ? "del" : "put", o->version, o->kid, zap_strerror(r->err),
			 r->message ? r->message : "");
		fails++;
	}
	free(o->val);
	free(o);
}

static void issue(zap_client *c, uint32_t first, uint64_t *rng)
{
	uint32_t kid = first + zt_rand(rng) % KEYS;
	struct key *k = &keys[kid];
	struct op *o = malloc(sizeof(*o));
	char name[16];
	size_t len;

	zt_check(o && k->last + 1 < MAX_VERS, "out of memory or versions");
	*o = (struct op){ .k = k, .kid = kid, .version = k->last + 1 };
	k->del[o->version] = zt_rand(rng) % 4 == 0;
	atomic_store(&k->last, o->version);
	key_name(name, kid);
	if (k->del[o->version]) {
		zt_ok(zap_del_async(c, name, strlen(name), answered, o));
		return;
	}
	o->val = value_of(kid, o->version, &len);
	zt_ok(zap_put_async(c, name, strlen(name), o->val, len, answered, o));
}

static void issue_get(zap_client *c, uint64_t *rng)
{
	uint32_t kid = zt_rand(rng) % (CONNS * KEYS);
	struct op *o = malloc(sizeof(*o));
	char name[16];

	zt_check(o, "out of memory");
	*o = (struct op){ .k = &keys[kid], .kid = kid, .get = true, .acked_then = keys[kid].acked };
	key_name(name, kid);
	zt_ok(zap_get_async(c, name, strlen(name), answered, o));
}

/* Snapshots held open while GC runs: what they read is a whole version of the key. */
static void *snapper(void *arg)
{
	uint64_t rng = (uint64_t)(uintptr_t)arg;
	zap_client *c;

	if (zap_connect(sock_path, &c))
		return NULL;
	while (!atomic_load(&snap_stop)) {
		uint64_t seq;
		int ret = zap_snapshot(c, &seq);

		if (ret)
			break;
		snaps++;
		for (int i = 0; i < 40 && !atomic_load(&snap_stop); i++) {
			uint32_t kid = zt_rand(&rng) % (CONNS * KEYS);
			char name[16];
			void *got = NULL;
			size_t glen = 0;

			key_name(name, kid);
			ret = zap_get(c, name, strlen(name), &got, &glen);
			if (ret == -ESTALE)
				break;
			if (ret && ret != -ENOENT) {
				if (atomic_load(&snap_stop))
					break;
				zt_fail("snapshot get of key %u: %s", kid, zap_strerror(ret));
			}
			zt_check(ret || version_in(kid, got, glen),
				 "snapshot get of key %u: %zu bytes that are no version of it", kid,
				 glen);
			free(got);
			snap_reads++;
			zt_sleep_ms(5);
		}
		zap_snapshot_end(c);
	}
	zap_close(c);
	return NULL;
}

static bool zombie(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	return !p || p[2] == 'Z' || p[2] == 'X';
}

/* SIGTERM while the clients go on reading their answers: the daemon must exit 0. */
static int term_reading(struct zt_daemon *d, zap_client **cs, int n)
{
	kill(d->pid, SIGTERM);
	while (!zombie(d->pid)) {
		struct pollfd pfd[8];

		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = zap_fd(cs[i]), .events = POLLIN };
		poll(pfd, n, 20);
		for (int i = 0; i < n; i++)
			zap_process(cs[i]);
	}
	return zt_stop(d);
}

static void drain_close(zap_client *c)
{
	zap_close(c); /* answers what is pending with an error */
}

/* n operations on the writers, gets beside them. */
static void load(zap_client **w, zap_client *g, unsigned long n, uint64_t *rng)
{
	unsigned long sent = 0;

	while (sent < n) {
		struct pollfd pfd[CONNS + 1];

		for (int i = 0; i < CONNS; i++) {
			for (unsigned q = zap_pending(w[i]); q < DEPTH && sent < n; q++, sent++)
				issue(w[i], i * KEYS, rng);
			pfd[i] = (struct pollfd){ .fd = zap_fd(w[i]),
						  .events = POLLIN |
							    (zap_want_write(w[i]) ? POLLOUT : 0) };
		}
		for (unsigned q = zap_pending(g); q < GDEPTH; q++)
			issue_get(g, rng);
		pfd[CONNS] =
		    (struct pollfd){ .fd = zap_fd(g),
				     .events = POLLIN | (zap_want_write(g) ? POLLOUT : 0) };
		zt_check(poll(pfd, CONNS + 1, 1000) >= 0, "poll: %s", strerror(errno));
		for (int i = 0; i < CONNS; i++)
			zt_check(zap_process(w[i]) >= 0, "zap_process failed");
		zt_check(zap_process(g) >= 0, "zap_process failed");
	}
}

static void check_key(zap_client *c, uint32_t kid)
{
	const struct key *k = &keys[kid];
	char name[16];
	void *got = NULL;
	size_t glen = 0;
	uint32_t v, have = 0;
	int ret;

	key_name(name, kid);
	ret = zap_get(c, name, strlen(name), &got, &glen);
	zt_check(ret == 0 || ret == -ENOENT, "get %s: %s", name, zap_strerror(ret));
	if (!ret) {
		have = version_in(kid, got, glen);
		zt_check(have, "%s: %zu bytes that are no version of it", name, glen);
	}
	for (v = k->acked; v <= k->last; v++) {
		if (ret ? (!v || k->del[v]) : (v == have && !k->del[v]))
			break;
	}
	zt_check(v <= k->last, "%s: %s (version %u), no state from version %u (acknowledged) to %u",
		 name, ret ? "absent" : "holds", have, k->acked, k->last);
	free(got);
}

static void refill_key(zap_client *c, uint32_t kid)
{
	struct key *k = &keys[kid];
	double until = zt_now() + WAIT;
	uint8_t *val;
	char name[16];
	size_t len;
	int ret;

	k->del[++k->last] = 0;
	val = value_of(kid, k->last, &len);
	key_name(name, kid);
	while (((ret = zap_put(c, name, strlen(name), val, len, NULL)) == -ENOSPC || ret == -EIO) &&
	       zt_now() < until)
		zt_sleep_ms(20);
	zt_check(ret == 0, "put %s after the faults: %s (live %llu, %llu zones empty)", name,
		 zap_strerror(ret), (unsigned long long)zt_stat(c, "live_bytes"),
		 (unsigned long long)zt_stat(c, "zones_empty"));
	k->acked = k->last;
	free(val);
}

static uint64_t zones_live(zap_client *c)
{
	struct zap_zone *z;
	size_t n;
	uint64_t sum = 0;

	zt_ok(zap_zones(c, &z, &n));
	for (size_t i = 0; i < n; i++) {
		zt_check(z[i].live_bytes <= z[i].capacity, "zone %u counts %llu live bytes of %llu",
			 z[i].id, (unsigned long long)z[i].live_bytes,
			 (unsigned long long)z[i].capacity);
		sum += z[i].live_bytes;
	}
	free(z);
	return sum;
}

static void run_round(uint64_t seed)
{
	const char *args[] = { "--size", "32M",		  "--zone-size", "2M", "--sync",
			       "always", "--buffer-pool", "8M",		 NULL };
	static char spec[128];
	zap_client *w[CONNS], *g, *c;
	struct zt_daemon d;
	uint64_t rng = seed, restored = 0, given_up = 0;
	unsigned long done = 0;
	unsigned phase = 0;
	pthread_t th;

	round_seed = seed;
	acks = fails = gets_ok = gets_checked = snap_reads = snaps = 0;
	for (uint32_t i = 0; i < CONNS * KEYS; i++) {
		free(keys[i].del);
		keys[i] = (struct key){ .del = calloc(MAX_VERS, 1) };
		zt_check(keys[i].del, "out of memory");
	}
	zt_init(&d, args);
	sock_path = d.sock;
	zt_start(&d);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	while (done < OPS) {
		snprintf(spec, sizeof(spec), "seed=%llu,delay=100:5000,append_fail=3%s%s",
			 (unsigned long long)(seed * 1000 + phase), getenv("GUA_EXTRA") ? "," : "",
			 getenv("GUA_EXTRA") ? getenv("GUA_EXTRA") : "");
		zt_use_fault(&d, spec);
		zt_start(&d);
		c = zt_connect(&d);
		for (uint32_t k = 0; k < CONNS * KEYS; k++)
			check_key(c, k);
		for (int i = 0; i < CONNS; i++)
			w[i] = zt_connect(&d);
		g = zt_connect(&d);
		atomic_store(&snap_stop, false);
		zt_check(!pthread_create(&th, NULL, snapper, (void *)(uintptr_t)(rng ^ phase)),
			 "pthread_create");
		load(w, g, PHASE, &rng);
		done += PHASE;
		restored += zt_stat(c, "gc_records_restored");
		given_up += zt_stat(c, "gc_victims_given_up");
		atomic_store(&snap_stop, true);
		dying = true;
		if (phase % 3 == 1) {
			/* SIGTERM with everything in flight: a clean exit. */
			zap_client *cs[] = { w[0], w[1], w[2], g };
			int st = term_reading(&d, cs, 4);

			zt_check(st == 0, "daemon exited %d on SIGTERM", st);
		} else {
			zt_kill(&d);
		}
		pthread_join(th, NULL);
		for (int i = 0; i < CONNS; i++)
			drain_close(w[i]);
		drain_close(g);
		zap_close(c);
		dying = false;
		phase++;
	}
	/* The faults are over. */
	zt_use_fault(&d, NULL);
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t k = 0; k < CONNS * KEYS; k++)
		check_key(c, k);
	for (uint32_t k = 0; k < CONNS * KEYS; k++)
		refill_key(c, k);
	for (uint32_t k = 0; k < CONNS * KEYS; k++)
		check_key(c, k);
	uint64_t live1 = zones_live(c), live_stat = zt_stat(c, "live_bytes");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	uint64_t live2 = zones_live(c);
	printf("seed %llu: %lu acked, %lu failed, %lu gets checked, %lu snapshot reads in %lu "
	       "snapshots, %llu victims given up, %llu records restored; live %llu (stat %llu) "
	       "then %llu after restart\n",
	       (unsigned long long)seed, acks, fails, gets_checked, snap_reads, snaps,
	       (unsigned long long)given_up, (unsigned long long)restored,
	       (unsigned long long)live1, (unsigned long long)live_stat, (unsigned long long)live2);
	fflush(stdout);
	zt_check(live1 == live2, "zones counted %llu live bytes, %llu after a restart",
		 (unsigned long long)live1, (unsigned long long)live2);
	for (uint32_t k = 0; k < CONNS * KEYS; k++)
		check_key(c, k);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
}

int main(void)
{
	const char *seed_env = getenv("GUA_SEED"), *rounds_env = getenv("GUA_ROUNDS");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 1;
	unsigned rounds = rounds_env ? strtoul(rounds_env, NULL, 0) : 1;

	for (unsigned r = 0; r < rounds; r++) {
		zt_watchdog(600, "test-gc-undo-attack: a request never ended");
		run_round(seed + r);
	}
	return 0;
}
