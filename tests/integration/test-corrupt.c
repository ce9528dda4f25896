/*
 * A corrupted block on the media makes get fail with an error; it never
 * returns wrong bytes. After a clean stop the zones' checkpoints list the
 * damaged record, as a full zone's summary would: it still reads as an
 * error; a restart that scans (a crash, --rescan) skips it.
 * White box: knows the file backend's layout (a 4 KiB header, then zones).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define FILE_HEADER 4096

/* Stops d and starts it again, scanning every zone with rescan. */
static void restart(struct zt_daemon *d, bool rescan)
{
	size_t n = 0;

	zt_check(zt_stop(d) == 0, "daemon did not exit cleanly");
	while (d->args[n])
		n++;
	d->args[n] = rescan ? "--rescan" : NULL;
	d->args[n + 1] = NULL;
	zt_start(d);
	d->args[n] = NULL;
}

/* Key reads as want (-EIO, -ENOENT): never as a value. */
static void expect_err(zap_client *c, const char *key, int want, const char *when)
{
	void *got;
	size_t glen;
	int ret = zap_get(c, key, strlen(key), &got, &glen);

	zt_check(ret == want, "the damaged %s %s: %s", key, when, zap_strerror(ret));
}

static uint64_t zone_start(zap_client *c, uint32_t zone)
{
	struct zap_zone *z;
	size_t n;
	uint64_t start;

	zt_ok(zap_zones(c, &z, &n));
	zt_check(zone < n, "zone %u of %zu", zone, n);
	start = z[zone].start;
	free(z);
	return start;
}

static void flip(const struct zt_daemon *d, uint64_t off)
{
	int fd = open(d->dev, O_RDWR);
	uint8_t b;

	zt_check(fd >= 0 && pread(fd, &b, 1, off) == 1, "read %s", d->dev);
	b ^= 0x10;
	zt_check(pwrite(fd, &b, 1, off) == 1 && fsync(fd) == 0, "write %s", d->dev);
	close(fd);
}

/* Where in the image the record of key's chunk-th chunk starts (record header layout). */
static uint64_t find_chunk(const struct zt_daemon *d, const char *key, uint32_t chunk)
{
	int fd = open(d->dev, O_RDONLY);
	uint8_t blk[4096];
	uint64_t found = 0;
	off_t off = FILE_HEADER;

	zt_check(fd >= 0, "open %s", d->dev);
	while (!found && (off = lseek(fd, off, SEEK_DATA)) >= 0) {
		if (pread(fd, blk, sizeof(blk), off) != sizeof(blk))
			break;
		/* A chunk of a value in several records: the extension, then the key at 44. */
		if (blk[4] == 1 && blk[5] == 1 && blk[6] == strlen(key) &&
		    !memcmp(blk + 44, key, strlen(key)) && !memcmp(blk + 36, &chunk, 4))
			found = off;
		off += sizeof(blk);
	}
	close(fd);
	zt_check(found, "chunk %u of %s not found in the image", chunk, key);
	return found;
}

/* Puts pipelined, so that they pack into shared blocks: where each landed. */
#define NB 40
static struct zap_put_info nb_at[NB];

static void nb_done(zap_client *c, const struct zap_result *r, void *arg)
{
	(void)c;
	zt_check(!r->err, "pipelined put: %s", zap_strerror(r->err));
	nb_at[(uintptr_t)arg] = r->info;
}

static void nb_key(char *key, unsigned i)
{
	snprintf(key, 16, "nb-%02u", i);
}

/*
 * Records share blocks: damage inside one costs that record only, not the
 * ones packed after it in its block (a restart steps past it 8 bytes at a time).
 */
