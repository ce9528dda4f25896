/*
 * NVMe ZNS through io_uring passthrough: the namespace's generic char device
 * (/dev/ngXnY) with IORING_OP_URING_CMD (NVME_URING_CMD_IO) on a ring set up
 * with SQE128 | CQE32.
 *
 * Appends are native NVMe Zone Appends (opcode 0x7D): the command names the
 * zone's first LBA, the device picks the place and returns the LBA where the
 * data landed in the big CQE (big_cqe[0]). Many appends to one zone are in
 * flight at once; nothing here orders or serialises them. Data comes straight
 * from the registered buffer pool (IORING_URING_CMD_FIXED + buf_index) when the
 * kernel allows it. Linux 6.1 refuses registered buffers for passthrough with
 * -EINVAL; Debian's later 6.1 kernels (6.1.192) take them but refuse any that
 * start more than max_segments pages before the end of the registered region
 * (blk_rq_map_user_bvec counts the region's bvecs to its end, not the
 * command's). So a refusal switches to plain buffers for good, and every
 * command refused, whether sent before or after the switch, goes again
 * with a plain buffer (zdev.fixed_refused tells the daemon).
 *
 * Reads are NVMe Reads (0x02), split at the largest transfer one command may
 * carry and at zone boundaries (the store reads up to 4 MiB while scanning).
 * Appends are not split: info.max_append is the device's zone append limit
 * (zone_append_max_bytes, already bounded by MDTS) and the largest transfer,
 * and the store never asks for more than max_append in one append, so a
 * record always lands whole, at one LBA the device chose.
 *
 * Durability: an NVMe Flush (0x00) per group commit rather than FUA on every
 * append: one Flush covers every append that completed before it, which is
 * exactly the store's group commit, and appends stay cheap.
 *
 * Zone reset and finish are Zone Management Send (0x79) through the same ring,
 * so they stay asynchronous and ordered with the I/O around them. Geometry
 * (LBA size, zone size, limits) comes from the matching block device's sysfs
 * and zone reports (start, capacity, write pointer, condition) from libzbd on
 * that block device (/dev/nvmeXnY).
 *
 * Errors: NVMe status codes map to errnos the store knows from the file
 * backend: Zone Is Full -> -ENOSPC, Zone Is Read Only / Offline -> -EROFS, Too
 * Many Active / Open Zones -> -EBUSY, Invalid Field -> -EINVAL, anything else
 * (Zone Invalid Write, Invalid Zone State Transition, media errors) -> -EIO.
 * An appended LBA outside the zone's capacity is an -EIO too: the device's
 * answer cannot be trusted.
 */
#include <errno.h>
#include <fcntl.h>
#include <libzbd/zbd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/nvme_ioctl.h>

#include "dev.h"

#define NVME_OP_FLUSH	    0x00
#define NVME_OP_READ	    0x02
#define NVME_OP_ZONE_SEND   0x79
#define NVME_OP_ZONE_APPEND 0x7d
#define NVME_ZSA_FINISH	    0x02
#define NVME_ZSA_RESET	    0x04

#define IO_KIND	 0xff
#define IO_FIXED 0x100 /* this submission used a registered buffer */

struct nvme_dev {
	struct zdev dev;
	int fd;	      /* /dev/ngXnY: every command */
	int zfd;      /* /dev/nvmeXnY through libzbd: zone reports */
	int claim_fd; /* /dev/nvmeXnY open exclusively: the namespace is ours */
	uint32_t nsid;
	unsigned lba_shift;
	uint32_t max_xfer; /* bytes one command may move */
	uint64_t *cap;	   /* per zone: writable bytes */
	struct zbd_zone *rep;
};

static struct nvme_dev *ndev(struct zdev *d)
{
	return container_of(d, struct nvme_dev, dev);
}

