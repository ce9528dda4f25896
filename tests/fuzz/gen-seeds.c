/*
 * gen-seeds: writes the seed corpora of the fuzz targets (tests/fuzz/make-seeds.sh
 * runs it, and the real daemon for fuzz-recovery's images).
 *
 *   gen-seeds DIR            seeds into DIR/fuzz-frames, fuzz-records, fuzz-client,
 *                            fuzz-recovery (crafted images)
 *   gen-seeds image IMG      an emulated device image (10 zones of 2M) whose
 *                            superblock is fz_uuid's: a daemon started on it
 *                            writes records fuzz-recovery can read
 *   gen-seeds extract IMG OUT  zones 1..5 of IMG as a fuzz-recovery input
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dev.h"
#include "frame.h"
#include "fuzz-util.h"
#include "record.h"
#include "summary.h"
#include "super.h"
#include "util.h"
#include "zappend.pb-c.h"

#define ZONE_SIZE  (2 * MiB)
#define NR_ZONES   10u
#define DATA_ZONES 5u /* the zones fuzz-recovery writes */
#define FILE_HDR   4096u
#define BLK	   4096u
#define CAP_BLOCKS (ZONE_SIZE / BLK - 1)

/* --- a growing byte buffer --- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void add(struct buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	if (b->len + n > b->cap) {
		b->cap = MAX(b->cap * 2, b->len + n + 4096);
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			fz_die("out of memory");
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void add_byte(struct buf *b, uint8_t v)
{
	add(b, &v, 1);
}

static void add_le16(struct buf *b, uint16_t v)
{
	uint8_t p[2];

	put_le16(p, v);
	add(b, p, 2);
}

static void add_le32(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	put_le32(p, v);
	add(b, p, 4);
}

static void add_zeros(struct buf *b, size_t n)
{
	static const uint8_t z[4096];

	while (n) {
		size_t k = MIN(n, sizeof(z));

		add(b, z, k);
		n -= k;
	}
}

static void add_pattern(struct buf *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		add_byte(b, (uint8_t)(i * 31 + seed * 17 + 1));
}

static const char *outdir;

static void save(const char *target, const char *name, const struct buf *b)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fz_die("%s: %s", path, strerror(errno));
	fz_write_all(fd, b->p, b->len);
	close(fd);
}

static void reset(struct buf *b)
{
	b->len = 0;
}

/* --- requests (fuzz-frames) --- */

/* A request frame: op, key, and a payload of plen pattern bytes (declared as dlen). */
static void req(struct buf *b, uint64_t id, Zappend__Op op, const char *key, size_t klen,
		uint32_t plen)
{
	Zappend__Request r = ZAPPEND__REQUEST__INIT;
	uint8_t pre[ZAP_FRAME_PREFIX], h[4096];
	size_t n;

	r.id = id;
	r.op = op;
	r.key.data = (uint8_t *)key;
	r.key.len = klen;
	n = zappend__request__pack(&r, h);
	zap_frame_encode(pre, n, plen);
	add(b, pre, sizeof(pre));
	add(b, h, n);
	add_pattern(b, plen, (unsigned)id);
}

static void req_s(struct buf *b, uint64_t id, Zappend__Op op, const char *key, uint32_t plen)
{
	req(b, id, op, key, strlen(key), plen);
}

/* Frames a request built field by field. */
static void req_msg(struct buf *b, const Zappend__Request *r)
{
	uint8_t pre[ZAP_FRAME_PREFIX], h[4096];
	size_t n = zappend__request__pack(r, h);

	zap_frame_encode(pre, n, 0);
	add(b, pre, sizeof(pre));
	add(b, h, n);
}

static void req_list(struct buf *b, uint64_t id, const char *prefix, const char *after,
		     uint32_t limit)
{
	Zappend__Request r = ZAPPEND__REQUEST__INIT;

	r.id = id;
	r.op = ZAPPEND__OP__OP_LIST;
	r.key = (ProtobufCBinaryData){ strlen(prefix), (uint8_t *)prefix };
	r.start_after = (ProtobufCBinaryData){ strlen(after), (uint8_t *)after };
	r.limit = limit;
	req_msg(b, &r);
}

static void req_scan(struct buf *b, uint64_t id, const char *prefix, uint64_t cursor,
		     uint32_t count)
{
	Zappend__Request r = ZAPPEND__REQUEST__INIT;

	r.id = id;
	r.op = ZAPPEND__OP__OP_SCAN;
	r.key = (ProtobufCBinaryData){ strlen(prefix), (uint8_t *)prefix };
	r.cursor = cursor;
	r.limit = count;
	req_msg(b, &r);
}

static void raw_frame(struct buf *b, const void *h, uint32_t hlen, uint32_t plen)
{
	uint8_t pre[ZAP_FRAME_PREFIX];

	zap_frame_encode(pre, hlen, plen);
	add(b, pre, sizeof(pre));
	add(b, h, hlen);
}

