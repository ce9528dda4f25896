/*
 * Mount: read (or write) the superblock, then rebuild the index: a full zone
 * from its zone summary, any other written zone (or a full one whose summary
 * is missing or damaged, or every zone with --rescan) by scanning it up to its
 * write pointer. Completion order is not
 * placement order, so nothing is assumed about where the newest records are:
 * every record names its key and sequence number, and the index keeps the
 * highest. A record whose CRC fails was torn by a crash (it was never
 * acknowledged) or rotted; either way it is skipped, never indexed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"
#include "recovery.h"
#include "summary.h"

/* How far sequence numbers jump past the highest seen when records could not be read. */
#define SEQ_AFTER_LOSS (1ull << 32)

/* Every record fits, however late in its block it starts: no format allows a longer one. */
#define SCAN_BUF (ZSUPER_REC_LIMIT + ZDEV_BLOCK_MAX)

/* A chunk of a multi-record value, held until all its siblings are found. */
struct part {
	uint8_t *key;
	uint16_t klen;
	uint32_t chunk, nchunks;
	uint64_t seq, vlen;
	struct zloc loc;
};

struct scan {
	struct store *s;
	uint8_t *buf;
	uint64_t at, len; /* device range held in buf */
	uint64_t max_seq;
	struct part *parts;
	size_t nparts, cparts;
	uint32_t written; /* zones with records */
	bool reserved;	  /* the index made room for all of them */
	uint64_t bad;	  /* bytes of the zone being scanned that could not be read */
	uint64_t bad_at;  /* the first of them, zone relative */
	uint64_t notes;	  /* puts and deletes found in it: what its summary lists */
	uint64_t need;	  /* the room a summary of them takes, at most */
};

/* Reads that fail are tried again before anything is given up: the fault may pass. */
#define READ_TRIES 3

/*
 * Reads len bytes at addr into buf. What the device fails to read is read
 * again in halves, down to single blocks; a block that still fails reads as
 * zeros, where no record starts, and counts in sc->bad: one bad block costs
 * the records in it, not the start.
 */
static int read_salvage(struct scan *sc, uint64_t addr, uint8_t *buf, uint32_t len)
{
	uint32_t half, block = sc->s->zones.block;
	int ret;

	for (int i = 0; i < READ_TRIES; i++) {
		ret = zdev_read_sync(sc->s->dev, addr, buf, len);
		if (ret >= 0 || ret == -ENOMEM)
			return ret < 0 ? ret : 0;
		if (len > block)
			break; /* the halves get their own tries */
	}
	if (len <= block) {
		memset(buf, 0, len);
		if (!sc->bad)
			sc->bad_at = addr % sc->s->zones.zone_size;
		sc->bad += len;
		return 0;
	}
	half = len / 2 / block * block;
	ret = read_salvage(sc, addr, buf, half);
	return ret ? ret : read_salvage(sc, addr + half, buf + half, len - half);
}

/* Reads from the block that holds addr, as much as the window takes, up to end. */
static int load(struct scan *sc, uint64_t addr, uint64_t end)
{
	uint32_t len;
	int ret;

	addr = addr / sc->s->zones.block * sc->s->zones.block;
	len = MIN(SCAN_BUF, end - addr);
	ret = read_salvage(sc, addr, sc->buf, len);

	if (ret < 0)
		return ret;
	sc->at = addr;
	sc->len = len;
	return 0;
}

static int apply(struct store *s, const uint8_t *key, size_t klen, struct zent *e)
{
	int ret = zidx_update(s->idx, key, klen, e, NULL);

	zent_done(e);
	return ret < 0 ? ret : 0;
}

static int keep_part(struct scan *sc, const struct zrec *r, uint64_t addr)
{
	struct part *p;

	if (sc->nparts == sc->cparts) {
		size_t n = sc->cparts ? 2 * sc->cparts : 64;
		struct part *np = realloc(sc->parts, n * sizeof(*np));

		if (!np)
			return -ENOMEM;
		sc->parts = np;
		sc->cparts = n;
	}
	p = &sc->parts[sc->nparts];
	p->key = malloc(r->klen);
	if (!p->key)
		return -ENOMEM;
	memcpy(p->key, r->key, r->klen);
	p->klen = r->klen;
	p->chunk = r->chunk;
	p->nchunks = r->nchunks;
	p->seq = r->seq;
	p->vlen = r->vlen;
	p->loc = (struct zloc){ addr, r->len };
	sc->nparts++;
	return 0;
}

