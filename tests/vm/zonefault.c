/*
 * The VM tier's zone-fault test (plan zfault). QEMU fails every write that
 * touches chosen sectors of the namespace (its blkdebug driver), so Zone
 * Appends come back with an NVMe error while others to the same zone are in
 * flight, some of which land after the failed one:
 *   zonefault put SOCKET N [FIRST]  puts zf/FIRST .. FIRST+N-1 (4-64 KiB),
 *                                up to 256 queued, and prints "ACK i" or
 *                                "NACK i ERROR" for each as it completes
 *   zonefault check SOCKET FILE  every ACK in FILE (put's output) reads back
 *                                intact; every NACK is absent or intact
 * put passes only if every put was acknowledged: an append that fails takes
 * its zone out of use and goes again to another zone, as many times as the
 * daemon's write set holds zones and once more.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define BATCH 256 /* puts queued at once: the daemon keeps up to 128 appends in flight */

struct tally {
	unsigned acked, failed;
};

struct inflight {
	unsigned i;
	void *val;
	struct tally *t;
};

static size_t value_len(unsigned i)
{
	uint64_t st = i * 7919ull + 3;

	return 4096 + zt_rand(&st) % (60 * 1024);
}

static void key_of(unsigned i, char *key, size_t len)
{
	snprintf(key, len, "zf/%06u", i);
}

static void put_done(zap_client *c, const struct zap_result *r, void *arg)
{
	struct inflight *f = arg;

	(void)c;
	if (!r->err) {
		printf("ACK %u\n", f->i);
		f->t->acked++;
	} else {
		printf("NACK %u %s\n", f->i, zap_strerror(r->err));
		f->t->failed++;
	}
	free(f->val);
	free(f);
}

static int put_all(zap_client *c, unsigned first, unsigned n)
{
	struct tally t = { 0 };
	char key[32];

	for (unsigned i = first; i < first + n; i++) {
		struct inflight *f = malloc(sizeof(*f));
		size_t len = value_len(i);

		*f = (struct inflight){ .i = i, .val = malloc(len), .t = &t };
		zt_fill(f->val, len, i);
		key_of(i, key, sizeof(key));
		if (zap_put_async(c, key, strlen(key), f->val, len, put_done, f)) {
			fprintf(stderr, "put %u: cannot queue\n", i);
			return 1;
		}
		if (zap_pending(c) >= BATCH && zap_wait_all(c))
			return 1;
	}
	if (zap_wait_all(c))
		return 1;
	fprintf(stderr, "zonefault: %u puts, %u acknowledged, %u failed\n", n, t.acked, t.failed);
	return t.acked == n ? 0 : 1;
}

static int check_one(zap_client *c, unsigned i, bool acked)
{
	size_t len = value_len(i), glen;
	char key[32];
	void *got, *want;
	int ret, bad = 0;

	key_of(i, key, sizeof(key));
	ret = zap_get(c, key, strlen(key), &got, &glen);
	if (ret == -ENOENT && !acked)
		return 0;
	if (ret) {
		printf("%s (%s): %s\n", key, acked ? "acknowledged" : "failed", zap_strerror(ret));
		return 1;
	}
	want = malloc(len);
	zt_fill(want, len, i);
	if (glen != len || memcmp(got, want, len)) {
		printf("corrupt: %s reads back %zu bytes, not the %zu put\n", key, glen, len);
		bad = 1;
	}
	free(want);
	free(got);
	return bad;
}

static int check_all(zap_client *c, const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned i, acked = 0, failed = 0, bad = 0;
	char word[8], line[128];

	if (!f) {
		perror(path);
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%7s %u", word, &i) != 2)
			continue;
		if (!strcmp(word, "ACK"))
			acked++;
		else if (!strcmp(word, "NACK"))
			failed++;
		else
			continue;
		bad += check_one(c, i, word[0] == 'A');
	}
	fclose(f);
	printf(
	    "zonefault: %u acknowledged puts read back, %u failed ones absent or whole, %u bad\n",
	    acked, failed, bad);
	return bad || acked == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	zap_client *c;
	int ret;

	if (argc < 4 || (strcmp(argv[1], "put") && strcmp(argv[1], "check")) ||
	    argc > (strcmp(argv[1], "put") ? 4 : 5)) {
		fprintf(stderr,
			"usage: zonefault put SOCKET N [FIRST] | zonefault check SOCKET FILE\n");
		return 2;
	}
	ret = zap_connect(argv[2], &c);
	if (ret) {
		fprintf(stderr, "connect %s: %s\n", argv[2], zap_strerror(ret));
		return 1;
	}
	if (!strcmp(argv[1], "put"))
		ret = put_all(c, argc > 4 ? strtoul(argv[4], NULL, 10) : 0,
			      strtoul(argv[3], NULL, 10));
	else
		ret = check_all(c, argv[3]);
	zap_close(c);
	return ret;
}