static void frames(void)
{
	static const char *T = "fuzz-frames";
	struct buf b = { 0 };
	char longkey[2000];
	uint8_t garbage[16] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x1a, 0x80, 0x80,
				0x80, 0x80, 0x80, 0x01, 0x12, 0x05, 0x61, 0x62 };

	memset(longkey, 'x', sizeof(longkey));
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "alpha", 100);
	save(T, "put", &b);
	req_s(&b, 2, ZAPPEND__OP__OP_GET, "alpha", 0);
	save(T, "put-get", &b);
	req_s(&b, 3, ZAPPEND__OP__OP_DEL, "alpha", 0);
	req_s(&b, 4, ZAPPEND__OP__OP_GET, "alpha", 0);
	save(T, "put-get-del-get", &b);

	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "big", 40000); /* 3 records of 16 KiB */
	req_s(&b, 2, ZAPPEND__OP__OP_GET, "big", 0);
	req_s(&b, 3, ZAPPEND__OP__OP_PUT, "big", 5000); /* an overwrite */
	req_s(&b, 4, ZAPPEND__OP__OP_GET, "big", 0);
	save(T, "multichunk", &b);

	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "empty-value", 0);
	req_s(&b, 2, ZAPPEND__OP__OP_GET, "empty-value", 0);
	save(T, "empty-value", &b);

	reset(&b);
	req_s(&b, 7, ZAPPEND__OP__OP_STAT, "", 0);
	save(T, "stat", &b);
	reset(&b);
	req_s(&b, 8, ZAPPEND__OP__OP_ZONES, "", 0);
	save(T, "zones", &b);
	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "list/a", 10);
	req_s(&b, 2, ZAPPEND__OP__OP_PUT, "list/b", 10);
	req_s(&b, 3, ZAPPEND__OP__OP_PUT, "list/c", 10);
	req_list(&b, 4, "list/", "", 0);
	req_list(&b, 5, "list/", "list/a", 1);
	req_list(&b, 6, "", "", 100000);
	save(T, "list", &b);
	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "scan/a", 10);
	req_s(&b, 2, ZAPPEND__OP__OP_PUT, "scan/b", 10);
	req_scan(&b, 3, "scan/", 0, 1);
	req_scan(&b, 4, "", 0, 0);
	req_scan(&b, 5, "", 12345, 10); /* a cursor the daemon did not give */
	req_scan(&b, 6, "", (uint64_t)1 << 63 | 1, 100000);
	save(T, "scan", &b);

	reset(&b);
	for (int i = 0; i < 20; i++)
		req_s(&b, 100 + i, ZAPPEND__OP__OP_GET, i % 2 ? "missing" : "alpha", 0);
	save(T, "pipelined-gets", &b);

	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "k1", 300);
	req_s(&b, 2, ZAPPEND__OP__OP_PUT, "k2", 5000);
	req_s(&b, 3, ZAPPEND__OP__OP_GET, "k1", 0);
	req_s(&b, 4, ZAPPEND__OP__OP_DEL, "k2", 0);
	req_s(&b, 5, ZAPPEND__OP__OP_DEL, "k2", 0);
	req_list(&b, 6, "k", "", 10);
	req_s(&b, 7, ZAPPEND__OP__OP_STAT, "", 0);
	req_s(&b, 8, ZAPPEND__OP__OP_ZONES, "", 0);
	save(T, "back-to-back", &b);

	/* Broken streams and broken limits. */
	reset(&b);
	add_le32(&b, 2u << 20); /* header above ZAP_FRAME_MAX_HEADER */
	add_le32(&b, 0);
	add_zeros(&b, 64);
	save(T, "header-too-long", &b);

	reset(&b);
	raw_frame(&b, garbage, sizeof(garbage), 0);
	req_s(&b, 2, ZAPPEND__OP__OP_STAT, "", 0);
	save(T, "garbage-protobuf", &b);

	reset(&b);
	{
		Zappend__Request r = ZAPPEND__REQUEST__INIT;
		uint8_t h[64];
		size_t n;

		r.id = 5;
		r.op = 99;
		r.key.data = (uint8_t *)"k";
		r.key.len = 1;
		n = zappend__request__pack(&r, h);
		raw_frame(&b, h, n, 3);
		add(&b, "abc", 3);
	}
	req_s(&b, 6, ZAPPEND__OP__OP_GET, "k", 0);
	save(T, "unknown-op", &b);

	reset(&b);
	req(&b, 1, ZAPPEND__OP__OP_PUT, longkey, sizeof(longkey), 10);
	req(&b, 2, ZAPPEND__OP__OP_GET, longkey, 1025, 0);
	req(&b, 3, ZAPPEND__OP__OP_PUT, "", 0, 10);
	req(&b, 4, ZAPPEND__OP__OP_GET, "", 0, 0);
	req(&b, 5, ZAPPEND__OP__OP_DEL, longkey, 1024, 0);
	save(T, "bad-keys", &b);

	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "huge", 0);
	b.len -= 0; /* declared length patched below: 300 KiB, above --max-value */
	put_le32(b.p + 4, 300 * 1024);
	add_pattern(&b, 2000, 9);
	save(T, "value-too-large-cut", &b);

	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_PUT, "half", 0);
	put_le32(b.p + 4, 20000);
	add_pattern(&b, 7000, 3);
	save(T, "half-put", &b);

	reset(&b);
	req_s(&b, 1, ZAPPEND__OP__OP_GET, "half-header", 0);
	b.len -= 4;
	save(T, "half-header", &b);
	free(b.p);
}

