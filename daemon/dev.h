/*
 * The device interface: a zoned device behind a small vtable, so the store
 * never knows which backend it talks to. Data operations are asynchronous
 * and complete through the daemon's one io_uring; zone reports are
 * synchronous because they happen at start.
 *
 * Addresses are device byte addresses: zone i starts at i * zone_size.
 */
#ifndef ZAPD_DEV_H
#define ZAPD_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "ring.h"
#include "util.h"

struct zpool;
struct zbd_info;
struct zbd_zone;

/*
 * The largest block a store may have, and the alignment of every I/O buffer
 * (a page): a store's block is a power of two from 512 bytes up that divides
 * it, so that buffers and lengths in whole ZDEV_BLOCK_MAX fit any store.
 */
#define ZDEV_BLOCK_MAX 4096u
#define ZDEV_BLOCK_MIN 512u

enum zdev_cond {
	ZDEV_EMPTY,
	ZDEV_OPEN, /* written to, not full (open or closed on the device) */
	ZDEV_FULL,
	ZDEV_READONLY,
	ZDEV_OFFLINE,
	ZDEV_CONV, /* conventional: no write pointer; zappend leaves it be */
};

struct zdev_zone {
	uint64_t start; /* byte address */
	uint64_t cap;	/* writable bytes */
	uint64_t wp;	/* bytes written, relative to start */
	enum zdev_cond cond;
};

struct zdev_info {
	const char *backend;
	uint64_t zone_size; /* bytes from one zone start to the next */
	uint32_t nr_zones;
	/*
	 * The block a new format gives the store (every append and read is
	 * whole blocks of it, aligned): lblock on nvme and zbd; on the file
	 * backend the file system's block (at most ZDEV_BLOCK_MAX), since direct
	 * I/O that is aligned to its DIO alignment but not to its block is
	 * serialised and zero-filled by ext4 and XFS (3x slower, bench/run).
	 * --block chooses another (block_asked).
	 */
	uint32_t block;
	bool block_asked;
	/*
	 * The medium's logical block size, the smallest aligned I/O it takes: the
	 * namespace's LBA size, the block device's logical block size, or the
	 * image's file system's direct-I/O alignment.
	 */
	uint32_t lblock;
	uint32_t max_append; /* most bytes one append may carry */
	uint32_t max_open;   /* device limits; 0: none */
	uint32_t max_active;
	unsigned ring_flags; /* IORING_SETUP_* the backend needs */
};

/* What a zdev_io is doing, for the backends (zdev_io.kind). */
enum { ZDEV_IO_APPEND, ZDEV_IO_READ, ZDEV_IO_FLUSH, ZDEV_IO_RESET, ZDEV_IO_FINISH };

struct zdev_io {
	struct zring_op op; /* private to the backend */
	void (*done)(struct zdev_io *io);
	int res;       /* bytes moved (0 for zone and flush operations), or -errno */
	uint64_t addr; /* append: where the data landed */
	/* private to the backend */
	struct zdev *dev;
	uint32_t zone;
	uint32_t len;
	void *buf;
	uint64_t off;
	int kind;
};

struct zdev;

struct zdev_ops {
	void (*append)(struct zdev *d, uint32_t zone, void *buf, uint32_t len, struct zdev_io *io);
	void (*read)(struct zdev *d, uint64_t addr, void *buf, uint32_t len, struct zdev_io *io);
	void (*flush)(struct zdev *d, struct zdev_io *io);
	void (*reset)(struct zdev *d, uint32_t zone, struct zdev_io *io);
	void (*finish)(struct zdev *d, uint32_t zone, struct zdev_io *io);
	int (*report)(struct zdev *d, struct zdev_zone *zones);
	void (*close)(struct zdev *d);
	/* Optional: ring and pool were just set (a device wrapping another passes them on). */
	void (*attach)(struct zdev *d);
};

struct zdev {
	const struct zdev_ops *ops;
	struct zdev_info info;
	struct zring *ring;
	const struct zpool *pool; /* buffers inside it are registered with the ring */
	/*
	 * Set by the nvme backend when the kernel refused a registered buffer
	 * for passthrough (Linux 6.1: -EINVAL for IORING_URING_CMD_FIXED); it
	 * then uses plain buffers and clears ring->fixed_buffers. The daemon
	 * may log it once; nothing else changes.
	 */
	bool fixed_refused;
};

struct zdev_opts {
	const char *path;
	const char *backend; /* "auto", "file", "zbd", "nvme" */
	uint64_t size;	     /* file backend, at creation: 0 for the default */
	uint64_t zone_size;
	uint32_t max_open;
	uint32_t max_active;
	uint32_t block; /* for a new format: 0 for the device's */
	bool format;	/* file backend: recreate with the geometry asked */
	bool readonly;	/* opened for reading only: never created, never written */
	bool shared;	/* readonly, beside the daemon that owns it: not claimed */
};

#define ZDEV_FILE_DEFAULT_SIZE	    (4 * GiB)
#define ZDEV_FILE_DEFAULT_ZONE_SIZE (64 * MiB)
/*
 * The image's header: device byte A is byte ZDEV_FILE_HDR + A of the file.
 * Also the image's unit: each zone's last unit holds its finish marker.
 */
#define ZDEV_FILE_HDR 4096u

int zdev_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err);
void zdev_close(struct zdev *d); /* accepts NULL */

