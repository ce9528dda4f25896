/*
 * Zone summaries: full zones are rebuilt from their summary at restart, open
 * ones are scanned, and a zone that fills after a restart gets a summary
 * listing the records it held before. A damaged summary costs a scan, never
 * data. White box: knows the file backend's layout (a 4 KiB header, zones).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define KEYS	    400
#define FILE_HEADER 4096

static uint32_t vlen_of(uint32_t k, uint32_t gen)
{
	uint64_t st = ((uint64_t)gen << 32) | k;
	uint64_t r = zt_rand(&st);

	/* Mostly small, a few spanning several records. */
	return r % 16 == 0 ? 1048576 + r % 600000 : r % 60000;
}

static void put_all(zap_client *c, uint32_t gen, uint8_t *buf)
{
	char key[16];

	for (uint32_t k = 0; k < KEYS; k++) {
		if ((k + gen) % 7 == 0)
			continue; /* some keys keep their older version */
		snprintf(key, sizeof(key), "k%u", k);
		zt_fill(buf, vlen_of(k, gen), ((uint64_t)gen << 32) | k);
		zt_ok(zap_put(c, key, strlen(key), buf, vlen_of(k, gen), NULL));
	}
	for (uint32_t k = gen; k < KEYS; k += 50) {
		if ((k + gen) % 7 == 0)
			continue; /* not put in this generation: may not exist */
		snprintf(key, sizeof(key), "k%u", k);
		zt_ok(zap_del(c, key, strlen(key)));
	}
}

/* The generation whose value key k holds after gens 1..last, or 0 if deleted or never put. */
static uint32_t expected_gen(uint32_t k, uint32_t last)
{
	uint32_t have = 0;

	for (uint32_t g = 1; g <= last; g++) {
		if ((k + g) % 7)
			have = g;
		if ((k + g) % 7 && k >= g && (k - g) % 50 == 0)
			have = 0;
	}
	return have;
}

/* key (name, in messages) reads back as want; what says where it lay. */
static void expect_value(zap_client *c, const void *key, size_t klen, const char *name,
			 const void *want, size_t wlen, const char *what)
{
	void *got;
	size_t glen;
	int ret = zap_get(c, key, klen, &got, &glen);

	zt_check(ret == 0, "%s%s: %s", name, what, zap_strerror(ret));
	zt_check(glen == wlen && !memcmp(got, want, glen), "%s%s: wrong value", name, what);
	free(got);
}

static void check_all(zap_client *c, uint32_t last, uint8_t *want)
{
	char key[16];

	for (uint32_t k = 0; k < KEYS; k++) {
		uint32_t g = expected_gen(k, last);
		void *got;
		size_t glen;
		int ret;

		snprintf(key, sizeof(key), "k%u", k);
		ret = zap_get(c, key, strlen(key), &got, &glen);
		if (!g) {
			zt_check(ret == -ENOENT, "%s: deleted, yet get says %s", key,
				 zap_strerror(ret));
			continue;
		}
		zt_check(ret == 0, "%s: %s", key, zap_strerror(ret));
		zt_fill(want, vlen_of(k, g), ((uint64_t)g << 32) | k);
		zt_check(glen == vlen_of(k, g) && !memcmp(got, want, glen),
			 "%s: not the value of generation %u", key, g);
		free(got);
	}
}

/*
 * With the daemon stopped: counts the zones whose summary's footer ends them
 * (those a restart reads from their summary), and damages the first footer.
 */
static uint64_t damage_a_summary(const struct zt_daemon *d, const struct zap_zone *z, size_t n)
{
	int fd = open(d->dev, O_RDWR);
	uint8_t blk[4096];
	uint64_t footers = 0;

	zt_check(fd >= 0, "open %s", d->dev);
	for (size_t i = 0; i < n; i++) {
		uint64_t at = FILE_HEADER + z[i].start + z[i].capacity - 4096;

		zt_check(pread(fd, blk, 4096, at) == 4096, "pread");
		if (memcmp(blk + 4096 - 16, "ZSUM", 4))
			continue;
		if (!footers++) {
			blk[4095] ^= 0xff; /* the footer's tag */
			zt_check(pwrite(fd, blk, 4096, at) == 4096 && !fsync(fd), "pwrite");
		}
	}
	close(fd);
	zt_check(footers, "no zone with a summary to damage");
	return footers;
}

/*
 * A summary cut short: the zone is finished with the summary's first parts
 * written and the last missing, as when an append of the last part fails.
 * 1 KiB keys make the summary of an 8 MiB zone about 2 MiB, three parts.
 */