/* --- records (fuzz-records) --- */

/*
 * Appends a sealed record to b, right after what is there (records are packed,
 * 8-byte aligned); data NULL: zeros.
 */
static void seal(struct buf *b, uint8_t type, const char *key, uint64_t seq, const void *data,
		 uint32_t dlen, uint64_t vlen, uint64_t voff, uint32_t chunk, uint32_t nchunks,
		 uint64_t tag)
{
	size_t klen = strlen(key);
	bool ext = zrec_ext(type, nchunks);
	size_t len = zrec_len(ext, klen, dlen);
	uint8_t *p = aligned_alloc(BLK, ALIGN_UP(len, BLK));
	struct zrec r = { .type = type,
			  .klen = klen,
			  .key = (const uint8_t *)key,
			  .seq = seq,
			  .vlen = vlen,
			  .voff = voff,
			  .dlen = dlen,
			  .chunk = chunk,
			  .nchunks = nchunks };

	if (!p)
		fz_die("out of memory");
	if (b->len % ZREC_ALIGN)
		fz_die("a record would start at %zu, off its 8-byte alignment", b->len);
	if (data)
		memcpy(zrec_data(p, ext, klen), data, dlen);
	else
		memset(zrec_data(p, ext, klen), 0, dlen);
	add(b, p, zrec_seal(p, &r, tag));
	free(p);
}

static void seal_put(struct buf *b, const char *key, uint64_t seq, uint32_t dlen, uint64_t tag)
{
	struct buf v = { 0 };

	add_pattern(&v, dlen, (unsigned)seq);
	seal(b, ZREC_PUT, key, seq, v.p, dlen, dlen, 0, 0, 1, tag);
	free(v.p);
}

/* Ends an append: zeros to the block's end, where the next append starts. */
static void end_append(struct buf *b)
{
	add_zeros(b, ALIGN_UP(b->len, BLK) - b->len);
}

/*
 * A summary part listing s's entries, as the store writes it: a record of
 * whole blocks, the entries, zeros, and (the last part) the footer at its end.
 */
static void seal_summary(struct buf *b, struct zsum *s, uint64_t prev, uint64_t seq, uint64_t tag,
			 bool footer)
{
	size_t len = zrec_block_up(zrec_len(true, 0, s->len + ZSUM_FOOTER), BLK);
	uint8_t *p = aligned_alloc(BLK, len);
	struct zrec r = { .type = ZREC_SUMMARY,
			  .seq = seq,
			  .voff = prev,
			  .vlen = s->len,
			  .dlen = len - zrec_head_len(true) };

	if (!p)
		fz_die("out of memory");
	if (b->len % BLK)
		fz_die("a summary part would start off a block");
	memset(p, 0, len);
	if (s->len)
		memcpy(zrec_data(p, true, 0), s->buf, s->len);
	if (footer)
		zsum_footer_put(p, len, BLK, tag);
	if (zrec_seal(p, &r, tag) != len)
		fz_die("a summary part of %zu bytes sealed to another length", len);
	add(b, p, len);
	free(p);
}

/* Padding records from b's end, a block boundary, to end: as the store pads before a summary. */
static void seal_pad(struct buf *b, size_t end, uint64_t tag)
{
	while (b->len < end) {
		size_t len = MIN(end - b->len, 1 * MiB);

		seal(b, ZREC_PAD, "", 0, NULL, len - zrec_head_len(false), 0, 0, 0, 0, tag);
	}
}

/* Notes in s the record that starts at byte at of b, off bytes into its zone. */
static void note(struct zsum *s, const struct buf *b, size_t at, uint64_t off, uint64_t tag)
{
	struct zrec r;

	if (zrec_parse(b->p + at, b->len - at, tag, &r))
		fz_die("a record just sealed does not parse");
	if (zsum_add(s, &r, off) <= 0)
		fz_die("zsum_add failed");
}