static int found(struct scan *sc, const struct zrec *r, uint64_t addr)
{
	struct zent e = { .seq = r->seq, .loc = { addr, r->len } };

	/*
	 * Nothing this daemon writes looks like this (a record no buffer can
	 * hold, a sequence number past the index's): damage, or not ours.
	 */
	if (r->seq > ZIDX_MAX_SEQ || r->len > sc->s->rec_limit) {
		sc->s->st.torn_records++;
		if (sc->s->cfg.verify) {
			uint32_t zone = zones_of(&sc->s->zones, addr);

			store_log(sc->s, LOG_WARNING,
				  "zone %u offset %llu: a record no zappendd writes (skipped)",
				  zone, (unsigned long long)(addr - sc->s->zones.z[zone].start));
			sc->s->st.damaged++;
		}
		return 0;
	}
	sc->max_seq = MAX(sc->max_seq, r->seq);
	sc->s->st.recovered_records++;
	/* Key filters for GC, and the record lists of zones that will get a summary. */
	if (r->type == ZREC_PUT || r->type == ZREC_DEL)
		zones_note(&sc->s->zones, r, addr);
	switch (r->type) {
	case ZREC_PUT:
		if (r->nchunks > 1)
			return keep_part(sc, r, addr);
		e.nchunks = 1;
		return apply(sc->s, r->key, r->klen, &e);
	case ZREC_DEL:
		return apply(sc->s, r->key, r->klen, &e);
	default:
		return 0;
	}
}

/* Just past the last block below from that is not all zeros; 0 if none. */
static int last_written(struct scan *sc, const struct zone *z, uint64_t from, uint64_t *end);

/*
 * The record at pos, read into sc's window as needed: 0 and r; -ENOENT at
 * padding (or a hole, which reads as zeros); -EBADMSG when no whole record
 * is there (torn, damaged); a read's error.
 */
static int scan_record(struct scan *sc, uint64_t pos, uint64_t end, struct zrec *r)
{
	uint64_t avail;
	int ret;

	if (pos < sc->at ||
	    (pos + ZREC_HDR + ZREC_EXT > sc->at + sc->len && sc->at + sc->len < end)) {
		ret = load(sc, pos, end);
		if (ret)
			return ret;
	}
	avail = sc->at + sc->len - pos;
	ret = zrec_head(sc->buf + (pos - sc->at), avail, r);
	if (!ret && r->len > avail && pos + r->len <= end &&
	    pos / sc->s->zones.block * sc->s->zones.block > sc->at) {
		/* Straddles the window's end: the next window starts with it. */
		ret = load(sc, pos, end);
		if (ret)
			return ret;
		avail = sc->at + sc->len - pos;
	}
	if (ret)
		return ret == -ENOENT ? ret : -EBADMSG;
	ret = zrec_parse(sc->buf + (pos - sc->at), avail, sc->s->tag, r);
	if (ret == -EBADMSG)
		sc->s->st.torn_records++;
	return ret ? -EBADMSG : 0;
}

/*
 * Verify: whether the record at pos, which failed its checksum, was cut short
 * by a crash: zeros from a block boundary inside it to its end, where its
 * append stopped. Such an append never completed, so it was never
 * acknowledged; anything else is damage.
 */
static bool cut_short(const struct scan *sc, uint64_t pos)
{
	const uint8_t *p = sc->buf + (pos - sc->at);
	uint64_t avail = sc->at + sc->len - pos, last;
	struct zrec r;

	if (zrec_head(p, avail, &r) || r.len > avail)
		return false;
	for (last = r.len; last && !p[last - 1]; last--)
		;
	return store_block_up(sc->s, pos + last) < pos + r.len;
}

static void verify_bad_record(struct scan *sc, const struct zone *z, uint32_t zone, uint64_t pos)
{
	if (cut_short(sc, pos)) {
		store_log(sc->s, LOG_NOTICE,
			  "zone %u offset %llu: a record cut short by a crash (never "
			  "acknowledged; skipped)",
			  zone, (unsigned long long)(pos - z->start));
		sc->s->st.cut_short++;
		return;
	}
	store_log(sc->s, LOG_WARNING, "zone %u offset %llu: a damaged record (skipped)", zone,
		  (unsigned long long)(pos - z->start));
	sc->s->st.damaged++;
}

/*
 * Reads the zone's records up to its write pointer; a full zone's (whose
 * write pointer says nothing) up to its last written block. What cannot be
 * read is skipped, said once, and makes the zone's keys unknown, so that GC
 * keeps every tombstone that records there might need.
 */
