/*
 * fuzz-recovery: mounting a device whose data zones hold untrusted bytes.
 *
 * The device is the file backend's image in a temporary directory: 10 zones of
 * 2 MiB (enough that garbage collection is not always due), zone 0 holding a
 * valid superblock of the store fz_uuid names (made once per process), zones
 * 1 to 5 written from the input each time, the others empty:
 *
 *   byte 0        bit i set: zone i+1 is finished (its last block, past the
 *                 zone's capacity, is written, as the backend's finish does)
 *   then chunks   zone (1 byte: 1 + z % 5), block (2 bytes LE, within the
 *                 zone's capacity), length (2 bytes LE), then that many bytes,
 *                 written from the start of that block (whole blocks: the
 *                 rest of the last one is zeros); the input may end early.
 *
 * Everything else is a hole, so a zone's write pointer is the end of its last
 * written block. The store then mounts it: store_mount must return 0 or a
 * clean error, never crash or hang, and every key the rebuilt index holds must
 * read back through the store, its chunks in order and as long as the value,
 * or fail with -EIO / -EBADMSG (a record that fails verification). A put of a
 * new key, and one overwriting a recovered key, must then succeed (or find no
 * space) and read back byte-exact.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dev.h"
#include "fuzz-util.h"
#include "index.h"
#include "log.h"
#include "pool.h"
#include "record.h"
#include "ring.h"
#include "recovery.h"
#include "store.h"
#include "super.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define ZONE_SIZE  (2 * MiB)
#define NR_ZONES   10u
#define DATA_ZONES 5u
#define FILE_HDR   4096u /* the file backend's header block, before zone 0 */
#define BLK	   4096u
#define CAP_BLOCKS (ZONE_SIZE / BLK - 1) /* the last block is the finish marker's */
#define POOL	   (4 * MiB)
#define MAX_KEYS   64
#define HANG_MS	   10000

static struct {
	struct event_base *base;
	struct event *tick;
	struct zring ring;
	struct zpool pool;
	struct store store;
	struct zdev *dev;
	struct store_budget budget; /* the requests' share of buffer memory: all of it */
	char img[300];
	int fd;	      /* the image, O_DIRECT */
	uint8_t *blk; /* aligned scratch for writes */
} R;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static void turn(void)
{
	static const struct timeval ms = { 0, 1000 };

	event_add(R.tick, &ms);
	event_base_loop(R.base, EVLOOP_ONCE);
	event_del(R.tick);
}

static void pwrite_all(const void *buf, size_t len, uint64_t off)
{
	if (pwrite(R.fd, buf, len, off) != (ssize_t)len)
		fz_die("pwrite %s at %llu: %s", R.img, (unsigned long long)off, strerror(errno));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct event_config *ecfg = event_config_new();
	struct zdev_opts dopt = { .backend = "file",
				  .size = NR_ZONES * ZONE_SIZE,
				  .zone_size = ZONE_SIZE,
				  .format = true };
	struct zerr err = { "" };
	struct zsuper sb;
	struct zdev *dev;
	int ret;

	snprintf(R.img, sizeof(R.img), "%s/zones.img", fz_tmpdir());
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK);
	R.base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (!R.base || event_base_priority_init(R.base, 2))
		fz_die("event_base");
	R.tick = event_new(R.base, -1, 0, on_tick, NULL);
	/* The image with its header; zone 0: our superblock, and finished. */
	dopt.path = R.img;
	if (zdev_open(&dopt, &dev, &err))
		fz_die("zdev_open: %s", err.msg);
	memset(&sb, 0, sizeof(sb));
	memcpy(sb.uuid, fz_uuid, sizeof(sb.uuid));
	sb.version = ZSUPER_VERSION;
	sb.nr_zones = dev->info.nr_zones;
	sb.zone_size = dev->info.zone_size;
	sb.block = dev->info.block;
	sb.rec_max = 64 * KiB; /* without it no superblock checks out: nothing would mount */
	sb.ctime = 1700000000;
	if (sb.nr_zones != NR_ZONES || sb.block != BLK)
		fz_die("unexpected geometry: %u zones, %u-byte blocks", sb.nr_zones, sb.block);
	zdev_close(dev);
	R.fd = open(R.img, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (R.fd < 0 || posix_memalign((void **)&R.blk, BLK, 65536 + 2 * BLK))
		fz_die("open %s: %s", R.img, strerror(errno));
	memset(R.blk, 0, BLK);
	zsuper_encode(&sb, R.blk);
	pwrite_all(R.blk, BLK, FILE_HDR);
	memset(R.blk, 0, BLK);
	memcpy(R.blk, "ZAPFFIN1", 8);
	pwrite_all(R.blk, BLK, FILE_HDR + ZONE_SIZE - BLK);
	ret = zring_init(&R.ring, R.base, 256, 0);
	if (ret)
		fz_die("zring_init: %s", strerror(-ret));
	if (zpool_init(&R.pool, POOL, 1 * MiB))
		fz_die("zpool_init");
	zring_register_buffer(&R.ring, R.pool.base, R.pool.size);
	store_budget_init(&R.budget, POOL);
	return 0;
}

