/*
 * Any zoned block device (/dev/nvme0n1, a host-managed SMR disk, a zoned
 * null_blk) through libzbd and the one io_uring.
 *
 * Linux gives user space no zone append on a block device: a write must land
 * exactly at the zone's write pointer. So this backend keeps one write in
 * flight per zone and coalesces the appends queued behind it into the next
 * write: one IORING_OP_WRITEV of their buffers (WRITE_FIXED when a single one
 * comes from the registered pool), at most max_sectors_kb (and one page per
 * segment) long, so the block layer sends it as one request. Each append still
 * completes with its own address: the write pointer at submission plus its
 * offset in the batch. Other zones' writes go on in parallel.
 *
 * O_DIRECT throughout; flush is fdatasync of the device (a cache flush). Zone
 * reports, reset and finish go through libzbd (synchronous ioctls); reset and
 * finish wait in the zone's queue behind its writes, and their completion
 * comes back through the ring like any other, never from inside the caller.
 *
 * After a failed write the zone's write pointer is read back from the device,
 * so the next write goes where the device expects it. A write that fails
 * fails every append of its batch with the write's error (-EIO when short).
 * Read-only and offline zones are reported as such and refuse appends with
 * -EROFS, as do conventional zones (no write pointer), which the store leaves
 * be: the superblock goes in the first zone with a write pointer.
 */
#include <errno.h>
#include <fcntl.h>
#include <libzbd/zbd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dev.h"

#define BATCH_MAX 64u /* appends coalesced into one write */

struct batch {
	struct zring_op op;
	struct zbd_dev *z;
	uint32_t zone;
	uint32_t n;
	uint64_t off; /* device byte offset: the write pointer */
	uint64_t bytes;
	struct zdev_io *ios; /* linked through op.next */
	struct iovec iov[BATCH_MAX];
};

struct zstate {
	uint64_t wp;	   /* bytes written, as of the last completed write */
	uint64_t cap;	   /* writable bytes */
	uint64_t reserved; /* queued or in flight beyond wp */
	enum zdev_cond cond;
	bool busy; /* a write is in flight, or its appends are completing */
	struct zdev_io *queue, **tail;
};

struct zbd_dev {
	struct zdev dev;
	int fd;
	int claim_fd;	 /* the exclusive open that makes the device ours */
	uint32_t max_io; /* bytes of one write */
	struct zstate *zs;
	struct zbd_zone *rep;
};

static struct zbd_dev *zdev_to(struct zdev *d)
{
	return container_of(d, struct zbd_dev, dev);
}

/* Reads one zone's write pointer and condition back from the device. */
static void resync(struct zbd_dev *z, uint32_t zone)
{
	struct zbd_zone r;
	struct zdev_zone dz;
	unsigned int nr = 1;
	uint64_t zsz = z->dev.info.zone_size;

	if (zbd_report_zones(z->fd, (off_t)zone * zsz, zsz, ZBD_RO_ALL, &r, &nr) < 0 || nr != 1)
		return;
	zdev_zbd_zone(&dz, &r);
	z->zs[zone].wp = dz.wp;
	z->zs[zone].cond = dz.cond;
}

static void batch_prep(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct batch *b = container_of(op, struct batch, op);

	if (b->n == 1 && zdev_fixed(&b->z->dev, b->iov[0].iov_base))
		io_uring_prep_write_fixed(sqe, b->z->fd, b->iov[0].iov_base, b->iov[0].iov_len,
					  b->off, 0);
	else if (b->n == 1)
		io_uring_prep_write(sqe, b->z->fd, b->iov[0].iov_base, b->iov[0].iov_len, b->off);
	else
		io_uring_prep_writev(sqe, b->z->fd, b->iov, b->n, b->off);
}

static void run_queue(struct zbd_dev *z, uint32_t zone);

static void batch_complete(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	struct batch *b = container_of(op, struct batch, op);
	struct zbd_dev *z = b->z;
	struct zstate *s = &z->zs[b->zone];
	int err = cqe->res < 0 ? cqe->res : (uint64_t)cqe->res == b->bytes ? 0 : -EIO;
	struct zdev_io *io = b->ios;
	uint32_t zone = b->zone;

	s->reserved -= b->bytes;
	if (!err) {
		s->wp += b->bytes;
		if (s->wp >= s->cap)
			s->cond = ZDEV_FULL;
	} else {
		resync(z, zone);
	}
	free(b);
	/* Appends from these callbacks queue behind: the zone is still busy. */
	while (io) {
		struct zdev_io *next = (struct zdev_io *)io->op.next;

		io->res = err ? err : (int)io->len;
		io->done(io);
		io = next;
	}
	s->busy = false;
	run_queue(z, zone);
}