static int scan_zone(struct scan *sc, struct zone *z)
{
	uint64_t pos = z->start, end = z->start + MIN(z->used, z->cap), stop = end, last = 0;
	uint32_t zone = zones_of(&sc->s->zones, z->start);
	bool in_damage = false;
	struct zrec r;
	int ret;

	/*
	 * No record starts past a full zone's last written block, but the last
	 * one may end past it, in zeros of its value: it is read up to the
	 * zone's capacity.
	 */
	if (z->state == ZS_FULL) {
		z->data_end = 0;
		ret = last_written(sc, z, z->cap, &last);
		if (ret)
			return ret;
		stop = z->start + last;
		end = z->start + z->cap;
	}
	sc->len = 0;
	sc->bad = 0;
	sc->notes = 0;
	sc->need = ZSUM_BASE_RESERVE;
	while (pos < stop) {
		ret = scan_record(sc, pos, end, &r);
		if (ret < 0 && ret != -EBADMSG && ret != -ENOENT)
			return ret;
		if (ret == -EBADMSG && !in_damage && sc->s->cfg.verify)
			verify_bad_record(sc, z, zone, pos);
		in_damage = ret == -EBADMSG;
		/* Padding, or a hole: the next append starts on a block. */
		if (ret == -ENOENT) {
			pos = store_block_up(sc->s, pos + 1);
			continue;
		}
		/*
		 * Torn or damaged: the records packed after it are whole, and a
		 * write cut short moves the zone's write pointer only past what it
		 * wrote, so appends in flight beside it may have landed inside the
		 * length its header claims. The next record may start 8 bytes on.
		 */
		if (ret) {
			pos += ZREC_ALIGN;
			continue;
		}
		ret = found(sc, &r, pos);
		if (ret)
			return ret;
		/* What verify holds the zone's summary against; a start needs none of it. */
		if (sc->s->cfg.verify && (r.type == ZREC_PUT || r.type == ZREC_DEL)) {
			sc->notes++;
			sc->need += zones_entry_meta(r.klen, r.nchunks > 1);
		}
		pos += r.len;
		z->data_end = MAX(z->data_end, store_block_up(sc->s, pos - z->start));
	}
	if (sc->bad) {
		store_log(sc->s, LOG_WARNING,
			  "zone %u: %llu bytes could not be read (the first at offset %llu): the "
			  "records there are lost, and a key whose newest version was there reads "
			  "as the version before",
			  zone, (unsigned long long)sc->bad, (unsigned long long)sc->bad_at);
		sc->s->st.unreadable_bytes += sc->bad;
		zones_forget_keys(&sc->s->zones, zone);
	}
	return 0;
}

static int partcmp(const void *a, const void *b)
{
	const struct part *x = a, *y = b;
	int c = memcmp(x->key, y->key, MIN(x->klen, y->klen));

	if (c || x->klen != y->klen)
		return c ? c : x->klen < y->klen ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

static bool same_put(const struct part *a, const struct part *b)
{
	return a->klen == b->klen && !memcmp(a->key, b->key, a->klen) && a->seq == b->seq;
}

/*
 * Whether q is chunk `have` of the put p begins; copies of one chunk (GC
 * moved it) are alike, so the first counts. A part naming another chunk
 * count or length is not of this put, whatever its key and seq say.
 */
static bool next_chunk(const struct part *p, const struct part *q, uint32_t have)
{
	return q->chunk == have && q->nchunks == p->nchunks && q->vlen == p->vlen;
}

/* A value in several records counts only when every one of them was found. */
static int assemble(struct scan *sc)
{
	if (sc->nparts)
		qsort(sc->parts, sc->nparts, sizeof(*sc->parts), partcmp);
	for (size_t i = 0, j; i < sc->nparts; i = j) {
		const struct part *p = &sc->parts[i];
		struct zent e = { .seq = p->seq, .nchunks = p->nchunks };
		uint32_t have = 0;

		for (j = i; j < sc->nparts && same_put(p, &sc->parts[j]); j++)
			have += next_chunk(p, &sc->parts[j], have);
		if (have != p->nchunks)
			continue;
		e.chunks = malloc(p->nchunks * sizeof(*e.chunks));
		if (!e.chunks)
			return -ENOMEM;
		have = 0;
		for (size_t k = i; k < j; k++) {
			if (next_chunk(p, &sc->parts[k], have))
				e.chunks[have++] = sc->parts[k].loc;
		}
		if (apply(sc->s, p->key, p->klen, &e))
			return -ENOMEM;
	}
	return 0;
}

static int count_live(const void *key, size_t klen, const struct zent *e, void *arg)
{
	/* Whether GC tried to drop a tombstone before is not known: worth a try. */
	zones_add_entry(arg, e, false);
	return 0;
}

/*
 * The superblock's copies, ZSUPER_GAP apart (so that one bad block or page
 * takes one copy at most), with zeros between them, each append within what
 * the device takes in one.
 */
static int write_super(struct store *s, const struct zdev_zone *mz, uint32_t meta)
{
	uint32_t step = MIN(ZSUPER_GAP, s->dev->info.max_append) / ZDEV_BLOCK_MAX * ZDEV_BLOCK_MAX;
	uint64_t pos = 0, end = (ZSUPER_COPIES - 1) * ZSUPER_GAP + ZSUPER_COPY_LEN;
	uint8_t *buf, *zeros;
	int ret = 0;

	if (posix_memalign((void **)&buf, ZDEV_BLOCK_MAX, step))
		return -ENOMEM;
	if (posix_memalign((void **)&zeros, ZDEV_BLOCK_MAX, step)) {
		free(buf);
		return -ENOMEM;
	}
	memset(zeros, 0, step);
	memset(buf, 0, step);
	zsuper_encode(&s->sb, buf);
	while (ret >= 0 && pos < end) {
		bool copy = pos % ZSUPER_GAP == 0;
		uint32_t len = MIN(copy ? step : ZSUPER_GAP - pos % ZSUPER_GAP, end - pos);
		uint64_t addr;

		len = MIN(len, step);
		ret = zdev_append_sync(s->dev, meta, copy ? buf : zeros, len, &addr);
		if (ret >= 0 && addr != mz->start + pos)
			ret = -EIO;
		pos += len;
	}
	free(buf);
	free(zeros);
	return ret < 0 ? ret : 0;
}

static int format(struct store *s, struct zdev_zone *dz, uint32_t meta, struct zerr *err)
{
	const struct zdev_info *info = &s->dev->info;
	int ret;

	for (uint32_t i = 0; i < info->nr_zones; i++) {
		/*
		 * A read-only or offline zone cannot be reset: it stays out of use.
		 * Whatever records it holds carry the old superblock's tag.
		 */
		if (dz[i].cond == ZDEV_EMPTY || dz[i].cond == ZDEV_READONLY ||
		    dz[i].cond == ZDEV_OFFLINE || dz[i].cond == ZDEV_CONV)
			continue;
		ret = zdev_reset_sync(s->dev, i);
		if (ret < 0)
			return zerr_set(err, ret, "format: cannot reset zone %u: %s", i,
					strerror(-ret));
	}
	if (dz[meta].cap < (ZSUPER_COPIES - 1) * ZSUPER_GAP + ZSUPER_COPY_LEN)
		return zerr_set(err, -EINVAL, "format: zone %u is too small for the superblock",
				meta);
	zsuper_new(&s->sb, info, s->rec_max);
	ret = write_super(s, &dz[meta], meta);
	if (ret >= 0)
		ret = zdev_flush_sync(s->dev);
	/* Full, the superblock's zone counts against no limit on open or active zones. */
	if (ret >= 0)
		ret = zdev_finish_sync(s->dev, meta);
	if (ret < 0)
		return zerr_set(err, ret, "format: cannot write the superblock: %s",
				strerror(-ret));
	return zdev_report(s->dev, dz);
}

/* A new device: nothing written anywhere it can be read and is ours (offline, conventional). */
static bool all_empty(const struct zdev_zone *dz, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (dz[i].cond != ZDEV_EMPTY && dz[i].cond != ZDEV_OFFLINE &&
		    dz[i].cond != ZDEV_CONV)
			return false;
	}
	return true;
}