/* Connects the device to the ring (created with info.ring_flags) and the buffer pool. */
void zdev_attach(struct zdev *d, struct zring *ring, const struct zpool *pool);

/*
 * An append's errors: -ENOSPC the zone is full, -EROFS it is read-only or
 * offline, -EBUSY too many zones are active, -EDQUOT the file system under an
 * emulated device is full (no zone's fault: none would do better), anything
 * else a fault of the zone.
 */
static inline void zdev_append(struct zdev *d, uint32_t zone, void *buf, uint32_t len,
			       struct zdev_io *io)
{
	d->ops->append(d, zone, buf, len, io);
}

static inline void zdev_read(struct zdev *d, uint64_t addr, void *buf, uint32_t len,
			     struct zdev_io *io)
{
	d->ops->read(d, addr, buf, len, io);
}

static inline void zdev_flush(struct zdev *d, struct zdev_io *io)
{
	d->ops->flush(d, io);
}

static inline void zdev_reset(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	d->ops->reset(d, zone, io);
}

static inline void zdev_finish(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	d->ops->finish(d, zone, io);
}

static inline int zdev_report(struct zdev *d, struct zdev_zone *zones)
{
	return d->ops->report(d, zones);
}

/*
 * The zone that holds the superblock: the first with a write pointer (SMR
 * disks often start with conventional zones). nr when there is none.
 */
uint32_t zdev_meta_zone(const struct zdev_zone *dz, uint32_t nr);

/* Whether buf lies in the registered pool, so fixed-buffer opcodes can carry it. */
bool zdev_fixed(const struct zdev *d, const void *buf);

/* Completes io with err from the event loop, never from inside the caller. */
void zdev_fail(struct zdev *d, struct zdev_io *io, int err);

/* Runs one operation to completion before returning: for start-up and recovery. */
int zdev_read_sync(struct zdev *d, uint64_t addr, void *buf, uint32_t len);
int zdev_append_sync(struct zdev *d, uint32_t zone, void *buf, uint32_t len, uint64_t *addr);
int zdev_flush_sync(struct zdev *d);
int zdev_reset_sync(struct zdev *d, uint32_t zone);
int zdev_finish_sync(struct zdev *d, uint32_t zone);

/* Backends. */
int zdev_file_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err);
/* A zoned block device (/dev/nvme0n1, /dev/sdX, /dev/nullb0) through libzbd. */
int zdev_zbd_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err);
/* An NVMe ZNS namespace through its generic char device (/dev/ngXnY) or block device. */
int zdev_nvme_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err);

/*
 * Helpers of every backend.
 * zdev_bad_append, zdev_bad_read: whether the operation breaks the
 *   interface's rules (whole logical blocks, aligned, inside the device):
 *   the backend fails it with -EINVAL.
 * zdev_block_ok: whether a block (a logical block, a store's) is a power of
 *   two from ZDEV_BLOCK_MIN up that divides ZDEV_BLOCK_MAX.
 * zdev_over_limit: whether another zone may not open while open ones are
 *   written to and not full (NVMe's Too Many Active Zones, emulated).
 * zdev_check_geometry: refuses --size/--zone-size that differ from the device's.
 */
bool zdev_bad_append(const struct zdev *d, uint32_t zone, uint32_t len);
bool zdev_bad_read(const struct zdev *d, uint64_t addr, uint32_t len);
bool zdev_block_ok(uint64_t block);
bool zdev_over_limit(const struct zdev_info *info, uint32_t open);
int zdev_check_geometry(const struct zdev_opts *o, const struct zdev_info *info, struct zerr *err);

/*
 * Helpers of the real-device backends.
 * zdev_sysfs_read: /sys/block/<blk>/<attr> into buf (newline dropped); 0 or -errno.
 * zdev_node_name: the kernel name of a block or char device node, from
 *   /sys/dev/{block,char}/MAJ:MIN ("nvme0n1", "ng0n1"), and which it is.
 * zdev_block_name: the same for a block device node only; 0 or -errno.
 * zdev_claim: opens the block device blk exclusively (O_EXCL), so that no
 *   other daemon uses the namespace, whichever of its nodes it names; *fd
 *   keeps the claim until closed. 0, or -EBUSY with a reason.
 */
int zdev_sysfs_read(const char *blk, const char *attr, char *buf, size_t len);
int zdev_sysfs_u64(const char *blk, const char *attr, uint64_t *v);
int zdev_node_name(const char *path, bool *blk, char *name, size_t len);
int zdev_block_name(const char *path, char *name, size_t len);
int zdev_claim(const char *blk, int *fd, struct zerr *err);

/*
 * libzbd's answers as the device interface's.
 * zdev_zbd_limits: the device's open and active zone limits, lowered to
 *   those asked for in o (on a real device they can only lower its own).
 * zdev_zbd_zone: one zone's report.
 * zdev_zbd_report: every zone of the device open as fd, into zones; rep has
 *   room for nr_zones reports. -EIO if the answer does not fit the geometry.
 */
void zdev_zbd_limits(struct zdev_info *info, const struct zbd_info *zi, const struct zdev_opts *o);
void zdev_zbd_zone(struct zdev_zone *z, const struct zbd_zone *r);
int zdev_zbd_report(int fd, const struct zdev_info *info, struct zbd_zone *rep,
		    struct zdev_zone *zones);

#endif
