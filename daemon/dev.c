#include "dev.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "pool.h"

int zdev_open(const struct zdev_opts *o, struct zdev **out, struct zerr *err)
{
	struct stat st;

	if (!strcmp(o->backend, "file"))
		return zdev_file_open(o, out, err);
	if (strcmp(o->backend, "auto"))
		return zerr_set(err, -EINVAL, "unknown backend '%s' (this build has: auto, file)",
				o->backend);
	if (stat(o->path, &st) < 0) {
		if (errno == ENOENT)
			return zdev_file_open(o, out, err);
		return zerr_set(err, -errno, "%s: %s", o->path, strerror(errno));
	}
	if (S_ISREG(st.st_mode))
		return zdev_file_open(o, out, err);
	return zerr_set(err, -ENODEV,
			"%s: not a regular file; zoned block and NVMe devices need a "
			"backend this build lacks",
			o->path);
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
}

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

int zdev_finish_sync(struct zdev *d, uint32_t zone)
{
	struct sync_io s = { .io.done = sync_done };

	zdev_finish(d, zone, &s.io);
	return sync_wait(d, &s);
}