/* Zone management, in the zone's queue order: synchronous, completed through the ring. */
static void zone_op(struct zbd_dev *z, struct zdev_io *io)
{
	struct zstate *s = &z->zs[io->zone];
	uint64_t zsz = z->dev.info.zone_size;
	int ret;

	if (io->kind == ZDEV_IO_RESET)
		ret = zbd_reset_zones(z->fd, (off_t)io->zone * zsz, zsz);
	else
		ret = zbd_finish_zones(z->fd, (off_t)io->zone * zsz, zsz);
	if (ret < 0) {
		ret = -errno ? -errno : -EIO;
		resync(z, io->zone);
	} else if (io->kind == ZDEV_IO_RESET) {
		s->wp = 0;
		s->cond = ZDEV_EMPTY;
	} else {
		s->wp = s->cap;
		s->cond = ZDEV_FULL;
	}
	zdev_fail(&z->dev, io, ret);
}

static struct zdev_io *pop(struct zstate *s)
{
	struct zdev_io *io = s->queue;

	s->queue = (struct zdev_io *)io->op.next;
	if (!s->queue)
		s->tail = &s->queue;
	return io;
}

/* Why the zone cannot take len more bytes at its write pointer, or 0. */
static int refuses(const struct zstate *s, uint32_t len)
{
	if (s->cond == ZDEV_READONLY || s->cond == ZDEV_OFFLINE || s->cond == ZDEV_CONV)
		return -EROFS;
	if (s->cond == ZDEV_FULL || s->wp + len > s->cap)
		return -ENOSPC;
	return 0;
}

/*
 * The zone's next zone operations, and the appends that can no longer go:
 * after a failed write the device may say the zone is read-only or full
 * (resync), and a write at its write pointer would then land in the next zone.
 */
static void drain_refused(struct zbd_dev *z, struct zstate *s)
{
	int err;

	while (!s->busy && s->queue) {
		struct zdev_io *io = s->queue;

		if (io->kind != ZDEV_IO_APPEND) {
			zone_op(z, pop(s));
			continue;
		}
		err = refuses(s, io->len);
		if (!err)
			return;
		pop(s);
		s->reserved -= io->len;
		zdev_fail(&z->dev, io, err);
	}
}

/* Starts the zone's next write (or zone operation) if none is in flight. */
static void run_queue(struct zbd_dev *z, uint32_t zone)
{
	struct zstate *s = &z->zs[zone];
	struct zdev_io **last;
	struct batch *b;

	drain_refused(z, s);
	if (s->busy || !s->queue)
		return;
	b = calloc(1, sizeof(*b));
	if (!b) {
		/* Nothing in flight to retry from: fail the head so the queue moves. */
		struct zdev_io *io = pop(s);

		s->reserved -= io->len;
		zdev_fail(&z->dev, io, -ENOMEM);
		return;
	}
	b->z = z;
	b->zone = zone;
	b->off = (uint64_t)zone * z->dev.info.zone_size + s->wp;
	last = &b->ios;
	while (s->queue && s->queue->kind == ZDEV_IO_APPEND && b->n < BATCH_MAX &&
	       (b->n == 0 || b->bytes + s->queue->len <= z->max_io) &&
	       !refuses(s, b->bytes + s->queue->len)) {
		struct zdev_io *io = pop(s);

		/* Where it lands: the write pointer now, plus what goes before it in the write. */
		io->addr = b->off + b->bytes;
		b->iov[b->n].iov_base = io->buf;
		b->iov[b->n].iov_len = io->len;
		b->n++;
		b->bytes += io->len;
		io->op.next = NULL;
		*last = io;
		last = (struct zdev_io **)&io->op.next;
	}
	s->busy = true;
	b->op.prep = batch_prep;
	b->op.complete = batch_complete;
	zring_queue(z->dev.ring, &b->op);
}