#define CUT_KEYS_MAX 20000

static void cut_key(char *key, uint32_t k)
{
	memset(key, 'x', 1024);
	snprintf(key, 16, "cut/%06u", k);
	key[strlen(key)] = '-';
}

static void drop_last_summary_part(const struct zt_daemon *d, zap_client *c)
{
	/* The summary ends the zone's last block, of the store's block size. */
	const uint64_t bs = zt_stat(c, "block_bytes");
	struct zap_zone *z;
	size_t n;
	int fd = open(d->dev, O_RDWR);
	uint8_t blk[4096], zero[4096] = { 0 };

	zt_check(fd >= 0, "open %s", d->dev);
	zt_check(bs >= 512 && bs <= sizeof(blk), "block_bytes %llu", (unsigned long long)bs);
	zt_ok(zap_zones(c, &z, &n));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(z[i].state, "full"))
			continue;
		for (uint64_t off = z[i].capacity; off >= bs; off -= bs) {
			uint64_t at = FILE_HEADER + z[i].start + off - bs, blocks;

			zt_check(pread(fd, blk, bs, at) == (ssize_t)bs, "pread");
			if (!memcmp(blk, zero, bs))
				continue;
			/* The footer: magic, the record's length in blocks, tag. */
			zt_check(!memcmp(blk + bs - 16, "ZSUM", 4),
				 "no summary footer in the last block");
			blocks = blk[bs - 12] | blk[bs - 11] << 8 | (uint64_t)blk[bs - 10] << 16;
			/* A part before the last ends right before it: the summary has several. */
			zt_check(pread(fd, blk, bs, at - blocks * bs) == (ssize_t)bs &&
				     memcmp(blk, zero, bs),
				 "the last summary part is the only one");
			for (uint64_t b = 0; b < blocks; b++)
				zt_check(pwrite(fd, zero, bs, at - b * bs) == (ssize_t)bs,
					 "pwrite");
			zt_check(!fsync(fd), "fsync");
			close(fd);
			free(z);
			return;
		}
	}
	zt_fail("no full zone");
}

static void summary_cut_short(void)
{
	const char *args[] = { "--size", "64M", "--zone-size", "8M", "--open-zones", "1", NULL };
	struct zt_daemon d;
	zap_client *c;
	char key[1024];
	uint32_t nkeys;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	/* Until a zone is full, whatever the block: its summary is the one cut short. */
	for (nkeys = 0; nkeys < CUT_KEYS_MAX && (nkeys % 256 || !zt_stat(c, "zones_full"));
	     nkeys++) {
		cut_key(key, nkeys);
		zt_ok(zap_put(c, key, sizeof(key), &nkeys, sizeof(nkeys), NULL));
	}
	drop_last_summary_part(&d, c);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t k = 0; k < nkeys; k++) {
		char name[32];

		cut_key(key, k); /* 1 KiB, not a string */
		snprintf(name, sizeof(name), "key %u", k);
		expect_value(c, key, sizeof(key), name, &k, sizeof(k),
			     ", in a zone whose summary was cut short");
	}
	/* The one whose summary was cut short (the open one has a checkpoint). */
	zt_check(zt_stat(c, "recovery_zones_scanned") >= 1, "the zone cut short was not scanned");
	printf("summary cut short: %u keys read back (%llu zones scanned)\n", nkeys,
	       (unsigned long long)zt_stat(c, "recovery_zones_scanned"));
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
}

/*
 * A full zone without its summary (as when a zone is finished before its
 * summary could be written) is scanned up to its last written block. Values
 * that end in zeros longer than any block leave the last record's end past
 * that block: the record must still be read whole, not taken for torn.
 */
#define TAIL_VLEN  20000
#define TAIL_ZEROS 8192

static void tail_value(uint8_t *buf, uint32_t k)
{
	zt_fill(buf, TAIL_VLEN - TAIL_ZEROS, 0x7a11000000ull | k);
	memset(buf + TAIL_VLEN - TAIL_ZEROS, 0, TAIL_ZEROS);
}

