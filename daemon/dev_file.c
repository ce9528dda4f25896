/*
 * The default backend: a zoned device emulated in a regular file.
 *
 * Layout: a header of ZDEV_FILE_HDR bytes (magic, geometry, CRC), then the
 * zones, whatever direct-I/O alignment the file system beneath takes
 * (info.lblock): an image's layout does not depend on where it lies.
 *
 * Zone append is emulated faithfully: the backend assigns each append its
 * offset from an in-memory write pointer at submission and returns it on
 * completion, so many appends to one zone are in flight together.
 *
 * One daemon owns an image: an exclusive flock(2) on it, taken before it is
 * created or formatted, so that a second daemon can neither write beside the
 * first nor wipe its store.
 *
 * Nothing about zone state is kept in the file besides the data itself, so a
 * crash cannot leave it stale. At open the write pointer of each zone is the
 * end of the last allocated block in it (SEEK_DATA/SEEK_HOLE); reset punches
 * the zone out; finish writes a marker into the zone's last block, which lies
 * beyond the zone's capacity, so "allocated up to the zone's end" means full.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "crc32c.h"
#include "dev.h"

#define HDR_MAGIC   "ZAPFDEV1"
#define HDR_VERSION 1u

struct file_dev {
	struct zdev dev;
	int fd;
	int lock_fd;  /* holds the flock: the image is ours */
	bool created; /* the image did not exist: a start that fails leaves none */
	bool locked;  /* the flock is ours: only then is the image ours to remove */
	struct zdev_zone *zones;
	void *marker;
};

static struct file_dev *fdev(struct zdev *d)
{
	return container_of(d, struct file_dev, dev);
}

static void encode_header(uint8_t *h, uint64_t zone_size, uint32_t nr_zones)
{
	memset(h, 0, ZDEV_FILE_HDR);
	memcpy(h, HDR_MAGIC, 8);
	put_le32(h + 8, HDR_VERSION);
	put_le32(h + 12, nr_zones);
	put_le64(h + 16, zone_size);
	put_le32(h + 24, crc32c(0, h, 24));
}

static int decode_header(const uint8_t *h, uint64_t *zone_size, uint32_t *nr_zones)
{
	if (memcmp(h, HDR_MAGIC, 8) || get_le32(h + 24) != crc32c(0, h, 24))
		return -EBADMSG;
	if (get_le32(h + 8) != HDR_VERSION)
		return -EPROTONOSUPPORT;
	*nr_zones = get_le32(h + 12);
	*zone_size = get_le64(h + 16);
	return 0;
}

static int make_parent(const char *path)
{
	char *dir = strdup(path), *slash;
	int ret = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			ret = -errno;
	}
	free(dir);
	return ret;
}