static void records(void)
{
	static const char *T = "fuzz-records";
	uint64_t tag = fz_tag(), mytag = 0x0123456789abcdefull;
	struct buf b = { 0 }, v = { 0 };
	struct zsum s = { 0 };
	struct zsuper sb = { .version = ZSUPER_VERSION,
			     .nr_zones = NR_ZONES,
			     .zone_size = ZONE_SIZE,
			     .block = BLK,
			     .rec_max = 1 * MiB,
			     .ctime = 1700000000 };
	uint8_t blk[BLK] __attribute__((aligned(BLK)));
	size_t at;

	seal_put(&b, "alpha", 1, 100, tag);
	save(T, "put", &b);
	reset(&b);
	seal_put(&b, "empty", 1, 0, tag);
	save(T, "put-empty", &b);
	reset(&b);
	add_pattern(&v, 9000, 1);
	seal(&b, ZREC_PUT, "big", 2, v.p, 4000, 9000, 0, 0, 3, tag);
	seal(&b, ZREC_PUT, "big", 2, v.p + 4000, 4000, 9000, 4000, 1, 3, tag);
	seal(&b, ZREC_PUT, "big", 2, v.p + 8000, 1000, 9000, 8000, 2, 3, tag);
	save(T, "chunks", &b);
	reset(&b);
	seal(&b, ZREC_DEL, "alpha", 3, NULL, 0, 0, 0, 0, 0, tag);
	save(T, "del", &b);
	reset(&b);
	seal(&b, ZREC_SEQ, "", 1000, NULL, 0, 0, 0, 0, 0, tag);
	save(T, "seq", &b);

	/*
	 * A zone's worth: two appends of records packed back to back (a value in
	 * two chunks, a checkpoint the summary leaves out), padding to the
	 * summary's block, then the summary with its footer.
	 */
	reset(&b);
	seal_put(&b, "a", 1, 10, tag);
	note(&s, &b, 0, 0, tag);
	at = b.len;
	seal_put(&b, "bb", 2, 5000, tag);
	note(&s, &b, at, at, tag);
	at = b.len;
	seal(&b, ZREC_DEL, "a", 3, NULL, 0, 0, 0, 0, 0, tag);
	note(&s, &b, at, at, tag);
	end_append(&b);
	seal(&b, ZREC_SEQ, "", 4, NULL, 0, 0, 0, 0, 0, tag);
	at = b.len;
	seal(&b, ZREC_PUT, "big", 5, v.p, 1500, 2000, 0, 0, 2, tag);
	note(&s, &b, at, at, tag);
	at = b.len;
	seal(&b, ZREC_PUT, "big", 5, v.p + 1500, 500, 2000, 1500, 1, 2, tag);
	note(&s, &b, at, at, tag);
	at = b.len;
	seal_put(&b, "c", 6, 0, tag);
	note(&s, &b, at, at, tag);
	end_append(&b);
	seal_pad(&b, b.len + BLK, tag);
	seal_summary(&b, &s, ZSUM_NONE, 6, tag, true);
	save(T, "zone-with-summary", &b);
	reset(&b);
	add(&b, s.buf, s.len);
	save(T, "summary-entries", &b);
	zsum_done(&s);

	/* The tag in the first 8 bytes, the record right after. */
	reset(&b);
	{
		uint8_t t[8];

		put_le64(t, mytag);
		add(&b, t, 8);
		seal_put(&b, "own-tag", 5, 50, mytag);
		seal(&b, ZREC_DEL, "own-tag", 6, NULL, 0, 0, 0, 0, 0, mytag);
	}
	save(T, "own-tag", &b);

	reset(&b);
	memcpy(sb.uuid, fz_uuid, 16);
	memset(blk, 0, sizeof(blk));
	zsuper_encode(&sb, blk);
	add(&b, blk, BLK);
	save(T, "superblock", &b);

	/*
	 * A superblock record with a key, its data running past the block:
	 * zsuper_decode() once checked that the data fitted from the header's
	 * end, not from the key's, and read a CRC over bytes past the buffer.
	 */
	reset(&b);
	reset(&v);
	add_zeros(&v, BLK - ZREC_HDR);
	seal(&b, ZREC_SUPER, "a-key-the-superblock-never-has", 1, v.p, BLK - ZREC_HDR, 0, 0, 0, 0,
	     ZSUPER_TAG);
	b.len = BLK;
	save(T, "crash-superblock-key-overread", &b);
	free(b.p);
	free(v.p);
}

/* --- responses (fuzz-client) --- */

static void resp(struct buf *b, const Zappend__Response *r, const void *payload, uint32_t plen)
{
	uint8_t pre[ZAP_FRAME_PREFIX];
	size_t n = zappend__response__get_packed_size(r);
	uint8_t *h = malloc(n ? n : 1);

	zappend__response__pack(r, h);
	zap_frame_encode(pre, n, plen);
	add(b, pre, sizeof(pre));
	add(b, h, n);
	add(b, payload, plen);
	free(h);
}

static void resp_status(struct buf *b, uint64_t id, Zappend__Status st, const char *msg)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;

	r.id = id;
	r.status = st;
	r.message = (char *)msg;
	resp(b, &r, NULL, 0);
}

