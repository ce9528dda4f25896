/*
 * The dump format (little-endian): a 32-byte header, then one entry per key,
 * then an end record.
 *
 *   header: "ZAPDUMP\0", u32 version (1), u32 flags (0), u64 the sequence
 *           number the dump is a snapshot of, u32 0, u32 CRC32C of the 28
 *           bytes before it
 *   entry:  u8 type 1, 3 zero bytes, u32 key length, u64 value length, u64
 *           the version's sequence number, the key, the value, u32 CRC32C of
 *           everything of the entry before it
 *   end:    u8 type 2, 3 zero bytes, u32 0, u64 entries, u64 the snapshot's
 *           sequence number again, u32 CRC32C of those 24 bytes
 *
 * A dump is read whole or refused: a damaged entry or a missing end record
 * stops the restore with the entry's number.
 */
#include "dump.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

#define DUMP_MAGIC   "ZAPDUMP"
#define DUMP_VERSION 1
#define HEADER_LEN   32
#define HEAD_LEN     24
#define DEPTH	     32	  /* requests in flight */
#define SCAN_STEP    1000 /* keys a scan step asks for */
#define VALUE_MAX    (1ull << 40)
#define VALUE_CHUNK  (1u << 20) /* a value's memory grows from this as it is read */

enum { ENTRY = 1, END = 2 };

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint32_t get32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static int set_why(char *why, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_why(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

static void encode_head(uint8_t *h, uint8_t type, uint32_t klen, uint64_t vlen, uint64_t seq)
{
	memset(h, 0, HEAD_LEN);
	h[0] = type;
	le32(h + 4, klen);
	le64(h + 8, vlen);
	le64(h + 16, seq);
}

/* --- dump --- */

struct dumper {
	FILE *out;
	struct dump_stats *st;
	int err;
	char *why;
	size_t whylen;
	/* the keys of the scan step being dumped */
	uint8_t **keys;
	size_t *klens;
	size_t n, cap;
};

struct get_arg {
	struct dumper *d;
	size_t klen;
	uint8_t key[];
};

static int write_entry(struct dumper *d, const uint8_t *key, size_t klen, const void *val,
		       size_t vlen, uint64_t seq)
{
	uint8_t h[HEAD_LEN], t[4];
	uint32_t crc;

	encode_head(h, ENTRY, klen, vlen, seq);
	crc = crc32c(crc32c(crc32c(0, h, HEAD_LEN), key, klen), val, vlen);
	le32(t, crc);
	if (fwrite(h, 1, HEAD_LEN, d->out) != HEAD_LEN || fwrite(key, 1, klen, d->out) != klen ||
	    fwrite(val, 1, vlen, d->out) != vlen || fwrite(t, 1, 4, d->out) != 4)
		return set_why(d->why, d->whylen, errno ? -errno : -EIO, "writing the dump: %s",
			       strerror(errno ? errno : EIO));
	d->st->keys++;
	d->st->bytes += vlen;
	return 0;
}

static void got_value(zap_client *c, const struct zap_result *r, void *arg)
{
	struct get_arg *g = arg;
	struct dumper *d = g->d;

	(void)c;
	/* The scan listed only keys the snapshot holds: a get must find each. */
	if (!d->err && r->err)
		d->err = r->err == -ESTALE
			     ? r->err
			     : set_why(d->why, d->whylen, r->err, "get: %s", zap_strerror(r->err));
	if (!d->err && !r->err)
		d->err = write_entry(d, g->key, g->klen, r->val, r->vlen, r->info.seq);
	free(r->val);
	free(g);
}

static int keep_key(const void *key, size_t klen, void *arg)
{
	struct dumper *d = arg;

	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : SCAN_STEP;
		uint8_t **k = realloc(d->keys, cap * sizeof(*k));
		size_t *l = k ? realloc(d->klens, cap * sizeof(*l)) : NULL;

		if (k)
			d->keys = k;
		if (!k || !l)
			return -ENOMEM;
		d->klens = l;
		d->cap = cap;
	}
	d->keys[d->n] = malloc(klen);
	if (!d->keys[d->n])
		return -ENOMEM;
	memcpy(d->keys[d->n], key, klen);
	d->klens[d->n++] = klen;
	return 0;
}

/* Gets the step's keys, DEPTH at a time; the entries are written as the values come. */
static int dump_step(zap_client *c, struct dumper *d)
{
	int ret = 0;

	for (size_t i = 0; i < d->n && !ret && !d->err; i++) {
		struct get_arg *g = malloc(sizeof(*g) + d->klens[i]);

		if (!g)
			return -ENOMEM;
		g->d = d;
		g->klen = d->klens[i];
		memcpy(g->key, d->keys[i], g->klen);
		ret = zap_get_async(c, g->key, g->klen, got_value, g);
		if (ret)
			free(g);
		else if (zap_pending(c) >= DEPTH)
			ret = zap_wait_all(c);
	}
	if (!ret)
		ret = zap_wait_all(c);
	for (size_t i = 0; i < d->n; i++)
		free(d->keys[i]);
	d->n = 0;
	return ret ? ret : d->err;
}

static int write_header(struct dumper *d)
{
	uint8_t h[HEADER_LEN] = { 0 };

	memcpy(h, DUMP_MAGIC, 8);
	le32(h + 8, DUMP_VERSION);
	le64(h + 16, d->st->seq_start);
	le32(h + 28, crc32c(0, h, 28));
	return fwrite(h, 1, HEADER_LEN, d->out) == HEADER_LEN ? 0 : -EIO;
}

static int write_end(struct dumper *d)
{
	uint8_t h[HEAD_LEN + 4];

	encode_head(h, END, 0, d->st->keys, d->st->seq_end);
	le32(h + HEAD_LEN, crc32c(0, h, HEAD_LEN));
	if (fwrite(h, 1, sizeof(h), d->out) != sizeof(h) || fflush(d->out))
		return -EIO;
	return 0;
}

/* Why the dump's snapshot failed it, when the daemon's error says nothing of snapshots. */
static int snapshot_why(int err, char *why, size_t whylen)
{
	if (err == -EINVAL)
		return set_why(
		    why, whylen, -EPROTO,
		    "the daemon cannot take snapshots: it is older than this zappend-cli");
	if (err == -EBUSY)
		return set_why(why, whylen, err,
			       "the daemon has too many snapshots open: retry once a dump ends");
	if (err == -ESTALE)
		return set_why(
		    why, whylen, err,
		    "the daemon gave up the dump's snapshot (a put needed the room it "
		    "held, too many keys changed, or the connection was lost): dump again");
	return err;
}

int dump_write(zap_client *c, const void *prefix, size_t plen, FILE *out, struct dump_stats *st,
	       char *why, size_t whylen)
{
	struct dumper d = { .out = out, .st = st, .why = why, .whylen = whylen };
	uint64_t cursor = 0;
	int ret;

	memset(st, 0, sizeof(*st));
	*why = 0;
	ret = zap_snapshot(c, &st->seq_start);
	if (ret)
		ret = snapshot_why(ret, why, whylen);
	st->seq_end = st->seq_start;
	if (!ret)
		ret = write_header(&d);
	do {
		if (!ret)
			ret = zap_scan(c, prefix, plen, &cursor, SCAN_STEP, keep_key, &d);
		if (!ret)
			ret = dump_step(c, &d);
		if (ret == -ESTALE)
			snapshot_why(ret, why, whylen);
	} while (!ret && cursor);
	if (!ret)
		ret = write_end(&d);
	zap_snapshot_end(c);
	for (size_t i = 0; i < d.n; i++)
		free(d.keys[i]);
	free(d.keys);
	free(d.klens);
	if (ret && !*why)
		set_why(why, whylen, ret, "%s",
			ret == -EIO ? "writing the dump failed" : zap_strerror(ret));
	return ret;
}

/* --- reading a dump --- */

/* Reads n bytes; a short read is a truncated dump. */
static int read_exact(FILE *in, void *buf, size_t n)
{
	if (fread(buf, 1, n, in) == n)
		return 0;
	return ferror(in) ? -EIO : -EBADMSG;
}

/*
 * A value of vlen bytes, into memory that grows as its bytes arrive: a
 * damaged length costs what the dump really holds, not what it claims.
 */
static int read_value(FILE *in, uint64_t vlen, void **out)
{
	size_t cap = vlen < VALUE_CHUNK ? vlen : VALUE_CHUNK, got = 0, n;
	uint8_t *buf = malloc(cap ? cap : 1), *nb;

	while (buf && got < vlen) {
		if (got == cap) {
			cap = vlen - cap < cap ? vlen : 2 * cap;
			nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		n = fread(buf + got, 1, cap - got, in);
		if (!n) {
			free(buf);
			return ferror(in) ? -EIO : -EBADMSG;
		}
		got += n;
	}
	if (got < vlen) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	return 0;
}

int dump_begin(struct dump_reader *r)
{
	uint8_t h[HEADER_LEN];

	memset(r->st, 0, sizeof(*r->st));
	r->n = 0;
	*r->why = 0;
	if (read_exact(r->in, h, HEADER_LEN) || memcmp(h, DUMP_MAGIC, 8))
		return set_why(r->why, r->whylen, -EBADMSG,
			       "not a zappend dump (no ZAPDUMP header)");
	if (get32(h + 28) != crc32c(0, h, 28))
		return set_why(r->why, r->whylen, -EBADMSG, "the dump's header is damaged");
	if (get32(h + 8) != DUMP_VERSION)
		return set_why(r->why, r->whylen, -EPROTONOSUPPORT,
			       "a dump of version %" PRIu32 ", this zappend-cli reads version %d",
			       get32(h + 8), DUMP_VERSION);
	r->st->seq_start = get64(h + 16);
	return 0;
}

static int read_end(struct dump_reader *r, const uint8_t *h)
{
	uint8_t t[4];

	if (read_exact(r->in, t, 4) || get32(t) != crc32c(0, h, HEAD_LEN))
		return set_why(r->why, r->whylen, -EBADMSG, "the end record is damaged");
	if (get64(h + 8) != r->n)
		return set_why(r->why, r->whylen, -EBADMSG,
			       "the end record counts %" PRIu64 " entries, the dump holds %" PRIu64,
			       get64(h + 8), r->n);
	if (fgetc(r->in) != EOF)
		return set_why(r->why, r->whylen, -EBADMSG, "data after the end record");
	r->st->seq_end = get64(h + 16);
	return 0;
}

static int read_entry(struct dump_reader *r, const uint8_t *h, struct dump_entry *e)
{
	uint64_t vlen = get64(h + 8);
	uint8_t t[4];
	int ret;

	e->klen = get32(h + 4);
	e->seq = get64(h + 16);
	/* A length no value can have: a damaged header, not a reason to ask for memory. */
	if (!e->klen || e->klen > ZAP_KEY_MAX_LEN || vlen > VALUE_MAX)
		return set_why(r->why, r->whylen, -EBADMSG,
			       "entry %" PRIu64 ": a key of %zu bytes, a value of %" PRIu64
			       " bytes: damaged",
			       r->n + 1, e->klen, vlen);
	e->vlen = vlen;
	e->val = NULL;
	ret = read_exact(r->in, e->key, e->klen);
	if (!ret)
		ret = read_value(r->in, vlen, &e->val);
	if (!ret)
		ret = read_exact(r->in, t, 4);
	if (!ret &&
	    get32(t) != crc32c(crc32c(crc32c(0, h, HEAD_LEN), e->key, e->klen), e->val, vlen))
		ret = -EBADMSG;
	if (ret) {
		free(e->val);
		e->val = NULL;
		return set_why(r->why, r->whylen, ret,
			       "entry %" PRIu64 " (a value of %" PRIu64 " bytes): %s", r->n + 1,
			       vlen, ret == -EBADMSG ? "damaged or cut short" : strerror(-ret));
	}
	r->n++;
	r->st->keys++;
	r->st->bytes += vlen;
	return 1;
}

int dump_next(struct dump_reader *r, struct dump_entry *e)
{
	uint8_t h[HEAD_LEN];

	if (read_exact(r->in, h, HEAD_LEN))
		return set_why(r->why, r->whylen, -EBADMSG,
			       "cut short after %" PRIu64 " entries: no end record", r->n);
	if (h[0] == END)
		return read_end(r, h);
	if (h[0] != ENTRY)
		return set_why(r->why, r->whylen, -EBADMSG, "entry %" PRIu64 ": unknown type %u",
			       r->n + 1, h[0]);
	return read_entry(r, h, e);
}

/* --- restore --- */

struct restorer {
	int err;
	char *why;
	size_t whylen;
};

struct put_arg {
	struct restorer *rs;
	void *val; /* the put's value: it must live until the put is done */
};

static void put_done(zap_client *c, const struct zap_result *r, void *arg)
{
	struct put_arg *p = arg;

	(void)c;
	if (!p->rs->err && r->err)
		p->rs->err =
		    set_why(p->rs->why, p->rs->whylen, r->err, "put: %s", zap_strerror(r->err));
	free(p->val);
	free(p);
}

static int restore_entry(zap_client *c, struct restorer *rs, struct dump_entry *e)
{
	struct put_arg *p = malloc(sizeof(*p));
	int ret = p ? 0 : -ENOMEM;

	if (p) {
		*p = (struct put_arg){ rs, e->val };
		ret = zap_put_async(c, e->key, e->klen, e->val, e->vlen, put_done, p);
	}
	if (ret) {
		free(p);
		free(e->val);
		return set_why(rs->why, rs->whylen, ret, "put: %s", zap_strerror(ret));
	}
	return zap_pending(c) >= DEPTH ? zap_wait_all(c) : 0;
}

int dump_restore(zap_client *c, FILE *in, struct dump_stats *st, char *why, size_t whylen)
{
	struct dump_reader rd = { .in = in, .st = st, .why = why, .whylen = whylen };
	struct restorer rs = { .why = why, .whylen = whylen };
	struct dump_entry e;
	int ret = dump_begin(&rd);

	while (!ret && !rs.err) {
		ret = dump_next(&rd, &e);
		if (ret <= 0)
			break;
		ret = restore_entry(c, &rs, &e);
	}
	if (zap_wait_all(c) && !ret)
		ret = -EIO;
	if (!ret)
		ret = rs.err;
	if (ret && !*why)
		set_why(why, whylen, ret, "%s", zap_strerror(ret));
	return ret;
}