static void neighbours(struct zt_daemon *d)
{
	static uint8_t val[NB][100];
	zap_client *c = zt_connect(d);
	unsigned victim = NB;
	char key[16];
	void *got;
	size_t glen;

	for (unsigned i = 0; i < NB; i++) {
		nb_key(key, i);
		zt_fill(val[i], sizeof(val[i]), 1000 + i);
		zt_ok(zap_put_async(c, key, strlen(key), val[i], sizeof(val[i]), nb_done,
				    (void *)(uintptr_t)i));
	}
	zt_ok(zap_wait_all(c));
	/* A record with a neighbour after it in its block. */
	for (unsigned i = 0; i < NB && victim == NB; i++) {
		for (unsigned j = 0; j < NB; j++) {
			if (nb_at[j].zone == nb_at[i].zone && nb_at[j].offset > nb_at[i].offset &&
			    nb_at[j].offset / 4096 == nb_at[i].offset / 4096)
				victim = i;
		}
	}
	zt_check(victim < NB, "no two of %d pipelined puts share a block", NB);
	flip(d, FILE_HEADER + zone_start(c, nb_at[victim].zone) + nb_at[victim].offset + 40);
	zap_close(c);
	for (int rescan = 0; rescan < 2; rescan++) {
		restart(d, rescan);
		c = zt_connect(d);
		for (unsigned i = 0; i < NB; i++) {
			int ret;

			nb_key(key, i);
			if (i == victim) {
				expect_err(c, key, rescan ? -ENOENT : -EIO,
					   rescan ? "after a rescan" : "after a clean restart");
				continue;
			}
			ret = zap_get(c, key, strlen(key), &got, &glen);
			zt_check(ret == 0 && glen == sizeof(val[i]) && !memcmp(got, val[i], glen),
				 "%s, packed beside a damaged record, lost: %s", key,
				 zap_strerror(ret));
			free(got);
		}
		zap_close(c);
	}
}

struct victim {
	const char *key;
	size_t vlen;
	uint32_t chunk; /* the record to damage */
	uint64_t at;	/* and where in it */
};

int main(void)
{
	const char *args[] = { "--size", "1G", "--zone-size", "32M", NULL };
	/*
	 * Damage in the header, the key, the value, the last value byte of a
	 * record that fills its block, a later chunk (a 20-byte header, then the key).
	 */
	struct victim v[] = {
		{ "hdr", 1000, 0, 10 },		 { "keyhit", 1000, 0, 22 },
		{ "value", 8000, 0, 4500 },	 { "tail", 4096 - 20 - 4, 0, 4095 },
		{ "chunked", 3000000, 1, 5000 },
	};
	struct zt_daemon d;
	zap_client *c;
	void *got;
	size_t glen;
	uint8_t *buf = malloc(3000000);

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct zap_put_info info;
		uint64_t at;

		zt_fill(buf, v[i].vlen, i);
		zt_ok(zap_put(c, v[i].key, strlen(v[i].key), buf, v[i].vlen, &info));
		if (v[i].chunk)
			at = find_chunk(&d, v[i].key, v[i].chunk) + v[i].at;
		else
			at = FILE_HEADER + zone_start(c, info.zone) + info.offset + v[i].at;
		flip(&d, at);
	}
	zt_ok(zap_put(c, "fine", 4, "ok", 2, NULL));
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int ret = zap_get(c, v[i].key, strlen(v[i].key), &got, &glen);

		zt_check(ret == -EIO, "get %s after damage: %s", v[i].key, zap_strerror(ret));
	}
	zt_ok(zap_get(c, "fine", 4, &got, &glen));
	free(got);
	zt_check(zt_stat(c, "corrupt_records") == 5, "corrupt records not counted");
	zap_close(c);

	/* Restart: damaged records are never served; a scan skips them. */
	for (int rescan = 0; rescan < 2; rescan++) {
		restart(&d, rescan);
		c = zt_connect(&d);
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			expect_err(c, v[i].key, rescan ? -ENOENT : -EIO,
				   rescan ? "after a rescan" : "after a clean restart");
		zt_ok(zap_get(c, "fine", 4, &got, &glen));
		free(got);
		zap_close(c);
	}
	neighbours(&d);
	zt_stop(&d);
	zt_cleanup(&d);
	free(buf);
	return 0;
}
