/*
 * zappend-cli dump, then restore into a fresh store: the same keys with the
 * same values, binary keys (NUL, newline, 0xff) and empty and multi-chunk
 * values included, deleted keys absent; a prefix dumps only its keys; a dump
 * with a flipped byte or cut short is refused, naming the entry.
 */
#include <errno.h>
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
