/*
 * The fault-injecting device itself, through the real daemon: with
 * completions held back and reordered, flushes delayed, and appends failing,
 * lying (written, reported failed) and torn, pipelined puts all end, each
 * acknowledged or failed cleanly (IO_ERROR, NO_SPACE), never hanging. Every
 * acknowledged put reads back byte-exact, before and after a restart; after
 * it, a put that failed may be found whole (its data did reach the media),
 * never torn. A spec with an unknown key stops the daemon from starting.
 *
 * FAULT_SEED=N replays a run's fault choices (as far as timing allows);
 * FAULT_SPEC replaces the whole ZAPPEND_FAULT spec.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define KEYS  64
#define WAVES 10
#define SPEC                                                                                       \
	"seed=%llu,delay=20:3000,flush_delay=30:3000,append_fail=1,append_lie=1,"                  \
	"append_short=1"

struct key {
	uint32_t acked; /* newest acknowledged version, 0 if none */
	uint32_t last;	/* newest version put */
};

struct put {
	struct key *k;
	uint32_t version;
	uint8_t *val; /* the client sends it from here: kept until the answer */
};

static struct key keys[KEYS];
static unsigned acks, clean_fails;

static void key_of(char *key, uint32_t k)
{
	snprintf(key, 16, "fault/%04u", k);
}

/* Mostly small values, some of several blocks, a few of two records. */
static size_t len_of(uint32_t k, uint32_t version)
{
	uint64_t st = (uint64_t)k << 32 | version;
	uint64_t r = zt_rand(&st);

	if (r % 16 == 0)
		return 1200 * 1024 + r % 4096;
	if (r % 4 == 0)
		return r % (256 * 1024);
	return r % (16 * 1024);
}

static uint8_t *value_of(uint32_t k, uint32_t version, size_t *len)
{
	uint8_t *v;

	*len = len_of(k, version);
	v = malloc(*len + 1);
	zt_check(v, "out of memory");
	zt_fill(v, *len, (uint64_t)version << 32 | k);
	return v;
}

static void put_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct put *p = arg;

	if (r->err == 0) {
		acks++;
		if (p->version > p->k->acked)
			p->k->acked = p->version;
	} else {
		/* Anything else (a closed connection, INTERNAL) is not a clean answer. */
		zt_check(r->err == -EIO || r->err == -ENOSPC, "put %u of key %td: %s (%s)",
			 p->version, p->k - keys, zap_strerror(r->err),
			 r->message ? r->message : "");
		clean_fails++;
	}
	free(p->val);
	free(p);
}

/* One put of every key, in a random order, all in flight at once. */
static void wave(zap_client *c, uint64_t *rng)
{
	uint32_t order[KEYS];

	for (uint32_t i = 0; i < KEYS; i++)
		order[i] = i;
	for (uint32_t i = KEYS - 1; i > 0; i--) {
		uint32_t j = zt_rand(rng) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (uint32_t i = 0; i < KEYS; i++) {
		uint32_t k = order[i];
		struct put *p = malloc(sizeof(*p));
		char key[16];
		size_t len;

		zt_check(p, "out of memory");
		*p = (struct put){ .k = &keys[k], .version = ++keys[k].last };
		p->val = value_of(k, p->version, &len);
		key_of(key, k);
		zt_ok(zap_put_async(c, key, strlen(key), p->val, len, put_cb, p));
	}
	zt_ok(zap_wait_all(c));
}

static bool is_version(const void *got, size_t glen, uint32_t k, uint32_t version)
{
	size_t len;
	uint8_t *want = value_of(k, version, &len);
	bool same = len == glen && !memcmp(got, want, len);

	free(want);
	return same;
}

__attribute__((noreturn)) static void wrong_version(const char *key, uint32_t k, const void *got,
						    size_t glen, bool restarted)
{
	const struct key *s = &keys[k];
	uint32_t v = 1;

	while (v <= s->last && !is_version(got, glen, k, v))
		v++;
	if (v <= s->last)
		zt_fail("%s: got version %u, not %u, the newest acknowledged (of %u put)%s", key, v,
			s->acked, s->last, restarted ? ", after a restart" : "");
	zt_fail("%s: got %zu bytes that are no version put (acknowledged %u of %u)%s", key, glen,
		s->acked, s->last, restarted ? ", after a restart" : "");
}

/*
 * Before a restart only the newest acknowledged version may be found; after
 * one, a newer put that failed may be too, whole (its records reached the
 * media though the device said otherwise).
 */
static void check(zap_client *c, bool restarted)
{
	for (uint32_t k = 0; k < KEYS; k++) {
		const struct key *s = &keys[k];
		uint32_t hi = restarted ? s->last : s->acked, v;
		char key[16];
		void *got;
		size_t glen;
		int ret;

		key_of(key, k);
		ret = zap_get(c, key, strlen(key), &got, &glen);
		if (ret == -ENOENT) {
			zt_check(!s->acked, "%s: version %u was acknowledged, get says not found%s",
				 key, s->acked, restarted ? " after a restart" : "");
			continue;
		}
		zt_check(ret == 0, "get %s: %s", key, zap_strerror(ret));
		for (v = s->acked ? s->acked : 1; v <= hi; v++) {
			if (is_version(got, glen, k, v))
				break;
		}
		if (v > hi || v < 1)
			wrong_version(key, k, got, glen, restarted);
		free(got);
	}
}

static void refuses_unknown_keys(struct zt_daemon *d)
{
	char *log;
	long at = zt_log_size(d);

	zt_use_fault(d, "append_fail=1,no_such_key=3");
	zt_check(zt_start_fails(d, NULL) == 3, "a spec with an unknown key did not stop the start");
	log = zt_log_since(d, at);
	zt_check(strstr(log, "no_such_key"), "the refusal does not name the key: %s", log);
	free(log);
}

int main(void)
{
	const char *args[] = { "--size", "256M", "--zone-size", "4M", NULL };
	const char *seed_env = getenv("FAULT_SEED");
	unsigned long long seed = seed_env ? strtoull(seed_env, NULL, 0) : 1;
	uint64_t rng = seed;
	struct zt_daemon d;
	char spec[256];
	zap_client *c;
	char *log;

	zt_watchdog(90, "test-fault: a request never ended under faults");
	zt_init(&d, args);
	/* Formatted without faults: the superblock's append must not be the one that fails. */
	zt_start(&d);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	refuses_unknown_keys(&d);
	snprintf(spec, sizeof(spec), SPEC, seed);
	if (getenv("FAULT_SPEC"))
		snprintf(spec, sizeof(spec), "%s", getenv("FAULT_SPEC"));
	zt_use_fault(&d, spec);
	zt_start(&d);
	log = zt_log_since(&d, 0);
	zt_check(strstr(log, "fault injection on"), "the daemon does not say faults are on");
	free(log);
	c = zt_connect(&d);
	for (int w = 0; w < WAVES; w++)
		wave(c, &rng);
	printf("%s: %u puts acknowledged, %u failed cleanly; %llu zone errors\n", spec, acks,
	       clean_fails, (unsigned long long)zt_stat(c, "zone_errors"));
	zt_check(zt_stat(c, "zone_errors") > 0, "no append failed: the faults are not on");
	zt_check(acks > KEYS * WAVES / 2,
		 "most puts failed: the store did not get around the faults");
	check(c, false);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	check(c, true);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	return 0;
}
