/*
 * zappend-cli dump, then restore into a fresh store: the same keys with the
 * same values, binary keys (NUL, newline, 0xff) and empty and multi-chunk
 * values included, deleted keys absent; a prefix dumps only its keys; a dump
 * with a flipped byte or cut short is refused, naming the entry. A dump taken
 * while puts and deletes go on holds the store exactly as it was at the
 * sequence number its header names.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define NKEYS 1500

struct key {
	uint8_t k[64];
	size_t klen, vlen;
	uint64_t seed;
	bool deleted;
};

static size_t value_len(uint64_t *st, unsigned i)
{
	if (i % 500 == 7)
		return (3 << 20) + zt_rand(st) % 4096; /* several chunks */
	if (i % 97 == 3)
		return 0;
	return zt_rand(st) % 2000;
}

static void make_keys(struct key *keys)
{
	uint64_t st = 2026;

	for (unsigned i = 0; i < NKEYS; i++) {
		struct key *k = &keys[i];

		/* A unique head, then bytes of every kind; every third key under "p/". */
		k->klen = (size_t)snprintf((char *)k->k, 16, "%sk%u", i % 3 ? "" : "p/", i);
		k->k[k->klen++] = i % 2 ? 0 : '\n';
		for (size_t n = zt_rand(&st) % 24; n; n--)
			k->k[k->klen++] = (uint8_t)zt_rand(&st);
		k->k[k->klen++] = 0xff;
		k->vlen = value_len(&st, i);
		k->seed = zt_rand(&st);
		k->deleted = i % 11 == 5;
	}
}

static void fill_store(zap_client *c, struct key *keys)
{
	uint8_t *v = malloc((3 << 20) + 4096);

	zt_check(v, "malloc");
	for (unsigned i = 0; i < NKEYS; i++) {
		struct key *k = &keys[i];

		zt_fill(v, k->vlen, k->seed);
		zt_check(zap_put(c, k->k, k->klen, v, k->vlen, NULL) == 0, "put key %u", i);
		if (k->deleted)
			zt_check(zap_del(c, k->k, k->klen) == 0, "del key %u", i);
	}
	free(v);
}

/* Every key of keys that prefix selects is in the store with its value; the rest are not. */
static void expect_keys(zap_client *c, const struct key *keys, const char *prefix)
{
	uint8_t *want = malloc((3 << 20) + 4096);
	uint64_t live = 0;

	zt_check(want, "malloc");
	for (unsigned i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		bool in = !k->deleted && !strncmp((const char *)k->k, prefix, strlen(prefix));
		void *got = NULL;
		size_t glen = 0;
		int ret = zap_get(c, k->k, k->klen, &got, &glen);

		if (!in) {
			zt_check(ret == -ENOENT, "key %u restored although %s", i,
				 k->deleted ? "deleted" : "outside the prefix");
		} else {
			zt_fill(want, k->vlen, k->seed);
			zt_check(ret == 0, "key %u not restored: %s", i, zap_strerror(ret));
			zt_check(glen == k->vlen && !memcmp(got, want, glen),
				 "key %u: restored value differs (%zu bytes, want %zu)", i, glen,
				 k->vlen);
			live++;
		}
		free(got);
	}
	zt_check(zt_stat(c, "keys") == live, "%llu keys restored, %llu expected",
		 (unsigned long long)zt_stat(c, "keys"), (unsigned long long)live);
	free(want);
}

/* Runs zappend-cli with args (a shell fragment); its exit status, its stderr in err. */
static int cli(const char *args, const char *err)
{
	const char *bin = getenv("ZAPPEND_CLI") ? getenv("ZAPPEND_CLI") : "./zappend-cli";
	char cmd[2048];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' %s 2>'%s'", bin, args, err);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool file_has(const char *path, const char *what)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
	return strstr(buf, what) != NULL;
}

/* Inverts the byte at off, or cuts the file to off bytes. */
static void damage(const char *path, long off, bool cut)
{
	FILE *f = fopen(path, "r+b");
	int b;

	zt_check(f, "open %s", path);
	if (cut) {
		zt_check(truncate(path, off) == 0, "truncate");
	} else {
		fseek(f, off, SEEK_SET);
		b = fgetc(f);
		fseek(f, off, SEEK_SET);
		fputc(b ^ 0xff, f);
	}
	fclose(f);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	zt_check(system(cmd) == 0, "cp");
}

static void refused(struct zt_daemon *d, const char *dump, const char *what)
{
	char args[1024], err[512];

	snprintf(err, sizeof(err), "%s/restore.err", d->dir);
	snprintf(args, sizeof(args), "-s '%s' restore '%s'", d->sock, dump);
	zt_check(cli(args, err) == 3, "a %s dump was not refused", what);
	zt_check(file_has(err, "entry") || file_has(err, "cut short") ||
		     file_has(err, "end record"),
		 "the refusal of a %s dump does not say where", what);
}