/* A get's answer in n frames. */
static void resp_value(struct buf *b, uint64_t id, const char *val, unsigned n)
{
	size_t len = strlen(val), off = 0;

	for (unsigned i = 0; i < n; i++) {
		Zappend__Response r = ZAPPEND__RESPONSE__INIT;
		size_t k = i + 1 == n ? len - off : len / n;

		r.id = id;
		r.more = i + 1 < n;
		if (!i)
			r.value_len = len;
		resp(b, &r, val + off, k);
		off += k;
	}
}

static void resp_put(struct buf *b, uint64_t id, uint64_t seq)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;

	r.id = id;
	r.zone = 3;
	r.offset = 8192;
	r.seq = seq;
	resp(b, &r, NULL, 0);
}

static void resp_list(struct buf *b, uint64_t id, const char *const *keys, size_t n, bool more)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;
	ProtobufCBinaryData k[8];

	for (size_t i = 0; i < n; i++)
		k[i] = (ProtobufCBinaryData){ strlen(keys[i]), (uint8_t *)keys[i] };
	r.id = id;
	r.n_keys = n;
	r.keys = k;
	r.more = more;
	resp(b, &r, NULL, 0);
}

static void resp_stat(struct buf *b, uint64_t id)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;
	Zappend__StatItem it[3], *ip[3];

	for (int i = 0; i < 3; i++) {
		zappend__stat_item__init(&it[i]);
		ip[i] = &it[i];
	}
	it[0].name = "keys";
	it[0].value_case = ZAPPEND__STAT_ITEM__VALUE_U;
	it[0].u = 42;
	it[1].name = "write_amplification";
	it[1].value_case = ZAPPEND__STAT_ITEM__VALUE_D;
	it[1].d = 1.5;
	it[2].name = "backend";
	it[2].value_case = ZAPPEND__STAT_ITEM__VALUE_S;
	it[2].s = "file";
	r.id = id;
	r.n_stats = 3;
	r.stats = ip;
	resp(b, &r, NULL, 0);
}

static void resp_zones(struct buf *b, uint64_t id)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;
	Zappend__ZoneInfo z[3], *zp[3];
	static char *const states[] = { "meta", "open", "a-state-longer-than-sixteen" };

	for (int i = 0; i < 3; i++) {
		zappend__zone_info__init(&z[i]);
		z[i].id = i;
		z[i].state = states[i];
		z[i].start = i * ZONE_SIZE;
		z[i].capacity = ZONE_SIZE - BLK;
		z[i].write_pointer = i * BLK;
		zp[i] = &z[i];
	}
	r.id = id;
	r.n_zones = 3;
	r.zones = zp;
	resp(b, &r, NULL, 0);
}

/* Answers to the 8 asynchronous requests, ids first..first+7, out of order. */
static void resp_async(struct buf *b, uint64_t first)
{
	static const unsigned order[8] = { 3, 0, 7, 2, 1, 5, 6, 4 };

	for (int i = 0; i < 8; i++) {
		unsigned k = order[i];
		uint64_t id = first + k;

		switch (k % 4) {
		case 0:
			resp_value(b, id, "an asynchronous value", 1 + k % 3);
			break;
		case 1:
			resp_status(b, id, ZAPPEND__STATUS__STATUS_NOT_FOUND, "key not found");
			break;
		case 2:
			resp_put(b, id, 100 + k);
			break;
		default:
			resp_put(b, id, 200 + k);
			break;
		}
	}
}