/* Zones 1.. as the input says. */
static void write_zones(const uint8_t *data, size_t size)
{
	uint8_t flags = size ? data[0] : 0;
	size_t pos = 1;

	if (fallocate(R.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FILE_HDR + ZONE_SIZE,
		      (NR_ZONES - 1) * ZONE_SIZE) < 0)
		fz_die("punching %s: %s", R.img, strerror(errno));
	while (pos + 5 <= size) {
		uint32_t zone = 1 + data[pos] % DATA_ZONES;
		uint32_t blk = (data[pos + 1] | data[pos + 2] << 8) % CAP_BLOCKS;
		size_t len = data[pos + 3] | data[pos + 4] << 8;
		size_t room = (size_t)(CAP_BLOCKS - blk) * BLK;

		pos += 5;
		len = MIN(len, size - pos);
		len = MIN(len, room);
		if (!len)
			continue;
		memset(R.blk + ALIGN_UP(len, BLK) - BLK, 0, BLK);
		memcpy(R.blk, data + pos, len);
		pwrite_all(R.blk, ALIGN_UP(len, BLK), FILE_HDR + zone * ZONE_SIZE + blk * BLK);
		pos += len;
	}
	memset(R.blk, 0, BLK);
	memcpy(R.blk, "ZAPFFIN1", 8);
	for (uint32_t i = 0; i < DATA_ZONES; i++) {
		if (flags >> i & 1)
			pwrite_all(R.blk, BLK, FILE_HDR + (i + 2) * ZONE_SIZE - BLK);
	}
}

/* --- reading every key back --- */

struct key {
	uint8_t k[1024];
	size_t len;
};

struct keys {
	struct key k[MAX_KEYS];
	unsigned n;
	uint8_t dead[1024]; /* a key whose entry is a tombstone */
	size_t dead_len;
};

static int take_key(const void *key, size_t klen, const struct zent *e, void *arg)
{
	struct keys *ks = arg;

	if (klen == 0 || klen > sizeof(ks->k[0].k))
		fz_die("the index holds a key of %zu bytes", klen);
	if (!e->nchunks) {
		memcpy(ks->dead, key, klen);
		ks->dead_len = klen;
		return 0;
	}
	memcpy(ks->k[ks->n].k, key, klen);
	ks->k[ks->n].len = klen;
	return ++ks->n == MAX_KEYS;
}

struct get {
	struct zget *g;
	bool done;
	int err;
	uint64_t got;
	const uint8_t *expect; /* the value it must be, or NULL */
	uint64_t vlen;	       /* its length, or (expect NULL) the first chunk's word */
};

static void got_chunk(void *arg, int err, const struct zget_chunk *c)
{
	struct get *gt = arg;

	if (err) {
		gt->err = err;
		gt->done = true;
		return;
	}
	if (!gt->expect && !c->voff && !gt->got)
		gt->vlen = c->vlen;
	if (gt->expect && c->vlen != gt->vlen)
		fz_die("the put acknowledged after recovery reads back as another version "
		       "(a value of %llu bytes, not %llu)",
		       (unsigned long long)c->vlen, (unsigned long long)gt->vlen);
	if (c->vlen != gt->vlen || c->voff != gt->got || c->dlen > c->vlen - c->voff)
		fz_die("get: chunk at %llu of %zu bytes, value %llu bytes, %llu received",
		       (unsigned long long)c->voff, c->dlen, (unsigned long long)c->vlen,
		       (unsigned long long)gt->got);
	if (gt->expect && memcmp(c->data, gt->expect + c->voff, c->dlen))
		fz_die("get: the value read back differs from the one put");
	gt->got += c->dlen;
	if (c->last) {
		if (gt->got != gt->vlen)
			fz_die("get: %llu bytes of a %llu-byte value", (unsigned long long)gt->got,
			       (unsigned long long)gt->vlen);
		gt->done = true;
	}
	store_get_next(gt->g);
}

