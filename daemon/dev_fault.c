/*
 * The fault-injecting device (tests only; see dev_fault.h). Every operation
 * goes to the inner device with an I/O of the wrapper's own, so that the
 * wrapper sees each completion first: it may then change the answer, or hold
 * it back on an io_uring timeout so that completions reach the store out of
 * order. Faults are drawn from a seeded generator, so a run repeats.
 */
#include "dev_fault.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NO_ADDR	   UINT64_MAX
#define MAX_RANGES 16u

struct fault_range {
	uint64_t addr, len;
};

struct fault_spec {
	uint64_t seed;
	double delay, flush_delay; /* percent of completions held back */
	uint64_t delay_us, flush_delay_us;
	double append_fail, append_lie, append_short, read_fail;
	struct fault_range bad[MAX_RANGES];
	unsigned nbad;
	bool unwritten;
	uint64_t max_append;
	uint64_t bad_addr_at;
	uint64_t append_faults_for; /* appends that may fail, tear or lie: 0 for all */
};

enum { LIE_NONE, LIE_FAIL, LIE_ADDR };

struct fault_dev {
	struct zdev dev;
	struct zdev *in;
	struct fault_spec spec;
	uint64_t rng;
	uint64_t appends; /* seen so far, refused ones too */
	int probe;	  /* read-only on the image: where its holes are */
	struct zdev_zone *zones;
	uint64_t *landed; /* per zone: where its latest append landed, NO_ADDR if none */
};

/* One operation on its way through the inner device. */
struct fault_io {
	struct zdev_io in;
	struct zdev_io *out;
	struct fault_dev *f;
	int kind;
	int lie;
	uint32_t zone;
	struct zring_op timer;
	struct __kernel_timespec ts;
};

static struct fault_dev *fdev(struct zdev *d)
{
	return container_of(d, struct fault_dev, dev);
}

/* --- the spec --- */

static int parse_pct(const char *v, double *pct)
{
	char *end;

	errno = 0;
	*pct = strtod(v, &end);
	if (errno || end == v || *end || !(*pct >= 0 && *pct <= 100))
		return -EINVAL;
	return 0;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

/* "A:B" into a and b, each shorter than len. */
static int split_pair(const char *v, char *a, char *b, size_t len)
{
	const char *colon = strchr(v, ':');

	if (!colon || (size_t)(colon - v) >= len || strlen(colon + 1) >= len)
		return -EINVAL;
	memcpy(a, v, colon - v);
	a[colon - v] = 0;
	strcpy(b, colon + 1);
	return 0;
}

static int parse_delay(const char *v, double *pct, uint64_t *us)
{
	char a[64], b[64];

	if (split_pair(v, a, b, sizeof(a)) || parse_pct(a, pct) || parse_u64(b, us))
		return -EINVAL;
	/* A hold of more than a minute would only look like a hang. */
	return *us <= 60000000 ? 0 : -EINVAL;
}

static int k_seed(struct fault_spec *sp, const char *v)
{
	return parse_u64(v, &sp->seed);
}

static int k_delay(struct fault_spec *sp, const char *v)
{
	return parse_delay(v, &sp->delay, &sp->delay_us);
}

static int k_flush_delay(struct fault_spec *sp, const char *v)
{
	return parse_delay(v, &sp->flush_delay, &sp->flush_delay_us);
}

static int k_append_fail(struct fault_spec *sp, const char *v)
{
	return parse_pct(v, &sp->append_fail);
}

static int k_append_lie(struct fault_spec *sp, const char *v)
{
	return parse_pct(v, &sp->append_lie);
}

static int k_append_short(struct fault_spec *sp, const char *v)
{
	return parse_pct(v, &sp->append_short);
}

static int k_read_fail(struct fault_spec *sp, const char *v)
{
	return parse_pct(v, &sp->read_fail);
}

static int k_read_fail_at(struct fault_spec *sp, const char *v)
{
	char a[64], b[64];
	struct fault_range *r = &sp->bad[sp->nbad];

	if (sp->nbad == MAX_RANGES || split_pair(v, a, b, sizeof(a)) || parse_size(a, &r->addr) ||
	    parse_size(b, &r->len) || !r->len)
		return -EINVAL;
	sp->nbad++;
	return 0;
}

static int k_unwritten(struct fault_spec *sp, const char *v)
{
	if (strcmp(v, "0") && strcmp(v, "1"))
		return -EINVAL;
	sp->unwritten = *v == '1';
	return 0;
}

static int k_max_append(struct fault_spec *sp, const char *v)
{
	return parse_size(v, &sp->max_append) || !sp->max_append ? -EINVAL : 0;
}

static int k_bad_addr_at(struct fault_spec *sp, const char *v)
{
	return parse_u64(v, &sp->bad_addr_at) || !sp->bad_addr_at ? -EINVAL : 0;
}

static int k_append_faults_for(struct fault_spec *sp, const char *v)
{
	return parse_u64(v, &sp->append_faults_for) || !sp->append_faults_for ? -EINVAL : 0;
}

static const struct {
	const char *name;
	int (*parse)(struct fault_spec *sp, const char *v);
	const char *form;
} keys[] = {
	{ "seed", k_seed, "a number" },
	{ "delay", k_delay, "PCT:MAXUS" },
	{ "flush_delay", k_flush_delay, "PCT:MAXUS" },
	{ "append_fail", k_append_fail, "a percentage" },
	{ "append_lie", k_append_lie, "a percentage" },
	{ "append_short", k_append_short, "a percentage" },
	{ "read_fail", k_read_fail, "a percentage" },
	{ "read_fail_at", k_read_fail_at, "ADDR:LEN (sizes; at most 16 of them)" },
	{ "unwritten_read_fail", k_unwritten, "0 or 1" },
	{ "max_append", k_max_append, "a size" },
	{ "bad_addr_at", k_bad_addr_at, "N, the N-th append from 1" },
	{ "append_faults_for", k_append_faults_for, "N, the first N appends" },
};

static int parse_item(struct fault_spec *sp, char *item, struct zerr *err)
{
	char *eq = strchr(item, '=');

	if (!eq)
		return zerr_set(err, -EINVAL, "ZAPPEND_FAULT: '%s' is not key=value", item);
	*eq = 0;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strcmp(item, keys[i].name))
			continue;
		if (keys[i].parse(sp, eq + 1))
			return zerr_set(err, -EINVAL, "ZAPPEND_FAULT: %s=%s: wants %s", item,
					eq + 1, keys[i].form);
		return 0;
	}
	return zerr_set(err, -EINVAL,
			"ZAPPEND_FAULT: unknown key '%s' (keys: seed, delay, flush_delay, "
			"append_fail, append_lie, append_short, read_fail, read_fail_at, "
			"unwritten_read_fail, max_append, bad_addr_at, append_faults_for)",
			item);
}