static void client(void)
{
	static const char *T = "fuzz-client";
	static const char *const page1[] = { "k1", "k2", "k3" }, *const page2[] = { "k4" };
	struct buf b = { 0 };
	uint64_t id = 1;

	add_byte(&b, 0);
	resp_value(&b, 1, "hello", 1);
	save(T, "get", &b);
	reset(&b);
	add_byte(&b, 0);
	resp_value(&b, 1, "a value in three frames", 3);
	save(T, "get-3-frames", &b);
	reset(&b);
	add_byte(&b, 0);
	resp_status(&b, 1, ZAPPEND__STATUS__STATUS_NOT_FOUND, "key not found");
	save(T, "get-not-found", &b);
	reset(&b);
	add_byte(&b, 0);
	{
		Zappend__Response r = ZAPPEND__RESPONSE__INIT;

		r.id = 1;
		r.more = true;
		r.value_len = 100;
		resp(&b, &r, "0123456789", 10);
		resp_status(&b, 1, ZAPPEND__STATUS__STATUS_IO_ERROR, "checksum");
	}
	save(T, "get-error-midway", &b);
	reset(&b);
	add_byte(&b, 0);
	resp_status(&b, 0, ZAPPEND__STATUS__STATUS_INVALID, "cannot parse the request");
	save(T, "get-id-0", &b);
	reset(&b);
	add_byte(&b, 1);
	resp_list(&b, 1, page1, 3, true);
	resp_list(&b, 2, page2, 1, false);
	save(T, "list", &b);
	reset(&b);
	add_byte(&b, 2);
	resp_stat(&b, 1);
	save(T, "stat", &b);
	reset(&b);
	add_byte(&b, 3);
	resp_zones(&b, 1);
	save(T, "zones", &b);
	reset(&b);
	add_byte(&b, 4);
	resp_async(&b, 1);
	save(T, "async-wait", &b);
	b.p[0] = 5;
	save(T, "async-poll", &b);
	reset(&b);
	add_byte(&b, 6);
	resp_put(&b, 1, 7);
	resp_put(&b, 2, 8);
	save(T, "put-del", &b);

	/* Everything in turn: ids follow the calls. */
	reset(&b);
	add_byte(&b, 7);
	resp_value(&b, id++, "hello", 2);
	resp_list(&b, id++, page2, 1, false);
	resp_stat(&b, id++);
	resp_zones(&b, id++);
	resp_async(&b, id);
	id += 8;
	resp_async(&b, id);
	id += 8;
	resp_put(&b, id, 9);
	resp_put(&b, id + 1, 10);
	save(T, "all", &b);

	/*
	 * A listing page that says more keys follow, its last key empty:
	 * client.c's list_page() passes that key's NULL data to memcmp and
	 * memcpy (key_cmp, 0 bytes): undefined behaviour, UBSan aborts. Open.
	 */
	reset(&b);
	add_byte(&b, 1);
	{
		static const char *const empty[] = { "" };

		resp_list(&b, 1, empty, 1, true);
	}
	save(T, "crash-list-empty-key", &b);

	reset(&b);
	add_byte(&b, 0);
	add_le32(&b, 2u << 20);
	add_le32(&b, 0);
	save(T, "header-too-long", &b);
	reset(&b);
	add_byte(&b, 0);
	add_le32(&b, 6);
	add_le32(&b, 0);
	add(&b, "\xff\xff\xff\xff\xff\xff", 6);
	save(T, "garbage", &b);
	free(b.p);
}

/* --- recovery images (fuzz-recovery) --- */

/* One chunk of the fuzz-recovery input format: bytes at a block of a zone. */
static void chunk(struct buf *b, uint32_t zone, uint32_t blk, const uint8_t *p, size_t len)
{
	while (len) {
		size_t k = MIN(len, 15 * BLK); /* whole blocks, so the next piece starts on one */

		add_byte(b, zone - 1);
		add_le16(b, blk);
		add_le16(b, k);
		add(b, p, k);
		p += k;
		len -= k;
		blk += k / BLK;
	}
}

/*
 * An append of sealed records at a block, without the zeros after its last
 * non-zero byte (the append itself is zero-padded to whole blocks).
 */
static void chunk_rec(struct buf *b, uint32_t zone, uint32_t blk, const struct buf *rec)
{
	size_t len = rec->len, blocks = ALIGN_UP(rec->len, BLK) / BLK;

	while (len && !rec->p[len - 1])
		len--;
	chunk(b, zone, blk, rec->p, len);
	/* The append's last block written too, so that the write pointer covers it. */
	if (ALIGN_UP(len, BLK) / BLK < blocks)
		chunk(b, zone, blk + blocks - 1, (const uint8_t *)"", 1);
}

/* Blocks an append of rec takes. */
static uint32_t blocks(const struct buf *rec)
{
	return ALIGN_UP(rec->len, BLK) / BLK;
}

/*
 * Zone 1 finished, holding nkeys small puts (packed four to an append, as the
 * store batches them) and their summary, in one part or in two (each naming
 * the one before), padding records before the last part so that it ends at
 * the zone's capacity.
 */
static void full_zone(struct buf *b, unsigned nkeys, bool two_parts)
{
	uint64_t tag = fz_tag();
	struct buf r = { 0 };
	struct zsum s = { 0 }, s1 = { 0 }, s2;
	struct zsum_pos half = { 0 };
	uint32_t at = 0, first, last;
	struct zrec e;
	uint64_t off;

	reset(b);
	add_byte(b, 1);
	for (unsigned i = 0; i < nkeys; i += 4) {
		reset(&r);
		for (unsigned k = i; k < MIN(i + 4, nkeys); k++) {
			char key[16];
			size_t rec = r.len;

			snprintf(key, sizeof(key), "key%u", k);
			seal_put(&r, key, 10 + k, 40 + k, tag);
			note(&s, &r, rec, (uint64_t)at * BLK + rec, tag);
		}
		chunk_rec(b, 1, at, &r);
		at += blocks(&r);
	}
	s2 = s;
	if (two_parts) {
		/* The first half of the entries in part one, the rest in part two. */
		for (unsigned i = 0; i < nkeys / 2; i++)
			zsum_next(s.buf, s.len, &half, &e, &off);
		/* (Part two's first entry is told from part one's last, read before it.) */
		s1.buf = s.buf;
		s1.len = half.pos;
		s2.buf = s.buf + half.pos;
		s2.len = s.len - half.pos;
		reset(&r);
		seal_summary(&r, &s1, ZSUM_NONE, 30, tag, false);
		chunk_rec(b, 1, at, &r);
	}
	first = at;
	if (two_parts)
		at += blocks(&r);
	reset(&r);
	seal_summary(&r, &s2, two_parts ? (uint64_t)first * BLK : ZSUM_NONE, 30, tag, true);
	last = CAP_BLOCKS - blocks(&r);
	chunk_rec(b, 1, last, &r);
	/* Padding records from the last append to the summary, an append each. */
	while (at < last) {
		reset(&r);
		seal_pad(&r, MIN((size_t)(last - at) * BLK, 1 * MiB), tag);
		chunk_rec(b, 1, at, &r);
		at += blocks(&r);
	}
	zsum_done(&s);
	free(r.p);
}