static int create_image(const struct zdev_opts *o, struct zerr *err)
{
	uint64_t size = o->size ? o->size : ZDEV_FILE_DEFAULT_SIZE;
	uint64_t zs = o->zone_size ? o->zone_size : ZDEV_FILE_DEFAULT_ZONE_SIZE;
	uint8_t h[ZDEV_FILE_HDR];
	uint64_t nr;
	int fd, ret;
	char a[32], b[32];

	if (zs < 2 * MiB || zs % MiB)
		return zerr_set(err, -EINVAL, "zone size %s: must be a multiple of 1M, at least 2M",
				format_size(zs, a, sizeof(a)));
	nr = size / zs;
	if (nr < 4 || nr > UINT32_MAX)
		return zerr_set(err, -EINVAL,
				"size %s with zone size %s gives %llu zones; need 4 or more",
				format_size(size, a, sizeof(a)), format_size(zs, b, sizeof(b)),
				(unsigned long long)nr);
	fd = open(o->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return zerr_set(err, -errno, "cannot create %s: %s", o->path, strerror(errno));
	if (ftruncate(fd, 0) < 0) {
		ret = -errno;
		close(fd);
		return zerr_set(err, ret, "cannot create %s: %s", o->path, strerror(-ret));
	}
	encode_header(h, zs, nr);
	if (ftruncate(fd, ZDEV_FILE_HDR + nr * zs) < 0 ||
	    pwrite(fd, h, ZDEV_FILE_HDR, 0) != ZDEV_FILE_HDR || fsync(fd) < 0) {
		ret = -errno;
		/* Empty, it is created again at the next start. */
		if (ftruncate(fd, 0) < 0)
			ret = -errno;
		close(fd);
		return zerr_set(err, ret, "cannot create %s: %s", o->path, strerror(-ret));
	}
	close(fd);
	return 0;
}

/*
 * The image, created empty if absent, locked for this daemon alone. Taken
 * first: creating and formatting come after it.
 */
static int claim(struct file_dev *f, const struct zdev_opts *o, struct zerr *err)
{
	int ret = o->readonly ? 0 : make_parent(o->path);

	if (ret)
		return zerr_set(err, ret, "cannot create the directory of %s: %s", o->path,
				strerror(-ret));
	f->created = !o->readonly && access(o->path, F_OK) < 0;
	f->lock_fd = open(o->path, O_RDONLY | (o->readonly ? 0 : O_CREAT) | O_CLOEXEC, 0640);
	if (f->lock_fd < 0)
		return zerr_set(err, -errno, "cannot open %s: %s", o->path, strerror(errno));
	/* A reader shares the lock with other readers, never with a daemon, unless told. */
	if (!o->shared && flock(f->lock_fd, (o->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		ret = -errno;
		if (ret == -EWOULDBLOCK)
			return zerr_set(
			    err, -EBUSY,
			    "%s is in use by another zappendd (it holds the lock on it)", o->path);
		return zerr_set(err, ret, "cannot lock %s: %s", o->path, strerror(-ret));
	}
	f->locked = true;
	return 0;
}

static bool needs_create(const struct zdev_opts *o)
{
	struct stat st;

	if (stat(o->path, &st) < 0)
		return errno == ENOENT;
	return st.st_size == 0;
}

/* End of the last allocated byte in [start, end), or start when none is. */
static uint64_t last_data(int fd, uint64_t start, uint64_t end)
{
	uint64_t last = start;
	off_t off = start;

	for (;;) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;

		if (data < 0 || (uint64_t)data >= end)
			return last;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return end;
		last = MIN((uint64_t)hole, end);
		off = hole;
	}
}

static void load_zones(struct file_dev *f)
{
	uint64_t zs = f->dev.info.zone_size;

	for (uint32_t i = 0; i < f->dev.info.nr_zones; i++) {
		struct zdev_zone *z = &f->zones[i];
		uint64_t at = ZDEV_FILE_HDR + i * zs;
		uint64_t end = last_data(f->fd, at, at + zs) - at;

		z->start = i * zs;
		z->cap = zs - ZDEV_FILE_HDR;
		if (end > z->cap) {
			z->wp = z->cap;
			z->cond = ZDEV_FULL;
		} else {
			/* The file system allocates whole blocks: up to one any store's block
			 * divides. */
			z->wp = ALIGN_UP(end, ZDEV_BLOCK_MAX);
			z->cond = z->wp ? ZDEV_OPEN : ZDEV_EMPTY;
		}
	}
}

/*
 * The file system's direct-I/O alignment (STATX_DIOALIGN, Linux 6.1); where
 * the kernel does not say, ZDEV_FILE_HDR, which every image has always used.
 */
static uint32_t dio_align(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) ||
	    !(stx.stx_mask & STATX_DIOALIGN) || !stx.stx_dio_offset_align)
		return ZDEV_FILE_HDR;
	return MAX(stx.stx_dio_offset_align, ZDEV_BLOCK_MIN);
}

