/*
 * libzappend-client: the synchronous API of include/zappend/client.h on top
 * of a small request engine.
 *
 * The engine owns one Unix stream connection. A request gets a fresh id, is
 * linked on the client's pending list and goes out as one frame: prefix and
 * encoded Request in one buffer, the value (if any) as a second iovec, so a
 * value is never copied. The receiving side is a state machine (prefix,
 * header, payload) over an input buffer: each response is matched to its
 * pending request by id, whatever the order; a frame nobody waits for is read
 * and dropped. A get is answered by one or more frames (the first announces
 * value_len, all but the last have more set, an error frame may end them
 * early, other responses' frames may come between): the value goes straight
 * into one buffer of the announced size, each frame's payload at its place;
 * what already sits in the input buffer is copied, the rest is read into
 * place. The synchronous calls submit one request and run the receiver until
 * it completes; a pipelined API can submit many and run the same receiver
 * from an event loop.
 *
 * A connection that fails (or a response that cannot be parsed) is closed and
 * every pending request fails; the next call connects again.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "zappend/client.h"
#include "frame.h"
#include "zappend.pb-c.h"

#define ZAP_EXPORT __attribute__((visibility("default")))

#define RX_BUF	    (64u << 10) /* input buffer: prefixes, headers, small values */
#define HDR_STACK   4096u	/* an encoded request fits here unless it is odd */
#define LIST_PAGE   1000u
#define ENV_SOCKET  "ZAPPEND_SOCKET"
#define MIN(a, b)   ((a) < (b) ? (a) : (b))
#define PAYLOAD_MAX UINT32_MAX /* the frame prefix counts payload bytes in a u32 */

/* One request waiting for its response. */
struct zreq {
	uint64_t id;
	bool want_payload; /* a get: collect the value its answer frames carry */
	bool done;
	int err;		 /* the request failed: connection lost, out of memory, ... */
	Zappend__Response *resp; /* the first answer frame */
	uint8_t *payload;	 /* a get's value: plen bytes, got of them received */
	size_t plen, got;
	struct zreq *next;
};

enum rx_state { RX_PREFIX, RX_HEADER, RX_PAYLOAD };

/* The receiving side: where in the current response frame we are. */
struct rx {
	uint8_t *buf;
	size_t start, end, cap;
	enum rx_state st;
	struct zap_frame fr;
	struct zreq *to; /* the request this frame answers; NULL: nobody's */
	bool last;	 /* the frame ends its request's answer */
	uint8_t *dst;	 /* where the payload goes next; NULL: dropped */
	size_t left;	 /* payload bytes of the frame still to come */
};

struct zap_client {
	int fd; /* -1: not connected; the next call connects */
	char *path;
	uint64_t next_id;
	struct zreq *pending;
	struct rx rx;
};

/* --- errors --- */

static int status_errno(int status)
{
	switch (status) {
	case ZAPPEND__STATUS__STATUS_OK:
		return 0;
	case ZAPPEND__STATUS__STATUS_NOT_FOUND:
		return -ENOENT;
	case ZAPPEND__STATUS__STATUS_INVALID:
		return -EINVAL;
	case ZAPPEND__STATUS__STATUS_TOO_LARGE:
		return -E2BIG;
	case ZAPPEND__STATUS__STATUS_NO_SPACE:
		return -ENOSPC;
	case ZAPPEND__STATUS__STATUS_BUSY:
		return -EBUSY;
	case ZAPPEND__STATUS__STATUS_IO_ERROR:
	case ZAPPEND__STATUS__STATUS_INTERNAL: /* a failure inside the daemon */
		return -EIO;
	default:
		return -EPROTO;
	}
}

/* Errors that say the daemon has closed the connection. */
static bool conn_gone(int err)
{
	return err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN;
}

/* --- connection --- */

static int sock_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd, ret;

	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);
	do {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		if (ret < 0) {
			ret = -errno;
			close(fd);
		}
	} while (ret == -EINTR); /* a fresh socket is simpler than a half-done connect */
	return ret < 0 ? ret : fd;
}

static void req_fail(struct zreq *q, int err)
{
	q->done = true;
	q->err = err;
}

static void rx_reset(struct rx *rx)
{
	rx->start = rx->end = 0;
	rx->st = RX_PREFIX;
	rx->to = NULL;
	rx->dst = NULL;
	rx->left = 0;
}