/* 0, or the error the get ended with; expect (vlen bytes), if not NULL, is what it must read. */
static int get_back(const void *key, size_t klen, uint64_t vlen, const uint8_t *expect)
{
	struct get gt = { .vlen = vlen, .expect = expect };
	uint64_t until = fz_now_ms() + HANG_MS;
	int ret = store_get(&R.store, NULL, key, klen, &R.budget, got_chunk, &gt, &gt.g);

	if (ret)
		return ret;
	while (!gt.done) {
		if (fz_now_ms() > until)
			fz_die("hang: a get of a %zu-byte key (value of %llu bytes) has not "
			       "completed after %d ms",
			       klen, (unsigned long long)gt.vlen, HANG_MS);
		turn();
	}
	return gt.err;
}

struct put {
	bool done;
	int err;
};

static void put_done(void *arg, const struct zput_result *res)
{
	struct put *pt = arg;

	pt->err = res->err;
	pt->done = true;
}

/*
 * Puts a value under key (a new one, or one recovery indexed): it must be
 * acknowledged (or refused for want of room) and then read back byte-exact,
 * whatever the media held: a put acknowledged is the newest version.
 */
static void put_and_get(const void *key, size_t klen)
{
	uint8_t val[3000];
	struct put pt = { false, 0 };
	struct zput *p;
	uint64_t until = fz_now_ms() + HANG_MS;
	size_t room, given = 0;
	int ret;

	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(i * 7 + klen);
	ret = store_put_begin(&R.store, key, klen, sizeof(val), &R.budget, put_done, &pt, &p);
	if (ret)
		fz_die("store_put_begin: %s", strerror(-ret));
	while (!store_put_filled(p)) {
		uint8_t *buf = store_put_buf(p, &room, NULL);

		if (!buf) {
			if (store_put_filled(p))
				break;
			fz_die("no buffer for a 3000-byte put in an idle store");
		}
		room = MIN(room, sizeof(val) - given);
		memcpy(buf, val + given, room);
		given += room;
		store_put_fill(p, room);
	}
	while (!pt.done) {
		if (fz_now_ms() > until)
			fz_die("hang: a put after recovery has not completed after %d ms", HANG_MS);
		turn();
	}
	if (pt.err == -ENOSPC || pt.err == -EIO)
		return; /* no room, or the zone it went to failed: refused, not lost */
	if (pt.err)
		fz_die("a put after recovery failed: %s", strerror(-pt.err));
	ret = get_back(key, klen, sizeof(val), val);
	if (ret)
		fz_die("a put after recovery was acknowledged but reads back as: %s",
		       strerror(-ret));
}

static void settle(void)
{
	uint64_t until = fz_now_ms() + HANG_MS;

	store_stop(&R.store);
	while (!store_idle(&R.store) || R.ring.inflight || R.ring.backlog || R.ring.queued) {
		if (fz_now_ms() > until)
			fz_die("hang: the store is still busy after %d ms", HANG_MS);
		turn();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_cfg cfg = { .max_value = 64 * MiB, .sync = true, .open_zones = 2 };
	struct zdev_opts dopt = { .path = R.img, .backend = "file" };
	struct zerr err = { "" };
	static struct keys ks;
	int ret;

	write_zones(data, size);
	if (zdev_open(&dopt, &R.dev, &err))
		fz_die("zdev_open: %s", err.msg);
	zdev_attach(R.dev, &R.ring, &R.pool);
	if (store_init(&R.store, R.dev, &R.ring, &R.pool, &cfg))
		fz_die("store_init");
	ret = store_mount(&R.store, false, &err);
	if (ret > 0 || (ret < 0 && !err.msg[0]))
		fz_die("store_mount returned %d without a reason", ret);
	if (ret == 0) {
		ks.n = 0;
		ks.dead_len = 0;
		zidx_foreach(R.store.idx, true, take_key, &ks);
		for (unsigned i = 0; i < ks.n; i++) {
			ret = get_back(ks.k[i].k, ks.k[i].len, 0, NULL);
			if (ret && ret != -EIO && ret != -EBADMSG)
				fz_die("a get of a recovered key failed: %s", strerror(-ret));
		}
		put_and_get("fuzz-recovery-new-key", 21);
		/* An overwrite of a recovered key (tombstones included). */
		if (ks.n)
			put_and_get(ks.k[0].k, ks.k[0].len);
		else if (ks.dead_len)
			put_and_get(ks.dead, ks.dead_len);
	}
	settle();
	store_done(&R.store);
	zdev_close(R.dev);
	R.dev = NULL;
	return 0;
}
