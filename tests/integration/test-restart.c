/*
 * A clean restart keeps everything: puts, overwrites and deletes, values in
 * one record and in many, and the sequence numbers go on from where they were.
 * Also: the daemon refuses a device formatted with another geometry, and one
 * holding foreign data, without writing to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static void expect(zap_client *c, const char *key, size_t vlen, uint64_t seed)
{
	void *got;
	size_t glen;
	uint8_t *want = malloc(vlen + 1);

	zt_ok(zap_get(c, key, strlen(key), &got, &glen));
	zt_fill(want, vlen, seed);
	zt_check(glen == vlen && !memcmp(got, want, vlen), "%s: wrong value after restart", key);
	free(got);
	free(want);
}

static void put(zap_client *c, const char *key, size_t vlen, uint64_t seed,
		struct zap_put_info *info)
{
	uint8_t *v = malloc(vlen + 1);

	zt_fill(v, vlen, seed);
	zt_ok(zap_put(c, key, strlen(key), v, vlen, info));
	free(v);
}

/* The superblock's copies lie 64 KiB apart at the start of its zone (daemon/super.h). */
#define SUPER_COPIES 3
#define SUPER_GAP    (64 * 1024)

static void foreign_data(struct zt_daemon *d)
{
	char junk[4096];
	int fd = open(d->dev, O_WRONLY);

	/* Data where a zone starts, but no superblock: not ours, so not to be touched. */
	memset(junk, 0xA5, sizeof(junk));
	zt_check(fd >= 0, "open %s", d->dev);
	for (int i = 0; i < SUPER_COPIES; i++)
		zt_check(pwrite(fd, junk, sizeof(junk), 4096 + i * SUPER_GAP) == sizeof(junk),
			 "pwrite");
	close(fd);
	zt_check(zt_start_fails(d, NULL) == 3, "a device without superblock: not refused for good");
	fd = open(d->dev, O_RDONLY);
	zt_check(pread(fd, junk, sizeof(junk), 4096) == sizeof(junk) && junk[100] == (char)0xA5,
		 "the refused device was written to");
	close(fd);
}

int main(void)
{
	const char *args[] = { "--size", "1G", "--zone-size", "32M", NULL };
	const char *bad_zone[] = { "--zone-size", "16M", NULL };
	const char *fmt[] = { "--format", NULL };
	struct zt_daemon d;
	struct zap_put_info before, after;
	void *got;
	size_t glen;
	zap_client *c;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	put(c, "small", 100, 1, NULL);
	put(c, "big", 5 * 1048576 + 3, 2, NULL);
	put(c, "over", 10, 3, NULL);
	put(c, "over", 3000, 4, NULL);
	put(c, "big-over", 3 * 1048576, 5, NULL);
	put(c, "big-over", 20, 6, NULL);
	put(c, "gone", 10, 7, NULL);
	zt_ok(zap_del(c, "gone", 4));
	put(c, "back", 10, 8, NULL);
	zt_ok(zap_del(c, "back", 4));
	put(c, "back", 50, 9, &before);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	zt_start(&d);
	c = zt_connect(&d);
	expect(c, "small", 100, 1);
	expect(c, "big", 5 * 1048576 + 3, 2);
	expect(c, "over", 3000, 4);
	expect(c, "big-over", 20, 6);
	expect(c, "back", 50, 9);
	zt_check(zap_get(c, "gone", 4, &got, &glen) == -ENOENT, "deleted key came back");
	zt_check(zt_stat(c, "keys") == 5, "stat keys after restart");
	put(c, "next", 1, 10, &after);
	zt_check(after.seq > before.seq, "sequence went back after restart");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	/* On a real zoned device neither can be done: its geometry is its own, writes go in order.
	 */
	if (!getenv("ZT_DEVICE")) {
		zt_check(zt_start_fails(&d, bad_zone) == 3,
			 "another zone size: not refused for good");
		foreign_data(&d);
	}
	d.args[4] = fmt[0];
	zt_start(&d);
	c = zt_connect(&d);
	zt_check(zt_stat(c, "keys") == 0, "--format left keys behind");
	zap_close(c);
	zt_stop(&d);
	zt_cleanup(&d);
	return 0;
}