/* The stream is broken: close it, fail everything pending; the next call reconnects. */
static void conn_drop(zap_client *c, int err)
{
	struct zreq *q;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	while ((q = c->pending)) {
		c->pending = q->next;
		req_fail(q, err);
	}
	rx_reset(&c->rx);
}

static int conn_ensure(zap_client *c)
{
	int fd;

	if (c->fd >= 0)
		return 0;
	fd = sock_connect(c->path);
	/* The socket is gone: a connection failure, which must not read as "key not found". */
	if (fd == -ENOENT)
		return -ECONNREFUSED;
	if (fd < 0)
		return fd;
	c->fd = fd;
	return 0;
}

/* --- pending requests --- */

static void req_link(zap_client *c, struct zreq *q)
{
	q->id = c->next_id++;
	q->next = c->pending;
	c->pending = q;
}

static void req_unlink(zap_client *c, struct zreq *q)
{
	struct zreq **pp;

	for (pp = &c->pending; *pp; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			q->next = NULL;
			return;
		}
	}
}

static struct zreq *req_find(zap_client *c, uint64_t id)
{
	struct zreq *q;

	for (q = c->pending; q; q = q->next) {
		if (q->id == id)
			return q;
	}
	return NULL;
}

static void req_complete(zap_client *c, struct zreq *q)
{
	req_unlink(c, q);
	q->done = true;
}

static void req_release(struct zreq *q)
{
	if (q->resp)
		zappend__response__free_unpacked(q->resp, NULL);
	free(q->payload);
	q->resp = NULL;
	q->payload = NULL;
}

/* 0, or the error the request ended with (its own, or the daemon's status). */
static int req_result(const struct zreq *q)
{
	if (q->err)
		return q->err;
	if (!q->resp)
		return -EPROTO;
	return status_errno(q->resp->status);
}

/* --- sending --- */

static void iov_advance(struct iovec **iov, int *n, size_t done)
{
	while (*n && done >= (*iov)->iov_len) {
		done -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
		(*iov)->iov_len -= done;
	}
}

/* Writes all of iov; *sent counts the bytes that went out, even on failure. */
static int tx_all(int fd, struct iovec *iov, int n, size_t *sent)
{
	struct msghdr msg = { 0 };
	ssize_t w;

	while (n && !iov[n - 1].iov_len)
		n--;
	while (n) {
		msg.msg_iov = iov;
		msg.msg_iovlen = n;
		w = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		*sent += w;
		iov_advance(&iov, &n, w);
	}
	return 0;
}

/* Sends one frame: prefix and encoded rq, then vlen bytes of val. */
static int tx_request(zap_client *c, const Zappend__Request *rq, const void *val, size_t vlen,
		      size_t *sent)
{
	size_t hlen = zappend__request__get_packed_size(rq);
	uint8_t stack[HDR_STACK], *hdr = stack;
	struct iovec iov[2];
	int ret;

	if (ZAP_FRAME_PREFIX + hlen > sizeof(stack)) {
		if (hlen > ZAP_FRAME_MAX_HEADER)
			return -E2BIG;
		hdr = malloc(ZAP_FRAME_PREFIX + hlen);
		if (!hdr)
			return -ENOMEM;
	}
	zap_frame_encode(hdr, hlen, vlen);
	zappend__request__pack(rq, hdr + ZAP_FRAME_PREFIX);
	iov[0] = (struct iovec){ hdr, ZAP_FRAME_PREFIX + hlen };
	iov[1] = (struct iovec){ (void *)val, vlen };
	ret = tx_all(c->fd, iov, 2, sent);
	if (hdr != stack)
		free(hdr);
	return ret;
}

/* --- receiving --- */

/* Makes room for need contiguous bytes from rx->start on. */
static int rx_room(struct rx *rx, size_t need)
{
	uint8_t *buf;

	if (rx->start + need <= rx->cap)
		return 0;
	memmove(rx->buf, rx->buf + rx->start, rx->end - rx->start);
	rx->end -= rx->start;
	rx->start = 0;
	if (need <= rx->cap)
		return 0;
	buf = realloc(rx->buf, need);
	if (!buf)
		return -ENOMEM;
	rx->buf = buf;
	rx->cap = need;
	return 0;
}

static size_t rx_buffered(const struct rx *rx)
{
	return rx->end - rx->start;
}

