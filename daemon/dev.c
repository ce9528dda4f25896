#include "dev.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <libzbd/zbd.h>
#include <linux/nvme_ioctl.h>

#include "pool.h"

int zdev_node_name(const char *path, bool *blk, char *name, size_t len)
{
	char link[64], target[PATH_MAX];
	struct stat st;
	const char *base;
	ssize_t n;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode) && !S_ISCHR(st.st_mode))
		return -ENOTBLK;
	*blk = S_ISBLK(st.st_mode);
	snprintf(link, sizeof(link), "/sys/dev/%s/%u:%u", *blk ? "block" : "char",
		 major(st.st_rdev), minor(st.st_rdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(name, base);
	return 0;
}

int zdev_block_name(const char *path, char *name, size_t len)
{
	bool blk;
	int ret = zdev_node_name(path, &blk, name, len);

	return ret ? ret : blk ? 0 : -ENOTBLK;
}

int zdev_sysfs_read(const char *blk, const char *attr, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/block/%s/%s", blk, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

int zdev_sysfs_u64(const char *blk, const char *attr, uint64_t *v)
{
	char buf[64], *end;
	int ret = zdev_sysfs_read(blk, attr, buf, sizeof(buf));

	if (ret)
		return ret;
	errno = 0;
	*v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

int zdev_claim(const char *blk, int *fd, struct zerr *err)
{
	*fd = open(blk, O_RDONLY | O_EXCL | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	if (errno == EBUSY)
		return zerr_set(err, -EBUSY,
				"%s is in use by another zappendd, or mounted (it is claimed "
				"exclusively)",
				blk);
	return zerr_set(err, -errno, "cannot open %s: %s", blk, strerror(errno));
}

int zdev_check_geometry(const struct zdev_opts *o, const struct zdev_info *info, struct zerr *err)
{
	uint64_t size = info->zone_size * info->nr_zones;
	char a[32], b[32];

	/* A device's geometry is its own: --size/--zone-size may only name it. */
	if (o->zone_size && o->zone_size != info->zone_size)
		return zerr_set(err, -EINVAL, "%s has zone size %s, not the %s asked for", o->path,
				format_size(info->zone_size, a, sizeof(a)),
				format_size(o->zone_size, b, sizeof(b)));
	/* In whole zones: an image was made with size / zone_size of them. */
	if (o->size && o->size / info->zone_size != info->nr_zones)
		return zerr_set(err, -EINVAL, "%s holds %s in %u zones, not the %s asked for",
				o->path, format_size(size, a, sizeof(a)), info->nr_zones,
				format_size(o->size, b, sizeof(b)));
	return 0;
}

bool zdev_bad_append(const struct zdev *d, uint32_t zone, uint32_t len)
{
	return zone >= d->info.nr_zones || len == 0 || len % d->info.lblock;
}

bool zdev_bad_read(const struct zdev *d, uint64_t addr, uint32_t len)
{
	return len == 0 || len % d->info.lblock || addr % d->info.lblock ||
	       addr + len > (uint64_t)d->info.nr_zones * d->info.zone_size;
}

bool zdev_block_ok(uint64_t block)
{
	return block >= ZDEV_BLOCK_MIN && block <= ZDEV_BLOCK_MAX && !(block & (block - 1));
}

bool zdev_over_limit(const struct zdev_info *info, uint32_t open)
{
	uint32_t limit = info->max_active ? info->max_active : UINT32_MAX;

	if (info->max_open)
		limit = MIN(limit, info->max_open);
	return open >= limit;
}

static uint32_t lower_limit(uint32_t dev, uint32_t asked)
{
	return !asked ? dev : !dev ? asked : MIN(dev, asked);
}

void zdev_zbd_limits(struct zdev_info *info, const struct zbd_info *zi, const struct zdev_opts *o)
{
	/* libzbd: 0 no limit, (unsigned)-1 unknown. */
	uint32_t open = zi->max_nr_open_zones == UINT32_MAX ? 0 : zi->max_nr_open_zones;
	uint32_t active = zi->max_nr_active_zones == UINT32_MAX ? 0 : zi->max_nr_active_zones;

	info->max_open = lower_limit(open, o->max_open);
	info->max_active = lower_limit(active, o->max_active);
}

static enum zdev_cond zbd_cond(const struct zbd_zone *z)
{
	if (z->type == ZBD_ZONE_TYPE_CNV)
		return ZDEV_CONV;
	switch (z->cond) {
	case ZBD_ZONE_COND_EMPTY:
		return ZDEV_EMPTY;
	case ZBD_ZONE_COND_IMP_OPEN:
	case ZBD_ZONE_COND_EXP_OPEN:
	case ZBD_ZONE_COND_CLOSED:
		return ZDEV_OPEN;
	case ZBD_ZONE_COND_FULL:
		return ZDEV_FULL;
	case ZBD_ZONE_COND_READONLY:
		return ZDEV_READONLY;
	default:
		return ZDEV_OFFLINE;
	}
}

void zdev_zbd_zone(struct zdev_zone *z, const struct zbd_zone *r)
{
	z->start = r->start;
	z->cap = r->capacity;
	z->cond = zbd_cond(r);
	z->wp = z->cond == ZDEV_EMPTY ? 0 : MIN(r->wp - r->start, r->capacity);
	/* Nothing more goes into these: their write pointer is their capacity. */
	if (z->cond == ZDEV_FULL || z->cond == ZDEV_OFFLINE || z->cond == ZDEV_CONV)
		z->wp = z->cap;
}

int zdev_zbd_report(int fd, const struct zdev_info *info, struct zbd_zone *rep,
		    struct zdev_zone *zones)
{
	unsigned int nr = info->nr_zones;

	if (zbd_report_zones(fd, 0, 0, ZBD_RO_ALL, rep, &nr) < 0)
		return -errno ? -errno : -EIO;
	if (nr != info->nr_zones)
		return -EIO;
	for (uint32_t i = 0; i < nr; i++) {
		if (rep[i].start != (uint64_t)i * info->zone_size || rep[i].capacity > rep[i].len)
			return -EIO;
		zdev_zbd_zone(&zones[i], &rep[i]);
	}
	return 0;
}

/*
 * --backend auto: a regular file (or none yet) is an emulated device; an NVMe
 * generic char device (/dev/ngXnY) is the nvme backend, which checks that the
 * namespace is zoned; a zoned block device is nvme through its generic char
 * device when it is an NVMe namespace whose passthrough works, else zbd.
 */
static int open_auto(const struct zdev_opts *o, struct zdev **out, struct zerr *err)
{
	char name[NAME_MAX + 1], zoned[32];
	struct stat st;
	bool blk;
	int ret;

	if (stat(o->path, &st) < 0) {
		if (errno == ENOENT)
			return zdev_file_open(o, out, err);
		return zerr_set(err, -errno, "%s: %s", o->path, strerror(errno));
	}
	if (S_ISREG(st.st_mode))
		return zdev_file_open(o, out, err);
	if (!S_ISBLK(st.st_mode) && !S_ISCHR(st.st_mode))
		return zerr_set(err, -ENODEV,
				"%s is neither an image file nor a zoned block or NVMe device",
				o->path);
	ret = zdev_node_name(o->path, &blk, name, sizeof(name));
	if (ret)
		return zerr_set(err, ret, "%s: cannot find the device in /sys: %s", o->path,
				strerror(-ret));
	if (!blk) {
		int fd = open(o->path, O_RDONLY | O_CLOEXEC);
		int nsid = fd < 0 ? -1 : ioctl(fd, NVME_IOCTL_ID);

		if (fd >= 0)
			close(fd);
		if (nsid <= 0)
			return zerr_set(err, -ENODEV,
					"%s is a character device but not an NVMe namespace "
					"(/dev/ngXnY); it is not a zoned device",
					o->path);
		return zdev_nvme_open(o, out, err);
	}
	if (zdev_sysfs_read(name, "queue/zoned", zoned, sizeof(zoned)) || !strcmp(zoned, "none"))
		return zerr_set(err, -ENODEV,
				"%s is not a zoned device (a conventional block device); zappendd "
				"needs a zoned one (NVMe ZNS, host-managed SMR, zoned null_blk) or "
				"an image file",
				o->path);
	if (!strncmp(name, "nvme", 4)) {
		/* Native zone append through passthrough, when the kernel has it. */
		ret = zdev_nvme_open(o, out, err);
		if (ret == 0)
			return 0;
		memset(err, 0, sizeof(*err));
	}
	return zdev_zbd_open(o, out, err);
}

static int open_backend(const struct zdev_opts *o, struct zdev **out, struct zerr *err)
{
	if (!strcmp(o->backend, "file"))
		return zdev_file_open(o, out, err);
	if (!strcmp(o->backend, "zbd"))
		return zdev_zbd_open(o, out, err);
	if (!strcmp(o->backend, "nvme"))
		return zdev_nvme_open(o, out, err);
	if (strcmp(o->backend, "auto"))
		return zerr_set(err, -EINVAL,
				"unknown backend '%s' (this build has: auto, file, zbd, nvme)",
				o->backend);
	return open_auto(o, out, err);
}

/* --block: a block the medium takes whole, that a store may have. */
static int ask_block(struct zdev *d, const struct zdev_opts *o, struct zerr *err)
{
	struct zdev_info *info = &d->info;

	if (!o->block)
		return 0;
	if (!zdev_block_ok(o->block) || o->block % info->lblock)
		return zerr_set(err, -EINVAL,
				"--block %u: a block is a power of two from %u to %u bytes, "
				"and %s takes whole blocks of %u",
				o->block, ZDEV_BLOCK_MIN, ZDEV_BLOCK_MAX, o->path, info->lblock);
	info->block = o->block;
	info->block_asked = true;
	return 0;
}

int zdev_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err)
{
	int ret = open_backend(o, out, err);

	if (!ret && (ret = ask_block(*out, o, err))) {
		zdev_close(*out);
		*out = NULL;
	}
	return ret;
}

void zdev_close(struct zdev *d)
{
	if (d)
		d->ops->close(d);
}

void zdev_attach(struct zdev *d, struct zring *ring, const struct zpool *pool)
{
	d->ring = ring;
	d->pool = pool;
	if (d->ops->attach)
		d->ops->attach(d);
}

/* Pool buffers go to the device as they are: each is whole blocks, block-aligned. */
_Static_assert(ZPOOL_MIN % ZDEV_BLOCK_MAX == 0, "pool buffers must be whole blocks");

bool zdev_fixed(const struct zdev *d, const void *buf)
{
	const uint8_t *p = buf;

	return d->ring->fixed_buffers && d->pool && p >= d->pool->base &&
	       p < d->pool->base + d->pool->size;
}

static void fail_prep(struct zring_op *op, struct io_uring_sqe *sqe)
{
	io_uring_prep_nop(sqe);
}

static void fail_complete(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);

	io->done(io);
}

void zdev_fail(struct zdev *d, struct zdev_io *io, int err)
{
	io->res = err;
	io->op.prep = fail_prep;
	io->op.complete = fail_complete;
	zring_queue(d->ring, &io->op);
}

struct sync_io {
	struct zdev_io io;
	bool done;
};

static void sync_done(struct zdev_io *io)
{
	container_of(io, struct sync_io, io)->done = true;
}

static int sync_wait(struct zdev *d, struct sync_io *s)
{
	while (!s->done)
		zring_drain(d->ring);
	return s->io.res;
}

int zdev_read_sync(struct zdev *d, uint64_t addr, void *buf, uint32_t len)
{
	struct sync_io s = { .io.done = sync_done };

	zdev_read(d, addr, buf, len, &s.io);
	return sync_wait(d, &s);
}

int zdev_append_sync(struct zdev *d, uint32_t zone, void *buf, uint32_t len, uint64_t *addr)
{
	struct sync_io s = { .io.done = sync_done };
	int ret;

	zdev_append(d, zone, buf, len, &s.io);
	ret = sync_wait(d, &s);
	*addr = s.io.addr;
	return ret;
}

int zdev_flush_sync(struct zdev *d)
{
	struct sync_io s = { .io.done = sync_done };

	zdev_flush(d, &s.io);
	return sync_wait(d, &s);
}

int zdev_reset_sync(struct zdev *d, uint32_t zone)
{
	struct sync_io s = { .io.done = sync_done };

	zdev_reset(d, zone, &s.io);
	return sync_wait(d, &s);
}

uint32_t zdev_meta_zone(const struct zdev_zone *dz, uint32_t nr)
{
	uint32_t i = 0;

	while (i < nr && dz[i].cond == ZDEV_CONV)
		i++;
	return i;
}

int zdev_finish_sync(struct zdev *d, uint32_t zone)
{
	struct sync_io s = { .io.done = sync_done };

	zdev_finish(d, zone, &s.io);
	return sync_wait(d, &s);
}
