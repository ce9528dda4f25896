/* Put, get, overwrite, delete, list and the limits, over the real socket. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void put_get(zap_client *c, const void *key, size_t klen, size_t vlen, uint64_t seed)
{
	void *v = malloc(vlen + 1), *got;
	size_t glen;

	zt_fill(v, vlen, seed);
	zt_ok(zap_put(c, key, klen, v, vlen, NULL));
	zt_ok(zap_get(c, key, klen, &got, &glen));
	zt_check(got != NULL, "get of %zu bytes gave NULL", vlen);
	zt_check(glen == vlen && !memcmp(got, v, vlen), "value of %zu bytes came back different",
		 vlen);
	free(got);
	free(v);
}

static void sizes(zap_client *c)
{
	static const size_t lens[] = { 0,
				       1,
				       4031,
				       4032,
				       4033,
				       4096,
				       65536,
				       1048576 - 64 - 3,
				       1048576 - 64 - 2,
				       1048576,
				       3 * 1048576 + 7,
				       20 * 1048576 };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		put_get(c, "len", 3, lens[i], i);
}

static void overwrite_and_delete(zap_client *c)
{
	struct zap_put_info a, b;
	void *got;
	size_t glen;

	zt_ok(zap_put(c, "k", 1, "one", 3, &a));
	zt_ok(zap_put(c, "k", 1, "two!", 4, &b));
	zt_check(b.seq > a.seq, "sequence went from %llu to %llu", (unsigned long long)a.seq,
		 (unsigned long long)b.seq);
	zt_check(a.zone >= 1, "a put landed in zone %u, the superblock's", a.zone);
	zt_ok(zap_get(c, "k", 1, &got, &glen));
	zt_check(glen == 4 && !memcmp(got, "two!", 4), "overwrite did not win");
	free(got);
	zt_ok(zap_del(c, "k", 1));
	zt_check(zap_get(c, "k", 1, &got, &glen) == -ENOENT, "deleted key still readable");
	zt_check(zap_del(c, "k", 1) == -ENOENT, "second delete found the key");
	zt_check(zap_get(c, "never", 5, &got, &glen) == -ENOENT, "missing key found");
}

static void limits(zap_client *c)
{
	char key[1025];
	char *big = calloc(1, 1048577);
	void *got;
	size_t glen;

	memset(key, 'x', sizeof(key));
	zt_ok(zap_put(c, key, 1024, "v", 1, NULL));
	zt_ok(zap_get(c, key, 1024, &got, &glen));
	free(got);
	zt_check(zap_put(c, key, 1025, "v", 1, NULL) == -E2BIG, "1025-byte key accepted");
	zt_check(zap_put(c, key, 0, "v", 1, NULL) == -EINVAL, "empty key accepted");
	/* The daemon runs with --max-value 1M: the connection must stay in sync after. */
	zt_check(zap_put(c, "big", 3, big, 1048577, NULL) == -E2BIG, "oversized value accepted");
	zt_check(zap_get(c, "big", 3, &got, &glen) == -ENOENT, "oversized value stored");
	put_get(c, "after", 5, 100, 7);
	free(big);
}

static void binary_keys(zap_client *c)
{
	const char k1[] = { 0, 1, 2 }, k2[] = { 0, 1 }, k3[] = { 0 };

	put_get(c, k1, 3, 10, 1);
	put_get(c, k2, 2, 20, 2);
	put_get(c, k3, 1, 30, 3);
	put_get(c, k1, 3, 11, 4);
}

struct collect {
	char **keys;
	size_t n;
};

static int collect_key(const void *key, size_t klen, void *arg)
{
	struct collect *col = arg;

	col->keys[col->n] = strndup(key, klen);
	col->n++;
	return 0;
}

static void list(zap_client *c)
{
	enum { N = 2500 };
	struct collect col = { .keys = calloc(N + 10, sizeof(char *)) };
	char key[32];

	/* Inserted in reverse, listed in byte order across SCAN steps. */
	for (int i = N - 1; i >= 0; i--) {
		snprintf(key, sizeof(key), "list/%05d", i);
		zt_ok(zap_put(c, key, strlen(key), "x", 1, NULL));
	}
	zt_ok(zap_put(c, "lisp", 4, "x", 1, NULL));
	zt_ok(zap_del(c, "list/00007", 10));
	zt_ok(zap_list(c, "list/", 5, collect_key, &col));
	zt_check(col.n == N - 1, "listed %zu keys, expected %d", col.n, N - 1);
	for (size_t i = 1; i < col.n; i++)
		zt_check(strcmp(col.keys[i - 1], col.keys[i]) < 0, "list out of order at %zu", i);
	for (size_t i = 0; i < col.n; i++)
		free(col.keys[i]);
	free(col.keys);
}

/* zap_get_into: the value into the caller's buffer, or -ENOBUFS and its size. */
static void get_into(zap_client *c)
{
	size_t big = 3 << 20, vlen = 1;
	uint8_t *v = malloc(big), *buf = malloc(big + 1);

	zt_check(v && buf, "malloc");
	zt_fill(v, big, 77);
	zt_check(zap_put(c, "into/big", 8, v, big, NULL) == 0, "put into/big");
	zt_check(zap_get_into(c, "into/big", 8, buf, big - 1, &vlen) == -ENOBUFS,
		 "a value one byte too large for the buffer");
	zt_check(vlen == big, "-ENOBUFS told %zu, not the value's %zu bytes", vlen, big);
	zt_check(zap_get_into(c, "into/big", 8, buf, big + 1, &vlen) == 0, "get_into");
	zt_check(vlen == big && !memcmp(buf, v, big), "get_into: wrong value");
	zt_check(zap_put(c, "into/empty", 10, "", 0, NULL) == 0, "put into/empty");
	zt_check(zap_get_into(c, "into/empty", 10, NULL, 0, &vlen) == 0 && vlen == 0,
		 "an empty value into no buffer");
	zt_check(zap_get_into(c, "into/none", 9, buf, 10, &vlen) == -ENOENT && vlen == 0,
		 "a missing key");
	zt_check(zap_get_into(c, "into/big", 8, NULL, 10, &vlen) == -EINVAL, "no buffer, room");
	free(v);
	free(buf);
}

/* Connection failures and answers never share a code: no socket is not "not found". */
static void connection_errors(struct zt_daemon *d, zap_client *c)
{
	char path[512];
	zap_client *none = NULL;
	int ret;

	zt_check(zap_ping(c) == 0, "ping");
	snprintf(path, sizeof(path), "%s/no-such.sock", d->dir);
	ret = zap_connect(path, &none);
	zt_check(ret == -ECONNREFUSED, "connect to a missing socket: %d, not -ECONNREFUSED", ret);
	zt_check(!none, "a failed connect handed out a client");
}

int main(void)
{
	const char *args[] = { "--size", "2G", "--zone-size", "64M", "--max-value", "32M", NULL };
	struct zt_daemon d;
	zap_client *c;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	sizes(c);
	overwrite_and_delete(c);
	binary_keys(c);
	list(c);
	get_into(c);
	connection_errors(&d, c);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	/* Limits with a small --max-value. */
	d.args[5] = "1M";
	zt_start(&d);
	c = zt_connect(&d);
	limits(c);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	return 0;
}