/*
 * The first copy of the superblock that reads and checks out; a read error
 * wins over a copy that is not ours in what is reported, as it says more.
 */
static int read_copies(struct store *s, const struct zdev_zone *mz, uint8_t *buf)
{
	int ret = -EBADMSG, first = 0;

	for (uint32_t i = 0; i < ZSUPER_COPIES && i * ZSUPER_GAP + ZSUPER_COPY_LEN <= mz->cap;
	     i++) {
		ret = zdev_read_sync(s->dev, mz->start + i * ZSUPER_GAP, buf, ZSUPER_COPY_LEN);
		if (ret >= 0)
			ret = zsuper_decode(buf, ZSUPER_COPY_LEN, &s->sb);
		if (!ret || ret == -EPROTONOSUPPORT || ret == -EPROTO) {
			if (!ret && i)
				store_log(s, LOG_WARNING, "superblock copy 0 %s: using copy %u",
					  first == -EBADMSG ? "is damaged" : "cannot be read", i);
			return ret;
		}
		if (!first || ret != -EBADMSG)
			first = ret;
	}
	return first;
}

/* Verify: every copy of the superblock, not only the first good one. */
static void verify_copies(struct store *s, const struct zdev_zone *mz, uint8_t *buf)
{
	struct zsuper sb;

	for (uint32_t i = 0; i < ZSUPER_COPIES && i * ZSUPER_GAP + ZSUPER_COPY_LEN <= mz->cap;
	     i++) {
		if (zdev_read_sync(s->dev, mz->start + i * ZSUPER_GAP, buf, ZSUPER_COPY_LEN) >= 0 &&
		    !zsuper_decode(buf, ZSUPER_COPY_LEN, &sb))
			continue;
		store_log(s, LOG_WARNING, "superblock copy %u is damaged or cannot be read", i);
		s->st.super_bad++;
	}
}

static int read_super(struct store *s, struct zdev_zone *dz, bool force, struct zerr *err)
{
	const struct zdev_info *info = &s->dev->info;
	uint32_t meta = zdev_meta_zone(dz, info->nr_zones);
	uint8_t *buf = NULL;
	int ret;

	if (meta == info->nr_zones)
		return zerr_set(err, -EROFS, "no zone with a write pointer for the superblock");
	if (s->cfg.verify && all_empty(dz, info->nr_zones))
		return zerr_set(err, -EBADMSG, "empty: no zappend store was ever formatted on it");
	if (!s->cfg.verify && (force || all_empty(dz, info->nr_zones)))
		return format(s, dz, meta, err);
	if (posix_memalign((void **)&buf, ZDEV_BLOCK_MAX, ZSUPER_COPY_LEN))
		return -ENOMEM;
	ret = read_copies(s, &dz[meta], buf);
	if (!ret && s->cfg.verify)
		verify_copies(s, &dz[meta], buf);
	free(buf);
	if (ret == -EPROTONOSUPPORT)
		return zerr_set(err, ret, "formatted by a newer zappend (format version %u)",
				s->sb.version);
	if (ret == -EPROTO)
		return zerr_set(err, ret,
				"formatted by an older zappend (format version %u, a block for "
				"each record); this one reads version %u: copy the data out with "
				"the older zappendd, then start this one with --format",
				s->sb.version, ZSUPER_VERSION);
	if (ret == -EBADMSG)
		return zerr_set(err, ret,
				"holds data but no zappend superblock; refusing to "
				"touch it (--format wipes it)");
	if (ret < 0)
		return zerr_set(err, ret, "cannot read the superblock: %s", strerror(-ret));
	return zsuper_check(&s->sb, info, err);
}

