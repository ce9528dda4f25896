/*
 * 16 clients at once, each on its own connection: puts, overwrites, gets and
 * deletes of their own keys and of keys they share. Every client's own keys
 * read back newest-wins; a shared key reads back as one whole value some
 * client wrote. The daemon must have had appends to one zone in flight
 * together (max_inflight_per_zone > 1): zone append's whole point.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CLIENTS 16
#define OPS	400
#define SHARED	8

static struct zt_daemon d;

/* A value names its own seed in its first 8 bytes, so any read can be checked alone. */
static void make_value(uint8_t *v, size_t len, uint64_t seed)
{
	zt_fill(v, len, seed);
	if (len >= 8)
		memcpy(v, &seed, 8);
}

static void check_value(const uint8_t *v, size_t len, const char *what)
{
	uint8_t *want = malloc(len + 1);
	uint64_t seed;

	zt_check(len >= 8, "%s: value of %zu bytes is too short", what, len);
	memcpy(&seed, v, 8);
	make_value(want, len, seed);
	zt_check(!memcmp(want, v, len), "%s: value is not one that was written", what);
	free(want);
}

static void *client(void *arg)
{
	unsigned id = (uintptr_t)arg;
	zap_client *c = zt_connect(&d);
	uint64_t rng = id + 1, last_seed[8] = { 0 };
	size_t last_len[8] = { 0 };
	uint8_t *v = malloc(256 * 1024);
	char key[32];

	for (unsigned op = 0; op < OPS; op++) {
		uint64_t r = zt_rand(&rng), seed = ((uint64_t)id << 32) | op;
		size_t len = 8 + r % (r & 1 ? 4096 : 200 * 1024);
		unsigned k = r % 8;

		if (r % 5 == 0) {
			snprintf(key, sizeof(key), "shared/%u", (unsigned)(r % SHARED));
		} else {
			snprintf(key, sizeof(key), "own/%u/%u", id, k);
			last_seed[k] = seed;
			last_len[k] = len;
		}
		make_value(v, len, seed);
		zt_ok(zap_put(c, key, strlen(key), v, len, NULL));
	}
	for (unsigned k = 0; k < 8; k++) {
		void *got;
		size_t glen;

		snprintf(key, sizeof(key), "own/%u/%u", id, k);
		if (!last_len[k])
			continue;
		zt_ok(zap_get(c, key, strlen(key), &got, &glen));
		make_value(v, last_len[k], last_seed[k]);
		zt_check(glen == last_len[k] && !memcmp(got, v, glen), "%s: not the newest value",
			 key);
		free(got);
	}
	free(v);
	zap_close(c);
	return NULL;
}

int main(void)
{
	const char *args[] = { "--size", "4G", "--zone-size", "32M", "--buffer-pool", "4M", NULL };
	pthread_t t[CLIENTS];
	zap_client *c;
	char key[32];
	uint64_t inflight, full;

	zt_init(&d, args);
	zt_start(&d);
	for (uintptr_t i = 0; i < CLIENTS; i++)
		pthread_create(&t[i], NULL, client, (void *)i);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);

	c = zt_connect(&d);
	for (unsigned k = 0; k < SHARED; k++) {
		void *got;
		size_t glen;
		int ret;

		snprintf(key, sizeof(key), "shared/%u", k);
		ret = zap_get(c, key, strlen(key), &got, &glen);
		if (ret == -ENOENT)
			continue;
		zt_ok(ret);
		check_value(got, glen, key);
		free(got);
	}
	inflight = zt_stat(c, "max_inflight_per_zone");
	printf("max_inflight_per_zone %llu\n", (unsigned long long)inflight);
	zt_check(inflight > 1, "appends to one zone were never in flight together");
	full = zt_stat(c, "zones_full");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	/* Zones filled under load got their summaries too: a restart reads no full zone whole. */
	zt_start(&d);
	c = zt_connect(&d);
	printf("%llu full zones, %llu read from their summary\n", (unsigned long long)full,
	       (unsigned long long)zt_stat(c, "recovery_zones_summarised"));
	zt_check(full > 0, "the load filled no zone: the check below would prove nothing");
	zt_check(zt_stat(c, "recovery_zones_summarised") == full,
		 "full zones without a summary after a load");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	return 0;
}