/* --- a dump amid puts and deletes --- */

#define MAX_LOG (1u << 20)

struct logged {
	uint32_t key;
	uint32_t len; /* UINT32_MAX: a delete */
	uint64_t seq;
	int err;
};

static uint64_t op_seed(uint64_t n)
{
	return n * 0x9e3779b97f4a7c15ull + 7;
}

static void logged_done(zap_client *c, const struct zap_result *r, void *arg)
{
	struct logged *l = arg;

	(void)c;
	l->err = r->err;
	l->seq = r->info.seq;
}

/* Puts and deletes of random keys, many in flight, until the dump (pid) exits. */
static uint64_t churn(zap_client *c, const struct key *keys, struct logged *log, pid_t pid)
{
	static uint8_t val[2048];
	uint64_t n = 0, st = 99;
	int status = 0;

	while (n < MAX_LOG && waitpid(pid, &status, WNOHANG) == 0) {
		struct logged *l = &log[n];
		const struct key *k;

		l->key = zt_rand(&st) % NKEYS;
		l->len = zt_rand(&st) % 5 ? (uint32_t)(zt_rand(&st) % sizeof(val)) : UINT32_MAX;
		l->err = -EINPROGRESS;
		k = &keys[l->key];
		if (l->len == UINT32_MAX) {
			zt_ok(zap_del_async(c, k->k, k->klen, logged_done, l));
		} else {
			/* The value goes out from val: wait for the put before val changes. */
			zt_fill(val, l->len, op_seed(n));
			zt_ok(zap_put_async(c, k->k, k->klen, val, l->len, logged_done, l));
			zt_ok(zap_wait_all(c));
		}
		n++;
		if (zap_pending(c) >= 16)
			zt_ok(zap_wait_all(c));
	}
	zt_ok(zap_wait_all(c));
	if (n == MAX_LOG)
		zt_check(waitpid(pid, &status, 0) == pid, "waitpid");
	zt_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the dump failed");
	return n;
}

static uint64_t le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Key i's state as of seq: its newest logged op at or below it, else the fill's. */
static const struct logged *state_at(const struct logged *log, uint64_t n, unsigned i, uint64_t seq)
{
	const struct logged *best = NULL;

	for (uint64_t j = 0; j < n; j++) {
		const struct logged *l = &log[j];

		zt_check(!l->err || (l->len == UINT32_MAX && l->err == -ENOENT),
			 "op %" PRIu64 ": %s", j, zap_strerror(l->err));
		if (!l->err && l->key == i && l->seq <= seq && (!best || l->seq > best->seq))
			best = l;
	}
	return best;
}

/* Every entry of the dump is key's state at the dump's sequence, and every key with a value has
 * one. */
static void check_dump(const char *path, const struct key *keys, const struct logged *log,
		       uint64_t n)
{
	FILE *f = fopen(path, "rb");
	static uint8_t buf[(3 << 20) + 8192], want[(3 << 20) + 8192];
	bool seen[NKEYS] = { false };
	uint64_t seq, before = 0, entries = 0;

	zt_check(f && fread(buf, 1, 32, f) == 32 && !memcmp(buf, "ZAPDUMP", 8), "no dump header");
	seq = le(buf + 16, 8);
	for (uint64_t j = 0; j < n; j++)
		before += !log[j].err && log[j].seq <= seq;
	for (;;) {
		unsigned i = 0;
		uint64_t klen, vlen;
		const struct logged *l;

		zt_check(fread(buf, 1, 24, f) == 24, "dump cut short");
		if (buf[0] == 2) {
			zt_check(le(buf + 8, 8) == entries && le(buf + 16, 8) == seq,
				 "end record: %" PRIu64 " entries at %" PRIu64, le(buf + 8, 8),
				 le(buf + 16, 8));
			break;
		}
		klen = le(buf + 4, 4);
		vlen = le(buf + 8, 8);
		zt_check(klen <= 64 && vlen <= sizeof(buf) - 64 &&
			     fread(buf + 24, 1, klen + vlen + 4, f) == klen + vlen + 4,
			 "entry %" PRIu64 " cut short", entries);
		while (i < NKEYS && (keys[i].klen != klen || memcmp(keys[i].k, buf + 24, klen)))
			i++;
		zt_check(i < NKEYS && !seen[i], "entry %" PRIu64 ": a key never put, or twice",
			 entries);
		seen[i] = true;
		l = state_at(log, n, i, seq);
		zt_check(le(buf + 16, 8) <= seq, "key %u dumped at a version after the dump's", i);
		zt_check(l ? l->len != UINT32_MAX : !keys[i].deleted,
			 "key %u dumped, yet deleted as of %" PRIu64, i, seq);
		if (l) {
			zt_check(le(buf + 16, 8) == l->seq,
				 "key %u: dumped the version of %" PRIu64 ", as of %" PRIu64
				 " it was %" PRIu64,
				 i, le(buf + 16, 8), seq, l->seq);
			zt_fill(want, l->len, op_seed((uint64_t)(l - log)));
		} else {
			zt_fill(want, keys[i].vlen, keys[i].seed);
		}
		zt_check(vlen == (l ? l->len : keys[i].vlen) &&
			     !memcmp(buf + 24 + klen, want, vlen),
			 "key %u: its dumped value is not its value as of %" PRIu64, i, seq);
		entries++;
	}
	for (unsigned i = 0; i < NKEYS; i++) {
		const struct logged *l = state_at(log, n, i, seq);

		zt_check(seen[i] || (l ? l->len == UINT32_MAX : keys[i].deleted),
			 "key %u had a value as of %" PRIu64 ", the dump lacks it", i, seq);
	}
	fclose(f);
	printf("a dump amid %" PRIu64 " puts and deletes: %" PRIu64 " entries as of %" PRIu64
	       ", %" PRIu64 " of the operations before it\n",
	       n, entries, seq, before);
	zt_check(before < n, "the dump did not overlap the writes");
}