static int open_image(struct file_dev *f, const struct zdev_opts *o, struct zerr *err)
{
	struct stat st;
	uint8_t *h = f->marker;
	uint64_t zs;
	uint32_t nr;
	int ret;

	f->fd = open(o->path, (o->readonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
	if (f->fd < 0) {
		if (errno == EINVAL)
			return zerr_set(err, -EINVAL,
					"%s: the file system does not support O_DIRECT", o->path);
		return zerr_set(err, -errno, "cannot open %s: %s", o->path, strerror(errno));
	}
	f->dev.info.lblock = dio_align(f->fd);
	if (!zdev_block_ok(f->dev.info.lblock))
		return zerr_set(err, -EINVAL,
				"%s: the file system aligns direct I/O to %u bytes; the emulated "
				"device needs an alignment that divides %u",
				o->path, f->dev.info.lblock, ZDEV_BLOCK_MAX);
	if (fstat(f->fd, &st) < 0)
		return zerr_set(err, -errno, "%s: %s", o->path, strerror(errno));
	/* Too short for a header: not an image (one being created is never this short). */
	if (st.st_size < ZDEV_FILE_HDR)
		return zerr_set(err, -EBADMSG,
				"%s is not an emulated zoned device (%lld bytes, no header); "
				"refusing to use it (--format recreates it)",
				o->path, (long long)st.st_size);
	if (pread(f->fd, h, ZDEV_FILE_HDR, 0) != ZDEV_FILE_HDR)
		return zerr_set(err, -EIO, "%s: cannot read the device header", o->path);
	f->dev.info.block = MAX(f->dev.info.lblock, MIN((uint32_t)st.st_blksize, ZDEV_FILE_HDR));
	if (!zdev_block_ok(f->dev.info.block))
		f->dev.info.block = ZDEV_FILE_HDR;
	ret = decode_header(h, &zs, &nr);
	if (ret == -EPROTONOSUPPORT)
		return zerr_set(err, ret, "%s: emulated device of a newer version", o->path);
	if (ret)
		return zerr_set(err, ret,
				"%s is not an emulated zoned device (no header); "
				"refusing to use it (--format recreates it)",
				o->path);
	if (zs < 2 * MiB || zs % MiB || nr < 4)
		return zerr_set(err, -EBADMSG, "%s: impossible geometry in its header", o->path);
	if ((uint64_t)st.st_size < ZDEV_FILE_HDR + nr * zs)
		return zerr_set(err, -EBADMSG, "%s is truncated: %llu bytes, its zones need %llu",
				o->path, (unsigned long long)st.st_size,
				(unsigned long long)(ZDEV_FILE_HDR + nr * zs));
	f->dev.info.zone_size = zs;
	f->dev.info.nr_zones = nr;
	return zdev_check_geometry(o, &f->dev.info, err);
}

static void file_complete(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);

	io->res = cqe->res;
	if ((io->kind == ZDEV_IO_APPEND || io->kind == ZDEV_IO_READ ||
	     io->kind == ZDEV_IO_FINISH) &&
	    cqe->res >= 0 && (uint32_t)cqe->res != io->len)
		io->res = -EIO;
	/* A sparse image's file system filling up: an O_DIRECT write fails or falls short. */
	if (io->kind == ZDEV_IO_APPEND &&
	    (cqe->res == -ENOSPC || cqe->res == -EDQUOT || (cqe->res >= 0 && io->res == -EIO)))
		io->res = -EDQUOT;
	if (io->res >= 0 && io->kind == ZDEV_IO_FINISH)
		io->res = 0;
	io->done(io);
}

static void prep_rw(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);
	int fd = fdev(io->dev)->fd;
	bool fixed = zdev_fixed(io->dev, io->buf);

	if (io->kind == ZDEV_IO_READ) {
		if (fixed)
			io_uring_prep_read_fixed(sqe, fd, io->buf, io->len, io->off, 0);
		else
			io_uring_prep_read(sqe, fd, io->buf, io->len, io->off);
	} else if (fixed) {
		io_uring_prep_write_fixed(sqe, fd, io->buf, io->len, io->off, 0);
	} else {
		io_uring_prep_write(sqe, fd, io->buf, io->len, io->off);
	}
}

static void prep_flush(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);

	io_uring_prep_fsync(sqe, fdev(io->dev)->fd, IORING_FSYNC_DATASYNC);
}

static void prep_punch(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);

	io_uring_prep_fallocate(sqe, fdev(io->dev)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				io->off, io->dev->info.zone_size);
}

static void submit(struct zdev *d, struct zdev_io *io, int kind,
		   void (*prep)(struct zring_op *, struct io_uring_sqe *))
{
	io->dev = d;
	io->kind = kind;
	io->op.prep = prep;
	io->op.complete = file_complete;
	zring_queue(d->ring, &io->op);
}

static uint32_t open_zones(const struct file_dev *f)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < f->dev.info.nr_zones; i++)
		n += f->zones[i].cond == ZDEV_OPEN;
	return n;
}

