/*
 * The VM tier's power-loss test, in two boots of the same device image:
 *   powerloss put SOCKET      puts pl/000000, pl/000001, ... one at a time and
 *                             prints "ACK n" once put n is acknowledged, until
 *                             the power goes (the host kills QEMU)
 *   powerloss check SOCKET N  after booting again: every put below N (those the
 *                             host saw acknowledged) reads back intact; put N
 *                             (maybe acknowledged, unseen) is whole or absent,
 *                             and nothing after it exists
 * The daemon runs with --sync always, so an acknowledged put is on stable media.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_PUTS 100000

static size_t value_len(unsigned i)
{
	uint64_t st = i * 7919ull + 1;

	return 1 + zt_rand(&st) % (192 * 1024);
}

static int put_loop(zap_client *c)
{
	uint8_t *v = malloc(192 * 1024);
	char key[32];

	for (unsigned i = 0; i < MAX_PUTS; i++) {
		size_t len = value_len(i);
		int ret;

		snprintf(key, sizeof(key), "pl/%06u", i);
		zt_fill(v, len, i);
		ret = zap_put(c, key, strlen(key), v, len, NULL);
		if (ret) {
			fprintf(stderr, "put %u: %s\n", i, zap_strerror(ret));
			return 1;
		}
		printf("ACK %u\n", i);
		fflush(stdout);
	}
	return 1;
}

/*
 * One writer, one put at a time, each acknowledged only once durable: if put
 * k+1 exists, put k was acknowledged before it was sent, so the keys found
 * must be a prefix pl/0 .. pl/M with no gap, every one intact, M >= acked - 1.
 * (The guest may have printed ACK lines the host had not seen yet.)
 */
static int check(zap_client *c, unsigned acked)
{
	uint8_t *want = malloc(192 * 1024);
	unsigned intact = 0, bad = 0, first_absent = UINT32_MAX;
	char key[32];

	for (unsigned i = 0; i < acked || i < first_absent + 64; i++) {
		size_t len = value_len(i), glen;
		void *got;
		int ret;

		snprintf(key, sizeof(key), "pl/%06u", i);
		ret = zap_get(c, key, strlen(key), &got, &glen);
		if (ret == -ENOENT) {
			if (i < acked) {
				printf("lost: %s was acknowledged and is gone\n", key);
				bad++;
			}
			if (first_absent == UINT32_MAX)
				first_absent = i;
			continue;
		}
		if (ret) {
			printf("%s: %s\n", key, zap_strerror(ret));
			bad++;
			continue;
		}
		zt_fill(want, len, i);
		if (glen != len || memcmp(got, want, len)) {
			printf("corrupt: %s reads back %zu bytes, not the %zu put\n", key, glen,
			       len);
			bad++;
		} else if (first_absent < i) {
			printf("%s exists though pl/%06u, put before it, does not\n", key,
			       first_absent);
			bad++;
		} else {
			intact++;
		}
		free(got);
	}
	printf("powerloss: %u puts seen acknowledged before the power went, %u read back "
	       "intact, %u bad\n",
	       acked, intact, bad);
	free(want);
	return bad || acked == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	zap_client *c;
	int ret;

	if (argc < 3 || (strcmp(argv[1], "put") && strcmp(argv[1], "check")) ||
	    (!strcmp(argv[1], "check") && argc < 4)) {
		fprintf(stderr, "usage: powerloss put SOCKET | powerloss check SOCKET N\n");
		return 2;
	}
	ret = zap_connect(argv[2], &c);
	if (ret) {
		fprintf(stderr, "connect %s: %s\n", argv[2], zap_strerror(ret));
		return 1;
	}
	ret = !strcmp(argv[1], "put") ? put_loop(c) : check(c, strtoul(argv[3], NULL, 10));
	zap_close(c);
	return ret;
}