static void enqueue(struct zbd_dev *z, struct zdev_io *io)
{
	struct zstate *s = &z->zs[io->zone];

	io->op.next = NULL;
	*s->tail = io;
	s->tail = (struct zdev_io **)&io->op.next;
	run_queue(z, io->zone);
}

static uint32_t open_zones(const struct zbd_dev *z)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < z->dev.info.nr_zones; i++)
		n += z->zs[i].cond == ZDEV_OPEN;
	return n;
}

static void zbd_append(struct zdev *d, uint32_t zone, void *buf, uint32_t len, struct zdev_io *io)
{
	struct zbd_dev *z = zdev_to(d);
	struct zstate *s;
	int ret;

	if (zdev_bad_append(d, zone, len)) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	s = &z->zs[zone];
	ret = refuses(s, s->reserved + len);
	if (ret) {
		zdev_fail(d, io, ret);
		return;
	}
	if (s->cond == ZDEV_EMPTY && zdev_over_limit(&d->info, open_zones(z))) {
		/* As NVMe's Too Many Active Zones: the host must finish a zone first. */
		zdev_fail(d, io, -EBUSY);
		return;
	}
	io->dev = d;
	io->kind = ZDEV_IO_APPEND;
	io->zone = zone;
	io->buf = buf;
	io->len = len;
	s->reserved += len;
	s->cond = ZDEV_OPEN;
	enqueue(z, io);
}

static void rw_complete(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);

	io->res = cqe->res;
	if (io->kind == ZDEV_IO_READ && cqe->res >= 0)
		io->res = (uint32_t)cqe->res == io->len ? cqe->res : -EIO;
	io->done(io);
}

static void read_prep(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);
	int fd = zdev_to(io->dev)->fd;

	if (zdev_fixed(io->dev, io->buf))
		io_uring_prep_read_fixed(sqe, fd, io->buf, io->len, io->addr, 0);
	else
		io_uring_prep_read(sqe, fd, io->buf, io->len, io->addr);
}

static void zbd_read(struct zdev *d, uint64_t addr, void *buf, uint32_t len, struct zdev_io *io)
{
	/* The block layer splits a large read itself. */
	if (zdev_bad_read(d, addr, len)) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	io->dev = d;
	io->kind = ZDEV_IO_READ;
	io->addr = addr;
	io->buf = buf;
	io->len = len;
	io->op.prep = read_prep;
	io->op.complete = rw_complete;
	zring_queue(d->ring, &io->op);
}

static void flush_prep(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);

	io_uring_prep_fsync(sqe, zdev_to(io->dev)->fd, IORING_FSYNC_DATASYNC);
}

static void zbd_flush(struct zdev *d, struct zdev_io *io)
{
	io->dev = d;
	io->kind = ZDEV_IO_FLUSH;
	io->op.prep = flush_prep;
	io->op.complete = rw_complete;
	zring_queue(d->ring, &io->op);
}

static void zbd_zone_cmd(struct zdev *d, uint32_t zone, struct zdev_io *io, int kind)
{
	if (zone >= d->info.nr_zones) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	io->dev = d;
	io->kind = kind;
	io->zone = zone;
	enqueue(zdev_to(d), io);
}

static void zbd_reset(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	zbd_zone_cmd(d, zone, io, ZDEV_IO_RESET);
}

static void zbd_finish(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	zbd_zone_cmd(d, zone, io, ZDEV_IO_FINISH);
}

static int zbd_report(struct zdev *d, struct zdev_zone *zones)
{
	struct zbd_dev *z = zdev_to(d);
	int ret = zdev_zbd_report(z->fd, &d->info, z->rep, zones);

	if (ret)
		return ret;
	for (uint32_t i = 0; i < d->info.nr_zones; i++) {
		struct zstate *s = &z->zs[i];

		if (!s->busy && !s->queue) {
			s->wp = zones[i].wp;
			s->cap = zones[i].cap;
			s->cond = zones[i].cond;
		}
	}
	return 0;
}

static void zbd_close_dev(struct zdev *d)
{
	struct zbd_dev *z = zdev_to(d);

	if (z->fd >= 0)
		zbd_close(z->fd);
	if (z->claim_fd >= 0)
		close(z->claim_fd);
	free(z->zs);
	free(z->rep);
	free(z);
}

static const struct zdev_ops zbd_ops = {
	.append = zbd_append,
	.read = zbd_read,
	.flush = zbd_flush,
	.reset = zbd_reset,
	.finish = zbd_finish,
	.report = zbd_report,
	.close = zbd_close_dev,
};