static void file_append(struct zdev *d, uint32_t zone, void *buf, uint32_t len, struct zdev_io *io)
{
	struct file_dev *f = fdev(d);
	struct zdev_zone *z;

	if (zdev_bad_append(d, zone, len)) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	z = &f->zones[zone];
	if (z->cond == ZDEV_READONLY || z->cond == ZDEV_OFFLINE) {
		zdev_fail(d, io, -EROFS);
		return;
	}
	if (z->cond == ZDEV_FULL || z->wp + len > z->cap) {
		zdev_fail(d, io, -ENOSPC);
		return;
	}
	if (z->cond == ZDEV_EMPTY && zdev_over_limit(&d->info, open_zones(f))) {
		/* As NVMe's Too Many Active Zones: the host must finish a zone first. */
		zdev_fail(d, io, -EBUSY);
		return;
	}
	/* The device, not the caller, decides where the data lands. */
	io->addr = z->start + z->wp;
	io->off = ZDEV_FILE_HDR + io->addr;
	io->buf = buf;
	io->len = len;
	io->zone = zone;
	z->wp += len;
	z->cond = ZDEV_OPEN;
	submit(d, io, ZDEV_IO_APPEND, prep_rw);
}

static void file_read(struct zdev *d, uint64_t addr, void *buf, uint32_t len, struct zdev_io *io)
{
	if (zdev_bad_read(d, addr, len)) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	io->addr = addr;
	io->off = ZDEV_FILE_HDR + addr;
	io->buf = buf;
	io->len = len;
	submit(d, io, ZDEV_IO_READ, prep_rw);
}

static void file_flush(struct zdev *d, struct zdev_io *io)
{
	submit(d, io, ZDEV_IO_FLUSH, prep_flush);
}

static void reset_done(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);
	struct zdev_zone *z = &fdev(io->dev)->zones[io->zone];

	io->res = cqe->res;
	if (cqe->res >= 0) {
		z->wp = 0;
		z->cond = ZDEV_EMPTY;
	}
	io->done(io);
}

static void file_reset(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	if (zone >= d->info.nr_zones) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	io->zone = zone;
	io->off = ZDEV_FILE_HDR + fdev(d)->zones[zone].start;
	submit(d, io, ZDEV_IO_RESET, prep_punch);
	io->op.complete = reset_done;
}

static void file_finish(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	struct file_dev *f = fdev(d);
	struct zdev_zone *z;

	if (zone >= d->info.nr_zones) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	z = &f->zones[zone];
	z->wp = z->cap;
	z->cond = ZDEV_FULL;
	io->zone = zone;
	io->buf = f->marker;
	io->len = ZDEV_FILE_HDR;
	io->off = ZDEV_FILE_HDR + z->start + d->info.zone_size - ZDEV_FILE_HDR;
	submit(d, io, ZDEV_IO_FINISH, prep_rw);
}

static int file_report(struct zdev *d, struct zdev_zone *zones)
{
	memcpy(zones, fdev(d)->zones, d->info.nr_zones * sizeof(*zones));
	return 0;
}

static void file_close(struct zdev *d)
{
	struct file_dev *f = fdev(d);

	if (f->fd >= 0)
		close(f->fd);
	if (f->lock_fd >= 0)
		close(f->lock_fd);
	free(f->zones);
	free(f->marker);
	free(f);
}

static const struct zdev_ops file_ops = {
	.append = file_append,
	.read = file_read,
	.flush = file_flush,
	.reset = file_reset,
	.finish = file_finish,
	.report = file_report,
	.close = file_close,
};

int zdev_file_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err)
{
	struct file_dev *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return -ENOMEM;
	f->fd = f->lock_fd = -1;
	f->dev.ops = &file_ops;
	f->dev.info.backend = "file";
	f->dev.info.max_append = 1 * MiB;
	f->dev.info.max_open = o->max_open;
	f->dev.info.max_active = o->max_active;
	if (posix_memalign(&f->marker, ZDEV_BLOCK_MAX, ZDEV_FILE_HDR)) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = claim(f, o, err);
	if (ret)
		goto fail;
	if (!o->readonly && (o->format || needs_create(o))) {
		ret = create_image(o, err);
		if (ret)
			goto fail;
	}
	ret = open_image(f, o, err);
	if (ret)
		goto fail;
	f->zones = calloc(f->dev.info.nr_zones, sizeof(*f->zones));
	if (!f->zones) {
		ret = -ENOMEM;
		goto fail;
	}
	load_zones(f);
	memset(f->marker, 0, ZDEV_FILE_HDR);
	memcpy(f->marker, "ZAPFFIN1", 8);
	*out = &f->dev;
	return 0;
fail:
	if (f->created && f->locked) {
		struct stat st;

		if (!fstat(f->lock_fd, &st) && !st.st_size)
			unlink(o->path);
	}
	file_close(&f->dev);
	return ret;
}