/*
 * Offset (in the zone) just past the last block in [0, cap) holding a non-zero
 * byte; 0 if none. A full zone's summary ends a few blocks short of its
 * capacity, so the window this leaves in sc->buf usually holds all of it.
 */
static int last_written(struct scan *sc, const struct zone *z, uint64_t from, uint64_t *end)
{
	uint32_t block = sc->s->zones.block;

	for (uint64_t hi = from; hi > 0;) {
		uint64_t lo = hi > SCAN_BUF ? hi - SCAN_BUF : 0;
		int ret = load(sc, z->start + lo, z->start + hi);

		if (ret)
			return ret;
		for (uint64_t b = hi; b > lo; b -= block) {
			const uint64_t *w = (const uint64_t *)(sc->buf + (b - block - lo));

			for (size_t k = 0; k < block / 8; k++) {
				if (w[k]) {
					*end = b;
					return 0;
				}
			}
		}
		hi = lo;
	}
	*end = 0;
	return 0;
}

/*
 * last_written, where a summary's or checkpoint's footer is looked for: a
 * block that could not be read reads as zeros there, and may hide appends
 * made after the footer it leads to. -EBADMSG then: a scan reads the zone,
 * and reports what it lost.
 */
static int last_written_readable(struct scan *sc, const struct zone *z, uint64_t from,
				 uint64_t *end)
{
	uint64_t bad = sc->bad;
	int ret = last_written(sc, z, from, end);

	return ret ? ret : sc->bad != bad ? -EBADMSG : 0;
}

static bool in_buf(const struct scan *sc, uint64_t addr, uint64_t len)
{
	return addr >= sc->at && addr + len <= sc->at + sc->len;
}

/*
 * The summary part at [off, off + len) of zone z: in place in sc->buf when the
 * window read there holds it (the usual case: fresh memory costs more than
 * the copy), else read into a buffer of its own, *own.
 */
static int read_part(struct scan *sc, const struct zone *z, uint64_t off, uint64_t len,
		     uint8_t **own, struct zrec *r)
{
	const uint8_t *at;
	int ret;

	*own = NULL;
	if (!len || len > SCAN_BUF || off + len > z->cap)
		return -EBADMSG;
	if (in_buf(sc, z->start + off, len)) {
		at = sc->buf + (z->start + off - sc->at);
	} else {
		if (posix_memalign((void **)own, ZDEV_BLOCK_MAX, len))
			return -ENOMEM;
		/* A part that cannot be read is a summary that cannot be used. */
		ret = -EBADMSG;
		if (zdev_read_sync(sc->s->dev, z->start + off, *own, len) < 0)
			goto fail;
		at = *own;
	}
	ret = -EBADMSG;
	if (zrec_parse(at, len, sc->s->tag, r) || r->type != ZREC_SUMMARY || r->len != len ||
	    r->vlen > r->dlen)
		goto fail;
	return 0;
fail:
	free(*own);
	*own = NULL;
	return ret;
}

/* The summary's parts, last first, checked whole before anything is used. */
struct parts {
	uint8_t *buf[256];
	struct zrec r[256];
	unsigned n;
};

/*
 * Where the zone's summary ends: at the zone's capacity, where this version
 * pads it to, so that one read finds it and nothing unwritten is read; else
 * (a store of format version 1, a zone finished in a hurry) just past its
 * last written block. The window read stays in sc->buf.
 */
static int summary_end(struct scan *sc, const struct zone *z, uint64_t *end)
{
	uint64_t lo = z->cap > SCAN_BUF ? z->cap - SCAN_BUF : 0;
	uint32_t block = sc->s->zones.block;
	int ret = load(sc, z->start + lo, z->start + z->cap);

	if (ret)
		return ret;
	if (z->cap >= block &&
	    zsum_footer_get(sc->buf + (z->cap - block - lo), block, sc->s->tag)) {
		*end = z->cap;
		return 0;
	}
	return last_written_readable(sc, z, z->cap, end);
}

/*
 * Where a zone that takes appends may hold a clean stop's checkpoint: its
 * last written block. That is the one below its write pointer, but where the
 * write pointer is a file's allocation, which may end past a store's smaller
 * blocks. The window read stays in sc->buf.
 */