/* Zeros every full zone from the first record that is not a lone put (padding, summary) on. */
static unsigned drop_summaries(const struct zt_daemon *d, const struct zap_zone *z, size_t n,
			       uint64_t bs, size_t klen)
{
	/* Each put went alone, so each record starts a block: header, key, value, to 8 bytes. */
	uint64_t step = ((20 + klen + TAIL_VLEN + 7) / 8 * 8 + bs - 1) / bs * bs;
	uint8_t blk[4096] = { 0 }, zero[4096] = { 0 };
	unsigned dropped = 0;
	int fd = open(d->dev, O_RDWR);

	zt_check(fd >= 0, "open %s", d->dev);
	for (size_t i = 0; i < n; i++) {
		uint64_t off = 0;

		if (strcmp(z[i].state, "full"))
			continue;
		for (; off < z[i].capacity; off += step) {
			zt_check(pread(fd, blk, bs, FILE_HEADER + z[i].start + off) == (ssize_t)bs,
				 "pread");
			if (blk[4] != 1) /* ZREC_PUT */
				break;
		}
		zt_check(off > 0 && off < z[i].capacity, "zone %u: no tail after its records",
			 z[i].id);
		for (; off < z[i].capacity; off += bs)
			zt_check(pwrite(fd, zero, bs, FILE_HEADER + z[i].start + off) ==
				     (ssize_t)bs,
				 "pwrite");
		dropped++;
	}
	zt_check(!fsync(fd), "fsync");
	close(fd);
	return dropped;
}

static void summary_gone_zero_tails(void)
{
	const char *args[] = { "--size", "64M",	   "--zone-size", "8M", "--open-zones",
			       "1",	 "--sync", "always",	  NULL };
	uint8_t *buf = malloc(TAIL_VLEN);
	struct zap_zone *z;
	struct zt_daemon d;
	zap_client *c;
	char key[16];
	uint32_t n;
	size_t nz;
	uint64_t bs;
	unsigned dropped;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	bs = zt_stat(c, "block_bytes");
	zt_check(bs >= 512 && bs <= 4096, "block_bytes %llu", (unsigned long long)bs);
	for (n = 0; n < 2000 && (n % 16 || !zt_stat(c, "zones_full")); n++) {
		snprintf(key, sizeof(key), "tail/%05u", n);
		tail_value(buf, n);
		zt_ok(zap_put(c, key, strlen(key), buf, TAIL_VLEN, NULL));
	}
	zt_ok(zap_zones(c, &z, &nz));
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	dropped = drop_summaries(&d, z, nz, bs, strlen("tail/00000"));
	free(z);
	zt_check(dropped >= 1, "no full zone");
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t k = 0; k < n; k++) {
		snprintf(key, sizeof(key), "tail/%05u", k);
		tail_value(buf, k);
		expect_value(c, key, strlen(key), key, buf, TAIL_VLEN,
			     ", in a zone scanned without its summary");
	}
	printf("summaries gone, values ending in zeros: %u keys read back (%u zones scanned)\n", n,
	       dropped);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(buf);
}

static zap_client *restart(struct zt_daemon *d)
{
	zt_check(zt_stop(d) == 0, "daemon did not exit cleanly");
	zt_start(d);
	return zt_connect(d);
}

int main(void)
{
	const char *args[] = { "--size", "512M", "--zone-size", "4M", NULL };
	uint8_t *buf = malloc(2 * 1048576);
	struct zt_daemon d;
	zap_client *c;
	uint64_t summarised, scanned;
	struct zap_zone *zones;
	size_t nzones;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	put_all(c, 1, buf);
	put_all(c, 2, buf);
	zap_close(c);

	c = restart(&d);
	summarised = zt_stat(c, "recovery_zones_summarised");
	scanned = zt_stat(c, "recovery_zones_scanned");
	printf("restart 1: %llu zones from summaries, %llu scanned\n",
	       (unsigned long long)summarised, (unsigned long long)scanned);
	zt_check(summarised >= 10, "only %llu zones came from summaries",
		 (unsigned long long)summarised);
	check_all(c, 2, buf);

	/* The zones open at the restart fill now: their summaries must list older records. */
	put_all(c, 3, buf);
	put_all(c, 4, buf);
	zap_close(c);
	c = restart(&d);
	check_all(c, 4, buf);

	zt_ok(zap_zones(c, &zones, &nzones));
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	summarised = damage_a_summary(&d, zones, nzones);
	free(zones);
	zt_start(&d);
	c = zt_connect(&d);
	printf("after damage: %llu zones from summaries, %llu scanned\n",
	       (unsigned long long)zt_stat(c, "recovery_zones_summarised"),
	       (unsigned long long)zt_stat(c, "recovery_zones_scanned"));
	zt_check(zt_stat(c, "recovery_zones_summarised") == summarised - 1,
		 "a damaged summary was used (%llu zones had a summary before the damage)",
		 (unsigned long long)summarised);
	check_all(c, 4, buf);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(buf);
	summary_cut_short();
	summary_gone_zero_tails();
	return 0;
}