static void recovery(void)
{
	static const char *T = "fuzz-recovery";
	uint64_t tag = fz_tag();
	struct buf b = { 0 }, r = { 0 }, v = { 0 };

	/* An open zone: a put, a value in three chunks, a delete, an overwrite. */
	add_byte(&b, 0);
	seal_put(&r, "alpha", 1, 100, tag);
	chunk_rec(&b, 1, 0, &r);
	reset(&r);
	add_pattern(&v, 9000, 1);
	seal(&r, ZREC_PUT, "big", 2, v.p, 4000, 9000, 0, 0, 3, tag);
	chunk_rec(&b, 1, 1, &r);
	reset(&r);
	seal(&r, ZREC_PUT, "big", 2, v.p + 8000, 1000, 9000, 8000, 2, 3, tag);
	chunk_rec(&b, 1, 3, &r); /* chunks land out of order, as appends may */
	reset(&r);
	seal(&r, ZREC_PUT, "big", 2, v.p + 4000, 4000, 9000, 4000, 1, 3, tag);
	chunk_rec(&b, 1, 4, &r);
	/* A delete and a put packed in one append, a checkpoint in the next. */
	reset(&r);
	seal(&r, ZREC_DEL, "alpha", 3, NULL, 0, 0, 0, 0, 0, tag);
	seal_put(&r, "gamma", 4, 300, tag);
	chunk_rec(&b, 2, 0, &r);
	reset(&r);
	seal(&r, ZREC_SEQ, "", 1000, NULL, 0, 0, 0, 0, 0, tag);
	chunk_rec(&b, 2, 1, &r);
	reset(&r);
	seal_put(&r, "gamma", 5, 20, tag);
	chunk_rec(&b, 3, 0, &r);
	save(T, "open-zones", &b);

	full_zone(&b, 12, false);
	save(T, "full-zone-summary", &b);
	/*
	 * The same with the summary in two parts: recovery.c's read_parts() parses
	 * the header of the part before into the record of the part just read
	 * (a stack buffer's pointers left behind): use-after-scope, open.
	 */
	full_zone(&b, 2, true);
	save(T, "crash-summary-two-parts", &b);

	/*
	 * Three chunk records of one put that disagree on nchunks: recovery.c's
	 * assemble() counts chunks 0 and 1 of nchunks 2, then copies the locations
	 * of every part whose chunk matches, without checking nchunks again: the
	 * third (chunk 2 of 3) is written past the 2-entry array. Open.
	 */
	reset(&b);
	add_byte(&b, 0);
	reset(&v);
	add_pattern(&v, 2000, 3);
	reset(&r);
	seal(&r, ZREC_PUT, "k", 7, v.p, 1000, 2000, 0, 0, 2, tag);
	chunk_rec(&b, 1, 0, &r);
	reset(&r);
	seal(&r, ZREC_PUT, "k", 7, v.p + 1000, 1000, 2000, 1000, 1, 2, tag);
	chunk_rec(&b, 1, 1, &r);
	reset(&r);
	seal(&r, ZREC_PUT, "k", 7, NULL, 0, 2000, 2000, 2, 3, tag);
	chunk_rec(&b, 1, 2, &r);
	save(T, "crash-assemble-chunk-overflow", &b);

	/*
	 * A whole record larger than the largest buffer of the pool (1 MiB): the
	 * scan indexes it (it accepts records up to 4 MiB), and a get of it waits
	 * for a buffer that can never be: it never completes. Open.
	 */
	reset(&b);
	add_byte(&b, 0);
	reset(&v);
	add_zeros(&v, 1536 * 1024);
	reset(&r);
	seal(&r, ZREC_PUT, "huge", 1, v.p, v.len, v.len, 0, 0, 1, tag);
	chunk_rec(&b, 1, 0, &r);
	save(T, "crash-get-record-over-pool", &b);

	/*
	 * A record with the highest sequence number: the next one wraps to 0, so
	 * a put acknowledged after the restart is older than what the media holds
	 * and a get returns the old value. Open.
	 */
	reset(&b);
	add_byte(&b, 0);
	reset(&r);
	seal_put(&r, "k", UINT64_MAX, 10, tag);
	chunk_rec(&b, 1, 0, &r);
	save(T, "crash-seq-wraps", &b);

	/*
	 * A zone written to the end of its capacity with nothing but garbage: it
	 * holds no record, so its summary list is empty (NULL). The first put
	 * finds no room in it and finishes it; zones.c's compact_keys() then
	 * walks the empty list, and summary.c's zsum_next() computes NULL + 0:
	 * undefined behaviour, UBSan aborts. Open.
	 */
	reset(&b);
	add_byte(&b, 0);
	chunk(&b, 1, 508, (const uint8_t *)"\xff", 1);
	save(T, "crash-finish-empty-summary", &b);
	free(b.p);
	free(r.p);
	free(v.p);
}