static int checkpoint_end(struct scan *sc, const struct zone *z, uint64_t *end)
{
	uint32_t block = sc->s->zones.block;
	int ret = last_written_readable(sc, z, MIN(z->used, z->cap), end);

	if (ret || *end < block || in_buf(sc, z->start + *end - block, block))
		return ret;
	return load(sc, z->start + (*end > SCAN_BUF ? *end - SCAN_BUF : 0), z->start + *end);
}

/*
 * Reads the parts of the summary (or, with ckpt, of the checkpoint) into
 * ps; *first: where the first part, and so the summary, begins.
 */
static int read_parts(struct scan *sc, const struct zone *z, bool ckpt, struct parts *ps,
		      uint64_t *first)
{
	uint32_t block = sc->s->zones.block;
	uint64_t end, off, len;
	int ret = ckpt ? checkpoint_end(sc, z, &end) : summary_end(sc, z, &end);

	if (ret || end < block)
		return ret ? ret : -EBADMSG;
	len = zsum_footer_get(sc->buf + (end - block - (sc->at - z->start)), block, sc->s->tag);
	if (len > end)
		return -EBADMSG;
	off = end - len;
	while (ps->n < ARRAY_SIZE(ps->buf)) {
		uint8_t blk[ZDEV_BLOCK_MAX] __attribute__((aligned(ZDEV_BLOCK_MAX)));
		const uint8_t *head = blk;
		struct zrec *r = &ps->r[ps->n], before;

		ret = read_part(sc, z, off, len, &ps->buf[ps->n], r);
		if (ret)
			return ret;
		ps->n++;
		if (r->seq <= ZIDX_MAX_SEQ)
			sc->max_seq = MAX(sc->max_seq, r->seq);
		if (r->voff == ZSUM_NONE) {
			*first = off;
			return 0;
		}
		/* The part before: its header says how long it is. */
		off = r->voff;
		if (off % block || off + block > z->cap)
			return -EBADMSG;
		if (in_buf(sc, z->start + off, block))
			head = sc->buf + (z->start + off - sc->at);
		else if (zdev_read_sync(sc->s->dev, z->start + off, blk, block) < 0)
			return -EBADMSG;
		if (zrec_head(head, block, &before))
			return -EBADMSG;
		len = before.len;
	}
	return -EBADMSG;
}

static void parts_free(struct parts *ps)
{
	for (unsigned i = 0; i < ps->n; i++)
		free(ps->buf[i]);
	free(ps);
}

/*
 * Entries are all checked before any is used, so a bad one leaves nothing
 * behind; each record they name lies below limit. Parts are in ps last
 * first; entries are read first to last.
 */