static int rx_prefix(struct rx *rx)
{
	int ret;

	if (rx_buffered(rx) < ZAP_FRAME_PREFIX)
		return 0;
	ret = zap_frame_decode(rx->buf + rx->start, &rx->fr);
	if (ret)
		return ret;
	rx->start += ZAP_FRAME_PREFIX;
	rx->st = RX_HEADER;
	return rx_room(rx, rx->fr.hlen) ?: 1;
}

/*
 * The request a response frame answers. The daemon answers a request it
 * cannot parse with id 0; with a single request pending, that is the one.
 */
static struct zreq *rx_owner(zap_client *c, const Zappend__Response *r)
{
	struct zreq *q = req_find(c, r->id);

	if (!q && r->id == 0 && r->status != ZAPPEND__STATUS__STATUS_OK && c->pending &&
	    !c->pending->next && !c->pending->resp)
		q = c->pending;
	return q;
}

static bool status_ok(const Zappend__Response *r)
{
	return r->status == ZAPPEND__STATUS__STATUS_OK;
}

/* A get's first frame announces the value: a buffer for all of it. */
static void value_begin(struct zreq *q, const Zappend__Response *r)
{
	q->plen = r->value_len;
	q->payload = r->value_len < SIZE_MAX ? malloc(q->plen ? q->plen : 1) : NULL;
	if (!q->payload)
		q->err = -ENOMEM; /* the value is read and dropped: the stream stays in sync */
}

/*
 * A frame of the value of get q (its first frame is q->resp): its payload is
 * the next piece, unless it carries an error, which ends the value early.
 */
static void rx_value_frame(struct rx *rx, struct zreq *q, const Zappend__Response *r)
{
	if (!status_ok(r)) {
		if (!q->err)
			q->err = status_errno(r->status);
		return;
	}
	if (r == q->resp)
		value_begin(q, r);
	rx->last = !r->more;
	if (!q->err && rx->left > q->plen - q->got)
		q->err = -EPROTO; /* more bytes than announced */
	if (!q->err)
		rx->dst = q->payload + q->got;
}

/* Decides what becomes of frame r and its payload: q NULL, nobody waits for it. */
static void rx_route(struct rx *rx, struct zreq *q, Zappend__Response *r)
{
	rx->to = q;
	rx->last = true;
	rx->dst = NULL;
	rx->left = rx->fr.plen;
	if (!q) {
		zappend__response__free_unpacked(r, NULL);
		return;
	}
	if (!q->resp)
		q->resp = r;
	if (q->want_payload && (r != q->resp || status_ok(r)))
		rx_value_frame(rx, q, r);
	if (r != q->resp)
		zappend__response__free_unpacked(r, NULL);
}

static int rx_header(zap_client *c)
{
	struct rx *rx = &c->rx;
	Zappend__Response *r;

	if (rx_buffered(rx) < rx->fr.hlen)
		return 0;
	r = zappend__response__unpack(NULL, rx->fr.hlen, rx->buf + rx->start);
	if (!r)
		return -EPROTO;
	rx->start += rx->fr.hlen;
	rx_route(rx, rx_owner(c, r), r);
	rx->st = RX_PAYLOAD;
	return 1;
}

static void rx_frame_done(zap_client *c)
{
	struct rx *rx = &c->rx;
	struct zreq *q = rx->to;

	if (q && rx->last) {
		if (q->want_payload && !q->err && status_ok(q->resp) && q->got != q->plen)
			q->err = -EPROTO; /* fewer bytes than announced */
		req_complete(c, q);
	}
	rx->to = NULL;
	rx->dst = NULL;
	rx->st = RX_PREFIX;
}

/* n payload bytes arrived: at rx->dst already, or to be copied there from src. */
static void rx_consumed(struct rx *rx, const uint8_t *src, size_t n)
{
	if (rx->dst) {
		if (src)
			memcpy(rx->dst, src, n);
		rx->dst += n;
		rx->to->got += n;
	}
	rx->left -= n;
}

static int rx_payload(zap_client *c)
{
	struct rx *rx = &c->rx;
	size_t n = MIN(rx->left, rx_buffered(rx));

	rx_consumed(rx, rx->buf + rx->start, n);
	rx->start += n;
	if (rx->left)
		return 0;
	rx_frame_done(c);
	return 1;
}