int zdev_zbd_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err)
{
	struct zbd_dev *z = calloc(1, sizeof(*z));
	char name[NAME_MAX + 1];
	struct zdev_zone *zones = NULL;
	struct zdev_info *info;
	struct zbd_info zi;
	uint64_t kb = 0, segs = 0;
	uint32_t meta;
	int ret;

	if (!z)
		return -ENOMEM;
	z->fd = z->claim_fd = -1;
	info = &z->dev.info;
	z->dev.ops = &zbd_ops;
	info->backend = "zbd";
	ret = o->shared ? 0 : zdev_claim(o->path, &z->claim_fd, err);
	if (ret)
		goto fail;
	errno = 0;
	z->fd = zbd_open(o->path, (o->readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC, &zi);
	if (z->fd < 0) {
		/* libzbd returns -1 with errno set (its header speaks of -errno): take both. */
		ret = z->fd == -1 && errno ? -errno : z->fd;
		z->fd = -1;
		if (ret == -ENXIO || ret == -ENOTBLK || ret == -ENOTTY || ret == -EINVAL)
			ret = zerr_set(err, -ENODEV, "%s is not a zoned block device", o->path);
		else
			ret = zerr_set(err, ret, "cannot open %s: %s", o->path, strerror(-ret));
		goto fail;
	}
	if (!zdev_block_ok(zi.lblock_size) || zi.zone_size % zi.lblock_size || zi.nr_zones < 4) {
		ret = zerr_set(err, -EINVAL,
			       "%s: %u zones of %llu bytes, blocks of %u: zappend needs 4 or "
			       "more zones, in whole blocks, and blocks of a power of two from %u "
			       "to %u",
			       o->path, zi.nr_zones, zi.zone_size, zi.lblock_size, ZDEV_BLOCK_MIN,
			       ZDEV_BLOCK_MAX);
		goto fail;
	}
	info->block = info->lblock = zi.lblock_size;
	info->zone_size = zi.zone_size;
	info->nr_zones = zi.nr_zones;
	zdev_zbd_limits(info, &zi, o);
	/*
	 * One request a write: within max_sectors_kb, a segment a page. Pages are
	 * no smaller than a block, and buffers are block-aligned.
	 */
	z->max_io = 1 * MiB;
	if (zdev_block_name(o->path, name, sizeof(name)) == 0) {
		if (zdev_sysfs_u64(name, "queue/max_sectors_kb", &kb) == 0 && kb)
			z->max_io = MIN(z->max_io, kb * KiB);
		if (zdev_sysfs_u64(name, "queue/max_segments", &segs) == 0 && segs)
			z->max_io = MIN(z->max_io, segs * ZDEV_BLOCK_MAX);
	}
	z->max_io = MAX(z->max_io / ZDEV_BLOCK_MAX * ZDEV_BLOCK_MAX, ZDEV_BLOCK_MAX);
	info->max_append = z->max_io;
	ret = zdev_check_geometry(o, info, err);
	if (ret)
		goto fail;
	z->zs = calloc(info->nr_zones, sizeof(*z->zs));
	z->rep = calloc(info->nr_zones, sizeof(*z->rep));
	zones = calloc(info->nr_zones, sizeof(*zones));
	if (!z->zs || !z->rep || !zones) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < info->nr_zones; i++)
		z->zs[i].tail = &z->zs[i].queue;
	ret = zbd_report(&z->dev, zones);
	if (ret) {
		ret = zerr_set(err, ret, "%s: cannot report zones: %s", o->path, strerror(-ret));
		goto fail;
	}
	meta = zdev_meta_zone(zones, info->nr_zones);
	if (meta == info->nr_zones) {
		ret = zerr_set(err, -EROFS, "%s: no zone with a write pointer (all conventional)",
			       o->path);
		goto fail;
	}
	if (zones[meta].cond == ZDEV_OFFLINE || zones[meta].cond == ZDEV_READONLY) {
		ret = zerr_set(err, -EROFS,
			       "%s: zone %u, the first with a write pointer, where the superblock "
			       "goes, is offline or read-only",
			       o->path, meta);
		goto fail;
	}
	free(zones);
	*out = &z->dev;
	return 0;
fail:
	free(zones);
	zbd_close_dev(&z->dev);
	return ret;
}