static int parse_spec(const char *spec, struct fault_spec *sp, struct zerr *err)
{
	char *copy = strdup(spec), *save = NULL;
	int ret = 0;

	if (!copy)
		return zerr_set(err, -ENOMEM, "out of memory");
	sp->seed = 1;
	for (char *it = strtok_r(copy, ",", &save); it && !ret; it = strtok_r(NULL, ",", &save))
		ret = parse_item(sp, it, err);
	free(copy);
	return ret;
}

/* What can only be checked against the device. */
static int check_spec(const struct fault_spec *sp, const struct zdev_info *info, struct zerr *err)
{
	if (sp->max_append && (sp->max_append % info->block || sp->max_append > info->max_append))
		return zerr_set(err, -EINVAL,
				"ZAPPEND_FAULT: max_append=%llu: wants a multiple of %u up to %u",
				(unsigned long long)sp->max_append, info->block, info->max_append);
	if (sp->unwritten && strcmp(info->backend, "file"))
		return zerr_set(err, -EINVAL,
				"ZAPPEND_FAULT: unwritten_read_fail needs the file backend, not %s",
				info->backend);
	return 0;
}

/* --- faults --- */

static uint64_t rnd(struct fault_dev *f)
{
	/* splitmix64 */
	uint64_t z = (f->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A fault that is off draws nothing: adding one key leaves the others' choices as they were. */
static bool roll(struct fault_dev *f, double pct)
{
	return pct > 0 && (rnd(f) >> 11) * 0x1.0p-53 * 100 < pct;
}

/* Whether [addr, addr + len) touches a block of the image never written (a hole). */
static bool touches_hole(const struct fault_dev *f, uint64_t addr, uint32_t len)
{
	off_t off = ZDEV_FILE_HDR + addr;
	off_t hole = lseek(f->probe, off, SEEK_HOLE);

	return hole >= 0 && (uint64_t)hole < (uint64_t)off + len;
}

static bool read_faulty(struct fault_dev *f, uint64_t addr, uint32_t len)
{
	for (unsigned i = 0; i < f->spec.nbad; i++) {
		const struct fault_range *r = &f->spec.bad[i];

		if (addr < r->addr + r->len && r->addr < addr + len)
			return true;
	}
	if (f->spec.unwritten && touches_hole(f, addr, len))
		return true;
	return roll(f, f->spec.read_fail);
}

/* --- completions --- */

static void deliver(struct fault_io *fio)
{
	struct zdev_io *out = fio->out;

	free(fio);
	out->done(out);
}

static void prep_hold(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct fault_io *fio = container_of(op, struct fault_io, timer);

	io_uring_prep_timeout(sqe, &fio->ts, 0, 0);
}

static void hold_done(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	deliver(container_of(op, struct fault_io, timer));
}

/* Holds the completion back on a timeout of the ring, if the dice say so. */
static bool held_back(struct fault_dev *f, struct fault_io *fio)
{
	bool flush = fio->kind == ZDEV_IO_FLUSH;
	uint64_t max = flush ? f->spec.flush_delay_us : f->spec.delay_us, us;

	if (!roll(f, flush ? f->spec.flush_delay : f->spec.delay))
		return false;
	us = rnd(f) % (max + 1);
	fio->ts.tv_sec = us / 1000000;
	fio->ts.tv_nsec = us % 1000000 * 1000;
	fio->timer.prep = prep_hold;
	fio->timer.complete = hold_done;
	zring_queue(f->dev.ring, &fio->timer);
	return true;
}

static void append_result(struct fault_dev *f, struct fault_io *fio)
{
	struct zdev_io *out = fio->out;
	uint64_t landed = f->landed[fio->zone];
	const struct zdev_zone *z = &f->zones[fio->zone];

	out->addr = fio->in.addr;
	if (fio->in.res < 0)
		return;
	if (fio->lie == LIE_FAIL)
		out->res = -EIO;
	else if (fio->lie == LIE_ADDR)
		out->addr = landed != NO_ADDR ? landed : z->start + z->cap;
	f->landed[fio->zone] = fio->in.addr;
}

static void inner_done(struct zdev_io *in)
{
	struct fault_io *fio = container_of(in, struct fault_io, in);
	struct fault_dev *f = fio->f;

	fio->out->res = in->res;
	f->dev.fixed_refused = f->in->fixed_refused;
	if (fio->kind == ZDEV_IO_APPEND)
		append_result(f, fio);
	else if (fio->kind == ZDEV_IO_RESET && in->res >= 0)
		f->landed[fio->zone] = NO_ADDR;
	if (!held_back(f, fio))
		deliver(fio);
}

/* --- operations --- */

/*
 * The wrapper's I/O for out, with out's fields filled as a backend fills
 * them (the store may look at len once the operation is done).
 */
static struct fault_io *fio_new(struct zdev *d, struct zdev_io *out, int kind, uint32_t zone,
				void *buf, uint32_t len)
{
	struct fault_io *fio = calloc(1, sizeof(*fio));

	out->dev = d;
	out->kind = kind;
	out->zone = zone;
	out->buf = buf;
	out->len = len;
	if (!fio) {
		zdev_fail(d, out, -ENOMEM);
		return NULL;
	}
	fio->f = fdev(d);
	fio->out = out;
	fio->kind = kind;
	fio->zone = zone;
	fio->in.done = inner_done;
	return fio;
}

static void fio_fail(struct fault_io *fio, int err)
{
	zdev_fail(fio->f->in, &fio->in, err);
}

/* How much of a torn append reaches the media: k blocks of n, k in [1, n-1], or none of one. */
static uint32_t torn_len(struct fault_dev *f, uint32_t len)
{
	uint32_t block = f->dev.info.block, blocks = len / block;

	return blocks > 1 ? (uint32_t)(1 + rnd(f) % (blocks - 1)) * block : 0;
}

static void fault_append(struct zdev *d, uint32_t zone, void *buf, uint32_t len, struct zdev_io *io)
{
	struct fault_dev *f = fdev(d);
	uint64_t n = ++f->appends;
	struct fault_io *fio = fio_new(d, io, ZDEV_IO_APPEND, zone, buf, len);
	bool faulty = !f->spec.append_faults_for || n <= f->spec.append_faults_for;

	if (!fio)
		return;
	if (zone >= d->info.nr_zones) {
		fio_fail(fio, -EINVAL);
		return;
	}
	if (f->spec.max_append && len > f->spec.max_append) {
		/* As the nvme backend: too long for one command, so never sent. */
		fio_fail(fio, -EINVAL);
		return;
	}
	if (n == f->spec.bad_addr_at) {
		fio->lie = LIE_ADDR;
	} else if (faulty && roll(f, f->spec.append_fail)) {
		fio_fail(fio, -EIO);
		return;
	} else if (faulty && roll(f, f->spec.append_short)) {
		fio->lie = LIE_FAIL;
		len = torn_len(f, len);
		if (!len) {
			fio_fail(fio, -EIO);
			return;
		}
	} else if (faulty && roll(f, f->spec.append_lie)) {
		fio->lie = LIE_FAIL;
	}
	zdev_append(f->in, zone, buf, len, &fio->in);
}

static void fault_read(struct zdev *d, uint64_t addr, void *buf, uint32_t len, struct zdev_io *io)
{
	struct fault_dev *f = fdev(d);
	struct fault_io *fio = fio_new(d, io, ZDEV_IO_READ, 0, buf, len);

	io->addr = addr;
	if (!fio)
		return;
	if (read_faulty(f, addr, len))
		fio_fail(fio, -EIO);
	else
		zdev_read(f->in, addr, buf, len, &fio->in);
}

static void fault_flush(struct zdev *d, struct zdev_io *io)
{
	struct fault_io *fio = fio_new(d, io, ZDEV_IO_FLUSH, 0, NULL, 0);

	if (fio)
		zdev_flush(fdev(d)->in, &fio->in);
}

static void fault_reset(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	struct fault_io *fio = fio_new(d, io, ZDEV_IO_RESET, zone, NULL, 0);

	if (!fio)
		return;
	if (zone >= d->info.nr_zones)
		fio_fail(fio, -EINVAL);
	else
		zdev_reset(fdev(d)->in, zone, &fio->in);
}

static void fault_finish(struct zdev *d, uint32_t zone, struct zdev_io *io)
{
	struct fault_io *fio = fio_new(d, io, ZDEV_IO_FINISH, zone, NULL, 0);

	if (fio)
		zdev_finish(fdev(d)->in, zone, &fio->in);
}

static int fault_report(struct zdev *d, struct zdev_zone *zones)
{
	return zdev_report(fdev(d)->in, zones);
}

static void fault_attach(struct zdev *d)
{
	zdev_attach(fdev(d)->in, d->ring, d->pool);
}

/* Frees the wrapper, not the device inside it. */
static void fault_free(struct fault_dev *f)
{
	if (f->probe >= 0)
		close(f->probe);
	free(f->zones);
	free(f->landed);
	free(f);
}

static void fault_close(struct zdev *d)
{
	struct fault_dev *f = fdev(d);

	zdev_close(f->in);
	fault_free(f);
}

static const struct zdev_ops fault_ops = {
	.append = fault_append,
	.read = fault_read,
	.flush = fault_flush,
	.reset = fault_reset,
	.finish = fault_finish,
	.report = fault_report,
	.close = fault_close,
	.attach = fault_attach,
};

static int fault_setup(struct fault_dev *f, const struct zdev_opts *o, struct zerr *err)
{
	uint32_t nr = f->in->info.nr_zones;
	int ret;

	f->zones = calloc(nr, sizeof(*f->zones));
	f->landed = malloc(nr * sizeof(*f->landed));
	if (!f->zones || !f->landed)
		return zerr_set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < nr; i++)
		f->landed[i] = NO_ADDR;
	ret = zdev_report(f->in, f->zones);
	if (ret < 0)
		return zerr_set(err, ret, "cannot report zones: %s", strerror(-ret));
	if (f->spec.unwritten) {
		f->probe = open(o->path, O_RDONLY | O_CLOEXEC);
		if (f->probe < 0)
			return zerr_set(err, -errno, "ZAPPEND_FAULT: cannot open %s: %s", o->path,
					strerror(errno));
	}
	return 0;
}

int zdev_fault_wrap(const char *spec, const struct zdev_opts *o, struct zdev **d, struct zerr *err)
{
	struct fault_dev *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return zerr_set(err, -ENOMEM, "out of memory");
	f->probe = -1;
	f->in = *d;
	ret = parse_spec(spec, &f->spec, err);
	if (!ret)
		ret = check_spec(&f->spec, &f->in->info, err);
	if (!ret)
		ret = fault_setup(f, o, err);
	if (ret) {
		fault_free(f);
		return ret;
	}
	f->dev.ops = &fault_ops;
	f->dev.info = f->in->info;
	if (f->spec.max_append)
		f->dev.info.max_append = f->spec.max_append;
	f->rng = f->spec.seed;
	*d = &f->dev;
	return 0;
}