/* Handles what is buffered: 0 when more input is needed, or a negative errno. */
static int rx_process(zap_client *c)
{
	int ret;

	do {
		switch (c->rx.st) {
		case RX_PREFIX:
			ret = rx_prefix(&c->rx);
			break;
		case RX_HEADER:
			ret = rx_header(c);
			break;
		default:
			ret = rx_payload(c);
			break;
		}
	} while (ret > 0);
	return ret;
}

static ssize_t recv_some(int fd, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = recv(fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? n : -ECONNRESET; /* the daemon went away before answering */
}

/* Reads more input: a value's bytes straight into place, anything else into the buffer. */
static int rx_fill(zap_client *c)
{
	struct rx *rx = &c->rx;
	ssize_t n;

	if (rx->st == RX_PAYLOAD && rx->dst && !rx_buffered(rx)) {
		n = recv_some(c->fd, rx->dst, rx->left);
		if (n > 0)
			rx_consumed(rx, NULL, n);
		if (n > 0 && !rx->left)
			rx_frame_done(c);
		return n < 0 ? n : 0;
	}
	if (!rx_buffered(rx))
		rx->start = rx->end = 0;
	else if (rx->end == rx->cap)
		rx_room(rx, rx_buffered(rx)); /* only compacts: the buffer is larger */
	n = recv_some(c->fd, rx->buf + rx->end, rx->cap - rx->end);
	if (n > 0)
		rx->end += n;
	return n < 0 ? n : 0;
}

/* --- the engine's synchronous call --- */

static int engine_submit(zap_client *c, struct zreq *q, Zappend__Request *rq, const void *val,
			 size_t vlen, size_t *sent)
{
	int ret;

	req_link(c, q);
	rq->id = q->id;
	ret = tx_request(c, rq, val, vlen, sent);
	if (ret)
		req_unlink(c, q);
	return ret;
}

/*
 * Sends rq on a live connection. A connection the daemon closed while we were
 * idle (it restarted) shows when nothing of the request could be sent: then
 * the request is sent again once, on a new connection.
 */
static int engine_send(zap_client *c, struct zreq *q, Zappend__Request *rq, const void *val,
		       size_t vlen)
{
	bool fresh = c->fd < 0;
	size_t sent = 0;
	int ret;

	ret = conn_ensure(c);
	if (ret)
		return ret;
	ret = engine_submit(c, q, rq, val, vlen, &sent);
	if (ret && !sent && !fresh && conn_gone(ret)) {
		conn_drop(c, ret);
		ret = conn_ensure(c);
		if (ret)
			return ret;
		ret = engine_submit(c, q, rq, val, vlen, &sent);
	}
	if (ret && (sent || conn_gone(ret)))
		conn_drop(c, ret); /* part of a frame went out: the stream is out of step */
	return ret;
}

static int engine_wait(zap_client *c, struct zreq *q)
{
	int ret;

	while (!q->done) {
		ret = rx_process(c);
		if (!ret && !q->done)
			ret = rx_fill(c);
		if (ret < 0)
			conn_drop(c, ret);
	}
	return req_result(q);
}

/* Sends rq (with value val) and waits for its answer. Release q afterwards. */
static int engine_call(zap_client *c, struct zreq *q, Zappend__Request *rq, const void *val,
		       size_t vlen)
{
	int ret = engine_send(c, q, rq, val, vlen);

	if (ret)
		return ret;
	return engine_wait(c, q);
}

/* --- the API --- */

static int check_key(const void *key, size_t klen)
{
	if (!key || !klen)
		return -EINVAL;
	if (klen > ZAP_KEY_MAX_LEN)
		return -E2BIG;
	return 0;
}

static const char *default_path(void)
{
	const char *env = getenv(ENV_SOCKET);

	return env && *env ? env : ZAP_DEFAULT_SOCKET;
}

ZAP_EXPORT int zap_connect(const char *socket_path, zap_client **out)
{
	zap_client *c;
	int fd;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!socket_path)
		socket_path = default_path();
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->next_id = 1;
	c->path = strdup(socket_path);
	c->rx.cap = RX_BUF;
	c->rx.buf = malloc(c->rx.cap);
	fd = c->path && c->rx.buf ? sock_connect(c->path) : -ENOMEM;
	if (fd < 0) {
		zap_close(c);
		return fd;
	}
	c->fd = fd;
	*out = c;
	return 0;
}