static void dump_amid_writes(struct zt_daemon *a, const struct key *keys)
{
	char path[512], cmd[1024], err[512];
	struct logged *log = calloc(MAX_LOG, sizeof(*log));
	zap_client *c = zt_connect(a);
	uint64_t n;
	pid_t pid;

	zt_check(log, "malloc");
	snprintf(path, sizeof(path), "%s/amid.dump", a->dir);
	snprintf(err, sizeof(err), "%s/amid.err", a->dir);
	snprintf(cmd, sizeof(cmd), "-s '%s' dump -o '%s'", a->sock, path);
	pid = fork();
	zt_check(pid >= 0, "fork");
	if (!pid)
		_exit(cli(cmd, err));
	n = churn(c, keys, log, pid);
	check_dump(path, keys, log, n);
	zap_close(c);
	free(log);
}

int main(void)
{
	const char *args[] = { "--size", "512M", "--zone-size", "16M", "--sync", "none", NULL };
	static struct key keys[NKEYS];
	struct zt_daemon a, b;
	char dump[512], part[512], bad[512], cmd[1024], err[512];
	zap_client *c;

	zt_watchdog(600, "dump and restore");
	make_keys(keys);
	zt_init(&a, args);
	zt_start(&a);
	c = zt_connect(&a);
	fill_store(c, keys);
	zap_close(c);
	snprintf(dump, sizeof(dump), "%s/all.dump", a.dir);
	snprintf(part, sizeof(part), "%s/p.dump", a.dir);
	snprintf(bad, sizeof(bad), "%s/bad.dump", a.dir);
	snprintf(err, sizeof(err), "%s/cli.err", a.dir);
	snprintf(cmd, sizeof(cmd), "-s '%s' dump -o '%s'", a.sock, dump);
	zt_check(cli(cmd, err) == 0, "dump failed");
	zt_check(file_has(err, "keys"), "dump printed no summary");
	snprintf(cmd, sizeof(cmd), "-s '%s' dump p/ >'%s'", a.sock, part);
	zt_check(cli(cmd, err) == 0, "dump p/ to stdout failed");
	dump_amid_writes(&a, keys);

	zt_init(&b, args);
	zt_start(&b);
	snprintf(cmd, sizeof(cmd), "-s '%s' restore '%s'", b.sock, dump);
	zt_check(cli(cmd, err) == 0, "restore failed");
	c = zt_connect(&b);
	expect_keys(c, keys, "");
	zap_close(c);
	zt_check(zt_stop(&b) == 0, "daemon b did not exit cleanly");
	zt_cleanup(&b);

	zt_init(&b, args);
	zt_start(&b);
	snprintf(cmd, sizeof(cmd), "-s '%s' restore <'%s'", b.sock, part);
	zt_check(cli(cmd, err) == 0, "restore p/ from stdin failed");
	c = zt_connect(&b);
	expect_keys(c, keys, "p/");
	zap_close(c);

	copy_file(dump, bad);
	damage(bad, 100000, false);
	refused(&b, bad, "flipped");
	copy_file(dump, bad);
	damage(bad, 50000, true);
	refused(&b, bad, "cut short");
	zt_check(zt_stop(&b) == 0, "daemon b did not exit cleanly");
	zt_cleanup(&b);
	zt_check(zt_stop(&a) == 0, "daemon a did not exit cleanly");
	zt_cleanup(&a);
	return 0;
}