static int check_parts(uint64_t limit, const struct parts *ps, size_t *entries)
{
	struct zsum_pos at = { 0 };

	for (unsigned i = ps->n; i-- > 0;) {
		struct zrec r;
		uint64_t off;
		int ret;

		at.pos = 0;
		while ((ret = zsum_next(ps->r[i].data, ps->r[i].vlen, &at, &r, &off)) == 0) {
			if (off > limit || r.len > limit - off)
				return -EBADMSG;
			(*entries)++;
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

/*
 * Index slots are random memory reads: the next ones load while this one is
 * applied. Entries are decoded once, PREFETCH_AHEAD ahead, into a ring.
 */
#define PREFETCH_AHEAD 16

struct ahead {
	struct zrec r;
	uint64_t off;
};

/* The part's next entry into a, its slot prefetched; false at the part's end. */
static bool decode_ahead(struct scan *sc, const struct zrec *p, struct zsum_pos *at,
			 struct ahead *a)
{
	if (zsum_next(p->data, p->vlen, at, &a->r, &a->off))
		return false;
	zidx_prefetch(sc->s->idx, a->r.key, a->r.klen);
	return true;
}

static int feed_part(struct scan *sc, const struct zone *z, const struct zrec *p,
		     struct zsum_pos *at)
{
	struct ahead ring[PREFETCH_AHEAD], cur;
	unsigned head = 0, n = 0;
	int ret = 0;

	while (n < PREFETCH_AHEAD && decode_ahead(sc, p, at, &ring[n]))
		n++;
	/* The ring stays full until the part ends: the consumed slot takes the next entry. */
	while (n && !ret) {
		cur = ring[head];
		if (!decode_ahead(sc, p, at, &ring[head]))
			n--;
		head = (head + 1) % PREFETCH_AHEAD;
		ret = found(sc, &cur.r, z->start + cur.off);
	}
	return ret;
}

static int feed_parts(struct scan *sc, const struct zone *z, const struct parts *ps)
{
	struct zsum_pos at = { 0 };
	int ret = 0;

	for (unsigned i = ps->n; i-- > 0 && !ret;) {
		at.pos = 0;
		ret = feed_part(sc, z, &ps->r[i], &at);
	}
	return ret;
}

/*
 * 0 when the zone's records came from its summary (ckpt: from the checkpoint
 * of a zone that takes appends); -EBADMSG: the zone must be scanned.
 */
static int use_summary(struct scan *sc, struct zone *z, bool ckpt)
{
	struct parts *ps = calloc(1, sizeof(*ps));
	size_t entries = 0;
	uint64_t first = 0;
	int ret;

	if (!ps)
		return -ENOMEM;
	ret = read_parts(sc, z, ckpt, ps, &first);
	/* A checkpoint lists the records before it, all of them. */
	if (!ret)
		ret = check_parts(ckpt ? first : z->cap, ps, &entries);
	if (!ret && ckpt) {
		/* The checkpoint's bytes count as padding below the records' end. */
		z->data_end = z->ckpt_end = MIN(z->used, z->cap);
		ret = feed_parts(sc, z, ps);
	} else if (!ret) {
		/*
		 * The first summary tells how many records a zone holds: the index
		 * makes room for as many in every written zone at once rather than
		 * growing step by step (zidx_fit gives back an overestimate).
		 */
		if (!sc->reserved) {
			zidx_reserve(sc->s->idx, entries * sc->written);
			sc->reserved = true;
		}
		/* The key filter at its final size (failing that, notes make a large one). */
		zbloom_init(&z->keys, entries);
		z->data_end = first;
		ret = feed_parts(sc, z, ps);
	}
	parts_free(ps);
	return ret;
}

/* The entries of full zone z's summary: -EBADMSG when it is missing or damaged. */
static int summary_entries(struct scan *sc, const struct zone *z, size_t *entries)
{
	struct parts *ps = calloc(1, sizeof(*ps));
	uint64_t first = 0;
	int ret;

	if (!ps)
		return -ENOMEM;
	*entries = 0;
	sc->len = 0;
	ret = read_parts(sc, z, false, ps, &first);
	if (!ret)
		ret = check_parts(z->cap, ps, entries);
	parts_free(ps);
	return ret;
}

/* Whether the zone ends in a summary's footer, sound or not what it leads to. */
static bool has_footer(struct scan *sc, const struct zone *z)
{
	uint32_t block = sc->s->zones.block;
	uint64_t end;

	sc->len = 0;
	if (summary_end(sc, z, &end) || end < block || z->start + end - block < sc->at)
		return false;
	return zsum_footer_get(sc->buf + (z->start + end - block - sc->at), block, sc->s->tag);
}

/*
 * A full zone without a summary is what a restart leaves when a crash took
 * the room the summary needed (its records were all checked): damage only
 * where the summary would have fitted, as when the zone's end was wiped.
 */
static void missing_summary(struct scan *sc, const struct zone *z, uint32_t zone)
{
	if (z->cap - MIN(z->cap, z->data_end) < sc->need) {
		store_log(sc->s, LOG_NOTICE,
			  "zone %u: no summary (%llu bytes after its last record, one needs up to "
			  "%llu: a restart after a crash leaves that); its records are checked",
			  zone, (unsigned long long)(z->cap - MIN(z->cap, z->data_end)),
			  (unsigned long long)sc->need);
		sc->s->st.summaries_absent++;
		return;
	}
	store_log(sc->s, LOG_WARNING,
		  "zone %u: its summary is missing, and %llu bytes after its last record "
		  "would have held it: the zone's end was lost",
		  zone, (unsigned long long)(z->cap - z->data_end));
	sc->s->st.summaries_bad++;
}

/* Verify: a full zone's summary must list exactly the puts and deletes its scan found. */
static int verify_summary(struct scan *sc, const struct zone *z)
{
	uint32_t zone = zones_of(&sc->s->zones, z->start);
	size_t entries;
	int ret = summary_entries(sc, z, &entries);

	if (ret && ret != -EBADMSG)
		return ret;
	sc->s->st.summaries_checked++;
	if (ret && !has_footer(sc, z)) {
		missing_summary(sc, z, zone);
		return 0;
	}
	if (ret)
		store_log(sc->s, LOG_WARNING, "zone %u: its summary is damaged", zone);
	else if (entries != sc->notes)
		store_log(sc->s, LOG_WARNING,
			  "zone %u: its summary lists %zu records, the zone holds %llu", zone,
			  entries, (unsigned long long)sc->notes);
	sc->s->st.summaries_bad += ret || entries != sc->notes;
	return 0;
}

static int recover_zone(struct scan *sc, struct zone *z)
{
	int ret;

	sc->len = 0;
	if (sc->s->cfg.verify) {
		sc->s->st.zones_scanned++;
		ret = scan_zone(sc, z);
		z->recs = MAX(z->recs, z->data_end);
		if (!ret && z->state == ZS_FULL)
			ret = verify_summary(sc, z);
		return ret;
	}
	ret = -EBADMSG;
	if (!sc->s->cfg.rescan)
		ret = use_summary(sc, z, z->state != ZS_FULL);
	*(z->state == ZS_FULL ? &sc->s->st.zones_summarised : &sc->s->st.zones_checkpointed) +=
	    !ret;
	if (ret == -EBADMSG) {
		sc->s->st.zones_scanned++;
		ret = scan_zone(sc, z);
	}
	/* Below its data's end, what is not a record is padding (or torn): garbage. */
	z->recs = MAX(z->recs, z->data_end);
	/* Room for the summary of what the zone already holds. */
	if (!ret && z->state != ZS_FULL)
		z->meta = z->sum.len + z->sum.len / 64 + z->sum.n;
	return ret;
}

static int scan_all(struct store *s, struct zerr *err)
{
	struct scan sc = { .s = s };
	int ret = 0;

	if (posix_memalign((void **)&sc.buf, ZDEV_BLOCK_MAX, SCAN_BUF))
		return -ENOMEM;
	for (uint32_t i = 0; i < s->zones.n; i++)
		sc.written += s->zones.z[i].state != ZS_META && s->zones.z[i].used;
	for (uint32_t i = 0; i < s->zones.n && !ret; i++) {
		if (s->zones.z[i].state != ZS_META && s->zones.z[i].used)
			ret = recover_zone(&sc, &s->zones.z[i]);
	}
	if (!ret)
		ret = assemble(&sc);
	if (!ret) {
		zidx_fit(s->idx);
		zidx_foreach(s->idx, false, count_live, &s->zones);
	}
	/*
	 * Records that could not be read may carry sequence numbers above all
	 * those seen: new ones must stay above them, should they read again.
	 */
	s->next_seq = sc.max_seq + 1 + (s->st.unreadable_bytes ? SEQ_AFTER_LOSS : 0);
	for (size_t i = 0; i < sc.nparts; i++)
		free(sc.parts[i].key);
	free(sc.parts);
	free(sc.buf);
	return ret;
}

/* A key of this length or shorter leaves a tiled zone no record short. */
#define TILE_KLEN 64

/*
 * Records of a large value tile a zone: n of the largest length that fits n
 * times, where records of the largest length the device takes would leave
 * up to one of them unused at the end of every zone (a quarter of a 4 MiB
 * zone). Zones are alike; the first data zone speaks for them.
 */
static void tile_records(struct store *s)
{
	const struct zones *zs = &s->zones;
	uint64_t avail, n, len;
	uint32_t i;

	for (i = 0; i < zs->n && (zs->z[i].state == ZS_META || zs->z[i].state == ZS_CONV ||
				  zs->z[i].state == ZS_OFFLINE);
	     i++)
		;
	if (i == zs->n || zs->z[i].cap <= ZSUM_BASE_RESERVE)
		return;
	avail = zs->z[i].cap - ZSUM_BASE_RESERVE;
	n = DIV_UP(avail, s->rec_max);
	len = (avail - n * zones_entry_meta(TILE_KLEN, true)) / n / zs->block * zs->block;
	/* Never so short that a value takes many more records than it must. */
	if (len >= s->rec_max / 2 && len < s->rec_max)
		s->rec_max = len;
}

/* Appends are whole blocks, aligned: every zone must start on one and hold whole ones. */
static int check_blocks(const struct store *s, const struct zdev_zone *dz, struct zerr *err)
{
	uint32_t block = zsuper_block(&s->sb);

	for (uint32_t i = 0; i < s->dev->info.nr_zones; i++) {
		if (dz[i].cond != ZDEV_CONV && (dz[i].start % block || dz[i].cap % block))
			return zerr_set(err, -EINVAL,
					"zone %u (at %llu, %llu bytes) is not whole %u-byte blocks",
					i, (unsigned long long)dz[i].start,
					(unsigned long long)dz[i].cap, block);
	}
	return 0;
}

int store_mount(struct store *s, bool force_format, struct zerr *err)
{
	struct zdev_zone *dz = calloc(s->dev->info.nr_zones, sizeof(*dz));
	struct timespec t0, t1;
	int ret;

	if (!dz)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = zdev_report(s->dev, dz);
	if (ret < 0) {
		zerr_set(err, ret, "cannot report zones: %s", strerror(-ret));
		goto out;
	}
	ret = read_super(s, dz, force_format, err);
	if (!ret)
		ret = check_blocks(s, dz, err);
	if (ret < 0)
		goto out;
	s->tag = zsuper_tag(&s->sb);
	/* Records are read up to the format's limit, and written within it and the device's. */
	s->rec_limit = s->sb.rec_max;
	s->rec_max = MIN(s->rec_max, s->sb.rec_max);
	ret = store_zones_init(s, dz);
	if (!ret) {
		tile_records(s);
		ret = scan_all(s, err);
	}
	if (!ret && !s->cfg.verify) {
		/* Zones left nearly full by a crash, and beyond the device's active limit:
		 * finished. */
		zones_fit_limits(&s->zones, s->rec_max);
		gc_mount(&s->gc, s->tag, s->rec_max, s->rec_limit);
		gc_kick(&s->gc);
	}
	if (ret < 0 && !err->msg[0])
		zerr_set(err, ret, "recovery failed: %s", strerror(-ret));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s->st.recovery_seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
out:
	free(dz);
	return ret;
}