ZAP_EXPORT void zap_close(zap_client *c)
{
	if (!c)
		return;
	conn_drop(c, -EPIPE);
	free(c->rx.buf);
	free(c->path);
	free(c);
}

static void key_field(ProtobufCBinaryData *f, const void *key, size_t klen)
{
	f->data = (uint8_t *)key;
	f->len = klen;
}

ZAP_EXPORT int zap_put(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen,
		       struct zap_put_info *info)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { 0 };
	int ret = check_key(key, klen);

	if (!ret && (!c || (!val && vlen)))
		ret = -EINVAL;
	if (!ret && vlen > PAYLOAD_MAX)
		ret = -E2BIG;
	if (ret)
		return ret;
	rq.op = ZAPPEND__OP__OP_PUT;
	key_field(&rq.key, key, klen);
	ret = engine_call(c, &q, &rq, val, vlen);
	if (!ret && info) {
		info->zone = q.resp->zone;
		info->offset = q.resp->offset;
		info->seq = q.resp->seq;
	}
	req_release(&q);
	return ret;
}

ZAP_EXPORT int zap_get(zap_client *c, const void *key, size_t klen, void **val, size_t *vlen)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { .want_payload = true };
	int ret = check_key(key, klen);

	if (!ret && (!c || !val || !vlen))
		ret = -EINVAL;
	if (ret)
		return ret;
	*val = NULL;
	*vlen = 0;
	rq.op = ZAPPEND__OP__OP_GET;
	key_field(&rq.key, key, klen);
	ret = engine_call(c, &q, &rq, NULL, 0);
	if (!ret && !q.payload)
		ret = -EPROTO; /* an answer without the value: cannot happen with rx_target */
	if (!ret) {
		*val = q.payload;
		*vlen = q.plen;
		q.payload = NULL;
	}
	req_release(&q);
	return ret;
}

ZAP_EXPORT int zap_del(zap_client *c, const void *key, size_t klen)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { 0 };
	int ret = check_key(key, klen);

	if (!ret && !c)
		ret = -EINVAL;
	if (ret)
		return ret;
	rq.op = ZAPPEND__OP__OP_DEL;
	key_field(&rq.key, key, klen);
	ret = engine_call(c, &q, &rq, NULL, 0);
	req_release(&q);
	return ret;
}

/* Where the next page starts: after the last key of this one. */
struct list_pos {
	uint8_t key[ZAP_KEY_MAX_LEN];
	size_t len;
};

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	int d = memcmp(a, b, MIN(alen, blen));

	return d ? d : (alen > blen) - (alen < blen);
}

/* Hands one page's keys to fn: 0, fn's non-zero value, or -errno. *more: another page. */
static int list_page(const Zappend__Response *r, struct list_pos *pos, zap_list_fn fn, void *arg,
		     bool *more)
{
	const ProtobufCBinaryData *last;
	int ret;

	*more = false;
	for (size_t i = 0; i < r->n_keys; i++) {
		ret = fn(r->keys[i].data, r->keys[i].len, arg);
		if (ret)
			return ret;
	}
	if (!r->more || !r->n_keys)
		return 0;
	last = &r->keys[r->n_keys - 1];
	/* A page must move forward, or paging would never end. */
	if (last->len > ZAP_KEY_MAX_LEN || key_cmp(last->data, last->len, pos->key, pos->len) <= 0)
		return -EPROTO;
	memcpy(pos->key, last->data, last->len);
	pos->len = last->len;
	*more = true;
	return 0;
}

ZAP_EXPORT int zap_list(zap_client *c, const void *prefix, size_t plen, zap_list_fn fn, void *arg)
{
	struct list_pos pos = { .len = 0 };
	bool more = false;
	int ret;

	if (!c || !fn || (!prefix && plen))
		return -EINVAL;
	if (plen > ZAP_KEY_MAX_LEN)
		return 0; /* no key is that long */
	do {
		Zappend__Request rq = ZAPPEND__REQUEST__INIT;
		struct zreq q = { 0 };

		rq.op = ZAPPEND__OP__OP_LIST;
		key_field(&rq.key, prefix, plen);
		key_field(&rq.start_after, pos.key, pos.len);
		rq.limit = LIST_PAGE;
		ret = engine_call(c, &q, &rq, NULL, 0);
		if (!ret)
			ret = list_page(q.resp, &pos, fn, arg, &more);
		req_release(&q);
	} while (!ret && more);
	return ret;
}