/* An NVMe status (SCT << 8 | SC, as the kernel passes it in cqe->res) as -errno. */
static int status_errno(int status)
{
	switch (status & 0x7ff) {
	case 0x1b9: /* Zone Is Full */
		return -ENOSPC;
	case 0x1ba: /* Zone Is Read Only */
	case 0x1bb: /* Zone Is Offline */
		return -EROFS;
	case 0x1bd: /* Too Many Active Zones */
	case 0x1be: /* Too Many Open Zones */
		return -EBUSY;
	case 0x002: /* Invalid Field in Command */
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* The bytes of a read's next command: up to max_xfer, never across a zone's end. */
static uint32_t read_chunk(const struct nvme_dev *n, const struct zdev_io *io)
{
	uint64_t at = io->addr + io->off;
	uint64_t zend = (at / n->dev.info.zone_size + 1) * n->dev.info.zone_size;

	return MIN(MIN((uint64_t)io->len - io->off, n->max_xfer), zend - at);
}

static void nvme_prep(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);
	struct nvme_dev *n = ndev(io->dev);
	struct nvme_uring_cmd *c = (struct nvme_uring_cmd *)sqe->cmd;
	uint64_t lba = 0;
	uint8_t *buf = NULL;
	uint32_t len = 0;

	/* SQE128: the command takes the second half of the entry as well. */
	memset(sqe, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = n->fd;
	sqe->cmd_op = NVME_URING_CMD_IO;
	c->nsid = n->nsid;
	io->kind &= IO_KIND;
	switch (io->kind) {
	case ZDEV_IO_APPEND:
		c->opcode = NVME_OP_ZONE_APPEND;
		lba = (io->zone * io->dev->info.zone_size) >> n->lba_shift;
		buf = io->buf;
		len = io->len;
		break;
	case ZDEV_IO_READ:
		c->opcode = NVME_OP_READ;
		lba = (io->addr + io->off) >> n->lba_shift;
		buf = (uint8_t *)io->buf + io->off;
		len = read_chunk(n, io);
		break;
	case ZDEV_IO_FLUSH:
		c->opcode = NVME_OP_FLUSH;
		break;
	case ZDEV_IO_RESET:
	case ZDEV_IO_FINISH:
		c->opcode = NVME_OP_ZONE_SEND;
		lba = (io->zone * io->dev->info.zone_size) >> n->lba_shift;
		c->cdw13 = io->kind == ZDEV_IO_RESET ? NVME_ZSA_RESET : NVME_ZSA_FINISH;
		break;
	}
	c->cdw10 = (uint32_t)lba;
	c->cdw11 = (uint32_t)(lba >> 32);
	if (len) {
		c->cdw12 = (len >> n->lba_shift) - 1; /* NLB, 0's based */
		c->addr = (uint64_t)(uintptr_t)buf;
		c->data_len = len;
		if (zdev_fixed(io->dev, buf)) {
			sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
			sqe->buf_index = 0; /* the pool is the ring's buffer 0 */
			io->kind |= IO_FIXED;
		}
	}
}

/* Whether the device's answer to an append lies inside the zone it was sent to. */
static bool append_ok(const struct nvme_dev *n, const struct zdev_io *io, uint64_t addr)
{
	uint64_t start = io->zone * n->dev.info.zone_size;

	return addr >= start && addr % n->dev.info.lblock == 0 &&
	       addr + io->len <= start + n->cap[io->zone];
}

static void nvme_complete(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	struct zdev_io *io = container_of(op, struct zdev_io, op);
	struct nvme_dev *n = ndev(io->dev);
	int kind = io->kind & IO_KIND, res = cqe->res;

	if ((io->kind & IO_FIXED) && res == -EINVAL) {
		/*
		 * The kernel refused the registered buffer before the command
		 * reached the device (the device's errors are positive statuses),
		 * so sending it again cannot write twice. zdev_fixed() answers
		 * false once the ring says it has no fixed buffers, which the stat
		 * shows too. Commands already in flight from registered buffers
		 * may still succeed or be refused: each refused one comes here.
		 */
		n->dev.fixed_refused = true;
		n->dev.ring->fixed_buffers = false;
		zring_queue(n->dev.ring, &io->op);
		return;
	}
	if (res > 0)
		res = status_errno(res);
	if (res < 0) {
		io->res = res;
		io->done(io);
		return;
	}
	switch (kind) {
	case ZDEV_IO_APPEND: {
		/* The LBA where the data landed: the Zone Append's result, in big_cqe[0]. */
		uint64_t addr = cqe->big_cqe[0] << n->lba_shift;

		io->addr = addr;
		io->res = append_ok(n, io, addr) ? (int)io->len : -EIO;
		break;
	}
	case ZDEV_IO_READ:
		io->off += read_chunk(n, io);
		if (io->off < io->len) {
			zring_queue(n->dev.ring, &io->op);
			return;
		}
		io->res = io->len;
		break;
	default:
		io->res = 0;
	}
	io->done(io);
}

static void submit(struct zdev *d, struct zdev_io *io, int kind)
{
	io->dev = d;
	io->kind = kind;
	io->op.prep = nvme_prep;
	io->op.complete = nvme_complete;
	zring_queue(d->ring, &io->op);
}

static void nvme_append(struct zdev *d, uint32_t zone, void *buf, uint32_t len, struct zdev_io *io)
{
	/* Never split: the store keeps every append within info.max_append. */
	if (zdev_bad_append(d, zone, len) || len > d->info.max_append) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	io->zone = zone;
	io->buf = buf;
	io->len = len;
	io->addr = 0;
	submit(d, io, ZDEV_IO_APPEND);
}

static void nvme_read(struct zdev *d, uint64_t addr, void *buf, uint32_t len, struct zdev_io *io)
{
	if (zdev_bad_read(d, addr, len)) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	io->addr = addr;
	io->buf = buf;
	io->len = len;
	io->off = 0;
	submit(d, io, ZDEV_IO_READ);
}

static void nvme_flush(struct zdev *d, struct zdev_io *io)
{
	submit(d, io, ZDEV_IO_FLUSH);
}

static void zone_op(struct zdev *d, uint32_t zone, struct zdev_io *io, int kind)
{
	if (zone >= d->info.nr_zones) {
		zdev_fail(d, io, -EINVAL);
		return;
	}
	io->zone = zone;
	submit(d, io, kind);
}

static void nvme_reset(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	zone_op(d, zone, io, ZDEV_IO_RESET);
}

static void nvme_finish(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	zone_op(d, zone, io, ZDEV_IO_FINISH);
}

static int nvme_report(struct zdev *d, struct zdev_zone *zones)
{
	struct nvme_dev *n = ndev(d);
	int ret = zdev_zbd_report(n->zfd, &d->info, n->rep, zones);

	if (ret)
		return ret;
	for (uint32_t i = 0; i < d->info.nr_zones; i++)
		n->cap[i] = zones[i].cap;
	return 0;
}

static void nvme_close(struct zdev *d)
{
	struct nvme_dev *n = ndev(d);

	if (n->fd >= 0)
		close(n->fd);
	if (n->zfd >= 0)
		zbd_close(n->zfd);
	if (n->claim_fd >= 0)
		close(n->claim_fd);
	free(n->cap);
	free(n->rep);
	free(n);
}

static const struct zdev_ops nvme_ops = {
	.append = nvme_append,
	.read = nvme_read,
	.flush = nvme_flush,
	.reset = nvme_reset,
	.finish = nvme_finish,
	.report = nvme_report,
	.close = nvme_close,
};

/*
 * Reads the first block through passthrough on a ring of our own: a kernel
 * without io_uring NVMe passthrough (before 5.19), or one that forbids it to
 * us (no CAP_SYS_ADMIN before 6.2), fails here, at start, with a clear reason.
 */
static int probe(struct nvme_dev *n)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct zdev_io io = { .dev = &n->dev, .kind = ZDEV_IO_READ, .len = ZDEV_BLOCK_MAX };
	struct zring fake = { .fixed_buffers = false };
	int ret;

	if (posix_memalign(&io.buf, ZDEV_BLOCK_MAX, ZDEV_BLOCK_MAX))
		return -ENOMEM;
	ret = io_uring_queue_init(2, &ring, IORING_SETUP_SQE128 | IORING_SETUP_CQE32);
	if (ret < 0)
		goto out;
	n->dev.ring = &fake;
	sqe = io_uring_get_sqe(&ring);
	nvme_prep(&io.op, sqe);
	ret = io_uring_submit(&ring);
	if (ret == 1)
		ret = io_uring_wait_cqe(&ring, &cqe);
	else if (ret >= 0)
		ret = -EIO;
	if (ret == 0) {
		ret = cqe->res > 0 ? status_errno(cqe->res) : cqe->res;
		io_uring_cqe_seen(&ring, cqe);
	}
	n->dev.ring = NULL;
	io_uring_queue_exit(&ring);
out:
	free(io.buf);
	return ret;
}

/* The names of the namespace's block device and generic char device. */
static int names(const char *path, char *blk, char *chr, size_t len)
{
	char name[NAME_MAX + 1];
	bool isblk;
	int ret = zdev_node_name(path, &isblk, name, sizeof(name));

	if (ret)
		return ret;
	if (isblk && !strncmp(name, "nvme", 4) && strlen(name) < len) {
		strcpy(blk, name);
		strcpy(chr, "ng");
		strcat(chr, name + 4);
		return 0;
	}
	if (!isblk && !strncmp(name, "ng", 2) && strlen(name) + 3 < len) {
		strcpy(chr, name);
		strcpy(blk, "nvme");
		strcat(blk, name + 2);
		return 0;
	}
	return -ENODEV;
}

static int geometry(struct nvme_dev *n, const char *blk, const struct zbd_info *zi,
		    struct zerr *err)
{
	struct zdev_info *info = &n->dev.info;
	uint64_t lbs, hw_kb, segs, zamax;

	if (zdev_sysfs_u64(blk, "queue/logical_block_size", &lbs) ||
	    zdev_sysfs_u64(blk, "queue/max_hw_sectors_kb", &hw_kb) ||
	    zdev_sysfs_u64(blk, "queue/max_segments", &segs) ||
	    zdev_sysfs_u64(blk, "queue/zone_append_max_bytes", &zamax))
		return zerr_set(err, -EIO, "/sys/block/%s: cannot read the queue limits", blk);
	if (!zdev_block_ok(lbs))
		return zerr_set(err, -EINVAL,
				"%s: LBA size %llu; zappend needs a power of two from %u to %u",
				blk, (unsigned long long)lbs, ZDEV_BLOCK_MIN, ZDEV_BLOCK_MAX);
	n->lba_shift = __builtin_ctzll(lbs);
	/*
	 * A segment a page: a plain buffer's pages need not be contiguous. Pages
	 * are no smaller than a block, and buffers are block-aligned.
	 */
	n->max_xfer = MIN(hw_kb * KiB, segs * ZDEV_BLOCK_MAX);
	n->max_xfer = MIN(n->max_xfer, 64 * MiB) / ZDEV_BLOCK_MAX * ZDEV_BLOCK_MAX;
	info->max_append = MIN(zamax, n->max_xfer) / ZDEV_BLOCK_MAX * ZDEV_BLOCK_MAX;
	if (!n->max_xfer || !info->max_append)
		return zerr_set(err, -EINVAL, "%s: transfer limits too small (zone append %llu)",
				blk, (unsigned long long)zamax);
	info->block = info->lblock = lbs;
	info->zone_size = zi->zone_size;
	info->nr_zones = zi->nr_zones;
	if (info->zone_size % lbs || info->nr_zones < 4)
		return zerr_set(err, -EINVAL, "%s: %u zones of %llu bytes: too few or unaligned",
				blk, info->nr_zones, (unsigned long long)info->zone_size);
	return 0;
}

int zdev_nvme_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err)
{
	struct nvme_dev *n = calloc(1, sizeof(*n));
	char blk[NAME_MAX + 1], chr[NAME_MAX + 1], path[PATH_MAX], zoned[32];
	struct zbd_info zi;
	struct zdev_zone *zones = NULL;
	int ret, nsid;

	if (!n)
		return -ENOMEM;
	n->fd = n->zfd = n->claim_fd = -1;
	n->dev.ops = &nvme_ops;
	n->dev.info.backend = "nvme";
	n->dev.info.ring_flags = IORING_SETUP_SQE128 | IORING_SETUP_CQE32;
	ret = names(o->path, blk, chr, sizeof(blk));
	if (ret) {
		ret = zerr_set(err, ret, "%s is not an NVMe namespace (/dev/ngXnY or /dev/nvmeXnY)",
			       o->path);
		goto fail;
	}
	snprintf(path, sizeof(path), "/dev/%s", chr);
	n->fd = open(path, (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (n->fd < 0) {
		ret = zerr_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	nsid = ioctl(n->fd, NVME_IOCTL_ID);
	if (nsid <= 0) {
		ret = zerr_set(err, -ENODEV, "%s does not answer NVMe ioctls", path);
		goto fail;
	}
	n->nsid = nsid;
	if (zdev_sysfs_read(blk, "queue/zoned", zoned, sizeof(zoned)) ||
	    strcmp(zoned, "host-managed")) {
		ret = zerr_set(err, -ENODEV,
			       "%s: namespace %d is not zoned (queue/zoned of %s: %s); it is not a "
			       "zoned device",
			       path, nsid, blk, zoned[0] ? zoned : "missing");
		goto fail;
	}
	snprintf(path, sizeof(path), "/dev/%s", blk);
	/* The block device is the namespace's one claim, whichever node names it. */
	ret = o->shared ? 0 : zdev_claim(path, &n->claim_fd, err);
	if (ret)
		goto fail;
	errno = 0;
	n->zfd = zbd_open(path, O_RDONLY | O_CLOEXEC, &zi);
	if (n->zfd < 0) {
		ret = n->zfd == -1 && errno ? -errno : n->zfd;
		ret = zerr_set(err, ret, "%s: cannot read its zones through libzbd: %s", path,
			       strerror(-ret));
		n->zfd = -1;
		goto fail;
	}
	ret = geometry(n, blk, &zi, err);
	if (ret)
		goto fail;
	zdev_zbd_limits(&n->dev.info, &zi, o);
	ret = zdev_check_geometry(o, &n->dev.info, err);
	if (ret)
		goto fail;
	n->cap = calloc(n->dev.info.nr_zones, sizeof(*n->cap));
	n->rep = calloc(n->dev.info.nr_zones, sizeof(*n->rep));
	zones = calloc(n->dev.info.nr_zones, sizeof(*zones));
	if (!n->cap || !n->rep || !zones) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = nvme_report(&n->dev, zones);
	if (ret) {
		ret = zerr_set(err, ret, "%s: cannot report zones: %s", path, strerror(-ret));
		goto fail;
	}
	if (zones[0].cond == ZDEV_OFFLINE || zones[0].cond == ZDEV_READONLY) {
		ret = zerr_set(err, -EROFS, "%s: zone 0, where the superblock goes, is %s", path,
			       zones[0].cond == ZDEV_OFFLINE ? "offline" : "read-only");
		goto fail;
	}
	free(zones);
	zones = NULL;
	ret = probe(n);
	if (ret) {
		ret = zerr_set(err, ret,
			       "/dev/%s: io_uring NVMe passthrough does not work here (%s); "
			       "--backend zbd uses %s instead",
			       chr, strerror(-ret), path);
		goto fail;
	}
	*out = &n->dev;
	return 0;
fail:
	free(zones);
	nvme_close(&n->dev);
	return ret;
}