/* --- a device image for the daemon, and back to an input --- */

static int make_image(const char *img)
{
	struct zdev_opts o = { .path = img,
			       .backend = "file",
			       .size = NR_ZONES * ZONE_SIZE,
			       .zone_size = ZONE_SIZE,
			       .format = true };
	struct zsuper sb = { .version = ZSUPER_VERSION,
			     .nr_zones = NR_ZONES,
			     .zone_size = ZONE_SIZE,
			     .block = BLK,
			     .rec_max = 64 * 1024, /* as fuzz-recovery's superblock */
			     .ctime = 1700000000 };
	uint8_t blk[BLK] __attribute__((aligned(BLK)));
	struct zerr err = { "" };
	struct zdev *d;
	int fd;

	if (zdev_open(&o, &d, &err))
		fz_die("%s: %s", img, err.msg);
	zdev_close(d);
	memcpy(sb.uuid, fz_uuid, 16);
	memset(blk, 0, sizeof(blk));
	zsuper_encode(&sb, blk);
	fd = open(img, O_RDWR);
	if (fd < 0 || pwrite(fd, blk, BLK, FILE_HDR) != BLK)
		fz_die("%s: %s", img, strerror(errno));
	memset(blk, 0, sizeof(blk));
	memcpy(blk, "ZAPFFIN1", 8);
	if (pwrite(fd, blk, BLK, FILE_HDR + ZONE_SIZE - BLK) != BLK || fsync(fd))
		fz_die("%s: %s", img, strerror(errno));
	close(fd);
	return 0;
}

static bool zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static int extract(const char *img, const char *out)
{
	uint8_t *zone = malloc(ZONE_SIZE);
	struct buf b = { 0 };
	uint8_t flags = 0;
	int fd = open(img, O_RDONLY);

	if (fd < 0 || !zone)
		fz_die("%s: %s", img, strerror(errno));
	add_byte(&b, 0);
	for (uint32_t z = 1; z <= DATA_ZONES; z++) {
		uint64_t at = FILE_HDR + (uint64_t)z * ZONE_SIZE;
		off_t data = lseek(fd, at, SEEK_DATA), hole;
		uint32_t wp = 0;

		if (pread(fd, zone, ZONE_SIZE, at) != ZONE_SIZE)
			fz_die("%s: short read", img);
		/* The write pointer: the end of the last allocated block, as the backend sees it.
		 */
		while (data >= 0 && (uint64_t)data < at + ZONE_SIZE) {
			hole = lseek(fd, data, SEEK_HOLE);
			wp = MIN((uint64_t)hole, at + ZONE_SIZE) - at;
			data = lseek(fd, hole, SEEK_DATA);
		}
		if (wp > CAP_BLOCKS * BLK) {
			flags |= 1u << (z - 1);
			wp = CAP_BLOCKS * BLK;
		}
		/*
		 * Runs of blocks with data, each cut after its last non-zero byte; a run
		 * goes on into the next block only when its current one is full to the end.
		 */
		for (uint32_t blk = 0; blk < wp / BLK;) {
			uint32_t end = blk + 1;
			size_t len;

			if (zero(zone + (size_t)blk * BLK, BLK)) {
				blk++;
				continue;
			}
			while (end < wp / BLK && zone[(size_t)end * BLK - 1] &&
			       !zero(zone + (size_t)end * BLK, BLK))
				end++;
			len = (size_t)(end - blk) * BLK;
			while (!zone[(size_t)blk * BLK + len - 1])
				len--;
			chunk(&b, z, blk, zone + (size_t)blk * BLK, len);
			blk = end;
		}
		if (wp && zero(zone + wp - BLK, BLK))
			chunk(&b, z, wp / BLK - 1, (const uint8_t *)"", 1);
	}
	b.p[0] = flags;
	close(fd);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fz_die("%s: %s", out, strerror(errno));
	fz_write_all(fd, b.p, b.len);
	close(fd);
	free(zone);
	free(b.p);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "image"))
		return make_image(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "extract"))
		return extract(argv[2], argv[3]);
	if (argc != 2) {
		fprintf(stderr, "usage: gen-seeds DIR | image IMG | extract IMG OUT\n");
		return 2;
	}
	outdir = argv[1];
	mkdir(outdir, 0755);
	frames();
	records();
	client();
	recovery();
	return 0;
}