static int stat_item_copy(struct zap_stat_item *dst, const Zappend__StatItem *src)
{
	dst->name = strdup(src->name ? src->name : "");
	if (!dst->name)
		return -ENOMEM;
	switch (src->value_case) {
	case ZAPPEND__STAT_ITEM__VALUE_D:
		dst->type = ZAP_STAT_DOUBLE;
		dst->d = src->d;
		break;
	case ZAPPEND__STAT_ITEM__VALUE_S:
		dst->type = ZAP_STAT_STRING;
		dst->s = strdup(src->s ? src->s : "");
		if (!dst->s)
			return -ENOMEM;
		break;
	default:
		dst->type = ZAP_STAT_U64;
		dst->u = src->u;
		break;
	}
	return 0;
}

static int stat_copy(const Zappend__Response *r, struct zap_stat_item **items, size_t *n)
{
	struct zap_stat_item *it = calloc(r->n_stats ? r->n_stats : 1, sizeof(*it));
	int ret = 0;

	if (!it)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_stats && !ret; i++)
		ret = stat_item_copy(&it[i], r->stats[i]);
	if (ret) {
		zap_stat_free(it, r->n_stats);
		return ret;
	}
	*items = it;
	*n = r->n_stats;
	return 0;
}

ZAP_EXPORT int zap_stat(zap_client *c, struct zap_stat_item **items, size_t *n)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { 0 };
	int ret;

	if (!c || !items || !n)
		return -EINVAL;
	*items = NULL;
	*n = 0;
	rq.op = ZAPPEND__OP__OP_STAT;
	ret = engine_call(c, &q, &rq, NULL, 0);
	if (!ret)
		ret = stat_copy(q.resp, items, n);
	req_release(&q);
	return ret;
}

ZAP_EXPORT void zap_stat_free(struct zap_stat_item *items, size_t n)
{
	if (!items)
		return;
	for (size_t i = 0; i < n; i++) {
		free(items[i].name);
		free(items[i].s);
	}
	free(items);
}

static void zone_copy(struct zap_zone *dst, const Zappend__ZoneInfo *src)
{
	size_t len = src->state ? strnlen(src->state, sizeof(dst->state) - 1) : 0;

	dst->id = src->id;
	memcpy(dst->state, src->state, len);
	dst->state[len] = 0;
	dst->start = src->start;
	dst->capacity = src->capacity;
	dst->write_pointer = src->write_pointer;
	dst->live_bytes = src->live_bytes;
	dst->inflight = src->inflight;
}

ZAP_EXPORT int zap_zones(zap_client *c, struct zap_zone **zones, size_t *n)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { 0 };
	struct zap_zone *z = NULL;
	int ret;

	if (!c || !zones || !n)
		return -EINVAL;
	*zones = NULL;
	*n = 0;
	rq.op = ZAPPEND__OP__OP_ZONES;
	ret = engine_call(c, &q, &rq, NULL, 0);
	if (!ret) {
		z = calloc(q.resp->n_zones ? q.resp->n_zones : 1, sizeof(*z));
		ret = z ? 0 : -ENOMEM;
	}
	if (!ret) {
		for (size_t i = 0; i < q.resp->n_zones; i++)
			zone_copy(&z[i], q.resp->zones[i]);
		*zones = z;
		*n = q.resp->n_zones;
	}
	req_release(&q);
	return ret;
}

ZAP_EXPORT const char *zap_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return "success";
	case ENOENT:
		return "key not found";
	case ENOSPC:
		return "no space left on the store";
	case E2BIG:
		return "key or value too large";
	case EINVAL:
		return "invalid argument or request";
	case EBUSY:
		return "the daemon is busy; try again";
	case EIO:
		return "I/O error in the daemon, or corrupted data";
	case ECONNREFUSED:
		return "connection refused (is zappendd running?)";
	case EPIPE:
		return "connection to the daemon lost";
	case ECONNRESET:
		return "connection reset by the daemon";
	case EPROTO:
		return "the daemon sent a response this client cannot parse";
	case ENOMEM:
		return "out of memory";
	default:
		return strerror(err < 0 ? -err : err);
	}
}
