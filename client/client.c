/*
 * libzappend-client: the synchronous and the pipelined asynchronous API of
 * include/zappend/client.h, both on one request engine.
 *
 * The engine owns one Unix stream connection. A request gets a fresh id, goes
 * into the table of pending requests (a hash on the id) and onto the send
 * queue as one frame: prefix and encoded Request in a buffer of the request,
 * the value (if any) straight from the caller's memory, never copied. The
 * send queue goes out with sendmsg() of many frames at once, never blocking
 * (MSG_DONTWAIT), so requests queued together leave in one system call.
 *
 * The receiving side is a state machine (prefix, header, payload) over an
 * input buffer: each response is matched to its pending request by id,
 * whatever the order; a frame nobody waits for is read and dropped. A get is
 * answered by one or more frames (the first announces value_len, all but the
 * last have more set, an error frame may end them early, other responses'
 * frames may come between): the value goes straight into one buffer of the
 * announced size, each frame's payload at its place; what already sits in the
 * input buffer is copied, the rest is read into place.
 *
 * A request is finished once it is answered (or failed) and no longer on the
 * send queue (the daemon may refuse a put before all of its value went out).
 * A finished synchronous request wakes its caller, which waits on the stack;
 * a finished asynchronous one goes onto the done queue, whose callbacks run
 * from zap_process, zap_wait_all and zap_close only -- never from inside the
 * state machine, so a callback may do anything with the client.
 *
 * The socket itself stays in blocking mode: the asynchronous paths pass
 * MSG_DONTWAIT, and a synchronous wait with nothing left to send simply
 * blocks in recv(), one system call per answer instead of poll and recv.
 *
 * A connection that fails (or a response that cannot be parsed) is closed and
 * every pending request fails; the next request connects again.
 */
#include <errno.h>
#include <poll.h>
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
#define HDR_INLINE  96u		/* a frame's prefix and Request fit here for keys < ~70 B */
#define IOV_BATCH   256		/* iovecs per sendmsg: up to 128 frames */
#define FREE_MAX    1024u	/* idle request objects kept for reuse */
#define TAB_MIN	    64u		/* buckets of the pending table, a power of two */
#define LIST_PAGE   500u	/* keys a SCAN step asks for: the daemon is busy that long */
#define ENV_SOCKET  "ZAPPEND_SOCKET"
#define MIN(a, b)   ((a) < (b) ? (a) : (b))
#define MAX(a, b)   ((a) > (b) ? (a) : (b))
#define PAYLOAD_MAX UINT32_MAX /* the frame prefix counts payload bytes in a u32 */

/* One request, from submission until it is finished. */
struct zreq {
	uint64_t id;
	enum zap_op op;		 /* async: what the callback is told; 0 for internal calls */
	bool want_payload;	 /* a get: collect the value its answer frames carry */
	bool async;		 /* finishes onto the done queue, for its callback */
	bool answered;		 /* its answer is complete, or it failed */
	bool in_tx;		 /* on the send queue */
	bool done;		 /* sync: finished, the caller may return */
	int err;		 /* the request failed: connection lost, out of memory, ... */
	Zappend__Response *resp; /* the first answer frame */
	uint8_t *payload;	 /* a get's value: plen bytes, got of them received */
	size_t plen, got;
	uint8_t *dst; /* zap_get_into: the caller's buffer, dst_cap bytes, for payload */
	size_t dst_cap;
	/* the frame: hlen bytes at hdr, then vlen bytes at val; sent of them written */
	uint8_t *hdr;
	size_t hlen;
	const uint8_t *val;
	size_t vlen, sent;
	zap_cb cb;
	void *arg;
	struct zreq *hnext; /* pending table chain */
	struct zreq *tnext; /* send queue */
	struct zreq *dnext; /* done queue, free list */
	uint8_t hbuf[HDR_INLINE];
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
	int fd; /* -1: not connected; the next request connects */
	char *path;
	uint64_t next_id;
	/* pending: sent or queued, not answered; by id */
	struct zreq **tab;
	size_t tab_mask, npend;
	struct zreq *tx_head, *tx_tail;	    /* frames not yet (fully) written */
	struct zreq *done_head, *done_tail; /* async requests whose callbacks are due */
	struct zreq *free_list;
	unsigned nfree;
	unsigned nasync; /* async requests whose callbacks have not run */
	unsigned depth;	 /* callbacks running (nested) */
	bool closing;	 /* zap_close was called: no new requests */
	bool snap;	 /* gets and scans read the connection's snapshot */
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
	case ZAPPEND__STATUS__STATUS_SNAPSHOT_GONE:
		return -ESTALE;
	default:
		return -EPROTO;
	}
}

/* Errors that say the daemon has closed the connection. */
static bool conn_gone(int err)
{
	return err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN;
}

/* --- pending requests: a hash on the id (ids are consecutive: id & mask spreads them) --- */

static int tab_grow(zap_client *c)
{
	size_t n = c->tab ? (c->tab_mask + 1) * 2 : TAB_MIN;
	struct zreq **t = calloc(n, sizeof(*t)), *q;

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; c->tab && i <= c->tab_mask; i++) {
		while ((q = c->tab[i])) {
			c->tab[i] = q->hnext;
			q->hnext = t[q->id & (n - 1)];
			t[q->id & (n - 1)] = q;
		}
	}
	free(c->tab);
	c->tab = t;
	c->tab_mask = n - 1;
	return 0;
}

static void tab_insert(zap_client *c, struct zreq *q)
{
	struct zreq **b = &c->tab[q->id & c->tab_mask];

	q->hnext = *b;
	*b = q;
	c->npend++;
}

static void tab_remove(zap_client *c, struct zreq *q)
{
	struct zreq **pp;

	for (pp = &c->tab[q->id & c->tab_mask]; *pp; pp = &(*pp)->hnext) {
		if (*pp == q) {
			*pp = q->hnext;
			q->hnext = NULL;
			c->npend--;
			return;
		}
	}
}

static struct zreq *tab_find(zap_client *c, uint64_t id)
{
	struct zreq *q;

	if (!c->tab)
		return NULL;
	for (q = c->tab[id & c->tab_mask]; q; q = q->hnext) {
		if (q->id == id)
			return q;
	}
	return NULL;
}

/* The only pending request, or NULL. */
static struct zreq *tab_single(zap_client *c)
{
	if (c->npend != 1)
		return NULL;
	for (size_t i = 0; i <= c->tab_mask; i++) {
		if (c->tab[i])
			return c->tab[i];
	}
	return NULL;
}

/* --- request objects --- */

static void req_release(struct zreq *q)
{
	if (q->resp)
		zappend__response__free_unpacked(q->resp, NULL);
	if (q->payload != q->dst)
		free(q->payload);
	if (q->hdr != q->hbuf)
		free(q->hdr);
	q->resp = NULL;
	q->payload = NULL;
	q->hdr = NULL;
}

/* A zeroed request for the async API, from the free list if it can. */
static struct zreq *req_alloc(zap_client *c)
{
	struct zreq *q = c->free_list;

	if (!q)
		return calloc(1, sizeof(*q));
	c->free_list = q->dnext;
	c->nfree--;
	memset(q, 0, offsetof(struct zreq, hbuf));
	return q;
}

static void req_recycle(zap_client *c, struct zreq *q)
{
	req_release(q);
	if (c->nfree >= FREE_MAX) {
		free(q);
		return;
	}
	q->dnext = c->free_list;
	c->free_list = q;
	c->nfree++;
}

/* Answered and off the send queue: hand it to its waiter, or its callback. */
static void req_finish(zap_client *c, struct zreq *q)
{
	if (!q->async) {
		q->done = true;
		return;
	}
	q->dnext = NULL;
	if (c->done_tail)
		c->done_tail->dnext = q;
	else
		c->done_head = q;
	c->done_tail = q;
}

/* Its answer is complete (or it failed): no longer pending. */
static void req_answered(zap_client *c, struct zreq *q)
{
	tab_remove(c, q);
	q->answered = true;
	if (!q->in_tx)
		req_finish(c, q);
}

/* The ABI: programs built against an older header index arrays of these. */
_Static_assert(sizeof(struct zap_put_info) == 64, "zap_put_info changed size");
_Static_assert(sizeof(struct zap_zone) == 96, "zap_zone changed size");
_Static_assert(sizeof(struct zap_stat_item) == 72, "zap_stat_item changed size");

/* Every field, the reserved ones zeroed: a caller's struct may hold anything. */
static void put_info(struct zap_put_info *info, const Zappend__Response *r)
{
	*info = (struct zap_put_info){ .zone = r->zone, .offset = r->offset, .seq = r->seq };
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
	/* The socket is gone: a connection failure, which must not read as "key not found". */
	if (ret == -ENOENT)
		return -ECONNREFUSED;
	return ret < 0 ? ret : fd;
}

static void rx_reset(struct rx *rx)
{
	rx->start = rx->end = 0;
	rx->st = RX_PREFIX;
	rx->to = NULL;
	rx->dst = NULL;
	rx->left = 0;
}

/* The stream is broken: close it, fail everything pending; the next request reconnects. */
static void conn_drop(zap_client *c, int err)
{
	struct zreq *q;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	rx_reset(&c->rx);
	while ((q = c->tx_head)) {
		c->tx_head = q->tnext;
		q->tnext = NULL;
		q->in_tx = false;
		if (q->answered)
			req_finish(c, q);
	}
	c->tx_tail = NULL;
	for (size_t i = 0; c->tab && i <= c->tab_mask; i++) {
		while ((q = c->tab[i])) {
			q->err = err;
			req_answered(c, q); /* unlinks q from the bucket */
		}
	}
}

static int conn_ensure(zap_client *c)
{
	int fd;

	if (c->fd >= 0)
		return 0;
	fd = sock_connect(c->path);
	if (fd < 0)
		return fd;
	c->fd = fd;
	return 0;
}

/* --- sending --- */

/* w more bytes of the send queue went out. */
static void tx_advance(zap_client *c, size_t w)
{
	while (w) {
		struct zreq *q = c->tx_head;
		size_t n = MIN(w, q->hlen + q->vlen - q->sent);

		q->sent += n;
		w -= n;
		if (q->sent < q->hlen + q->vlen)
			break;
		c->tx_head = q->tnext;
		if (!c->tx_head)
			c->tx_tail = NULL;
		q->tnext = NULL;
		q->in_tx = false;
		if (q->answered)
			req_finish(c, q);
	}
}

/* Writes the send queue until it is empty or the socket is full: 0 or -errno. */
static int tx_flush(zap_client *c)
{
	struct iovec iov[IOV_BATCH];
	struct msghdr msg = { .msg_iov = iov };
	ssize_t w;

	while (c->tx_head) {
		int n = 0;

		for (struct zreq *q = c->tx_head; q && n + 2 <= IOV_BATCH; q = q->tnext) {
			size_t off = q->sent;

			if (off < q->hlen) {
				iov[n++] = (struct iovec){ q->hdr + off, q->hlen - off };
				off = q->hlen;
			}
			if (off - q->hlen < q->vlen)
				iov[n++] = (struct iovec){ (void *)(q->val + (off - q->hlen)),
							   q->vlen - (off - q->hlen) };
		}
		msg.msg_iovlen = n;
		w = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		tx_advance(c, w);
	}
	return 0;
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
	struct zreq *q = tab_find(c, r->id);

	if (!q && r->id == 0 && r->status != ZAPPEND__STATUS__STATUS_OK) {
		q = tab_single(c);
		if (q && q->resp)
			q = NULL;
	}
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
	if (q->dst) {
		/* Too large for the caller's buffer: read and dropped, its size told. */
		if (q->plen > q->dst_cap)
			q->err = -ENOBUFS;
		else
			q->payload = q->dst;
		return;
	}
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
	if (r->status == ZAPPEND__STATUS__STATUS_DENIED) {
		/* The allow list refused us; the daemon closes the connection next. */
		zappend__response__free_unpacked(r, NULL);
		return -EACCES;
	}
	rx->start += rx->fr.hlen;
	rx_route(rx, rx_owner(c, r), r);
	rx->st = RX_PAYLOAD;
	return 1;
}

static void rx_frame_done(zap_client *c)
{
	struct rx *rx = &c->rx;
	struct zreq *q = rx->to;

	rx->to = NULL;
	rx->dst = NULL;
	rx->st = RX_PREFIX;
	if (q && rx->last) {
		if (q->want_payload && !q->err && status_ok(q->resp) && q->got != q->plen)
			q->err = -EPROTO; /* fewer bytes than announced */
		req_answered(c, q);
	}
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

static ssize_t recv_some(int fd, void *buf, size_t len, int flags)
{
	ssize_t n;

	do {
		n = recv(fd, buf, len, flags);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n ? n : -ECONNRESET; /* the daemon went away before answering */
}

/*
 * Reads more input (flags: MSG_DONTWAIT, or 0 to block): a value's bytes
 * straight into place, anything else into the buffer. Bytes read, or -errno
 * (-EAGAIN: nothing there).
 */
static ssize_t rx_read(zap_client *c, int flags)
{
	struct rx *rx = &c->rx;
	ssize_t n;

	if (rx->st == RX_PAYLOAD && rx->dst && !rx_buffered(rx)) {
		n = recv_some(c->fd, rx->dst, rx->left, flags);
		if (n > 0)
			rx_consumed(rx, NULL, n);
		if (n > 0 && !rx->left)
			rx_frame_done(c);
		return n;
	}
	if (!rx_buffered(rx)) {
		rx->start = rx->end = 0;
	} else if (rx->end == rx->cap) {
		/* Full up to its end: move what is left to the front. */
		memmove(rx->buf, rx->buf + rx->start, rx->end - rx->start);
		rx->end -= rx->start;
		rx->start = 0;
	}
	if (rx->end == rx->cap)
		return -EPROTO; /* cannot happen: rx_process takes what a full buffer holds */
	n = recv_some(c->fd, rx->buf + rx->end, rx->cap - rx->end, flags);
	if (n > 0)
		rx->end += n;
	return n;
}

/* Handles and reads input until none is left: 0, or the error that broke the stream. */
static int rx_drain(zap_client *c)
{
	ssize_t n;
	int ret;

	for (;;) {
		ret = rx_process(c);
		if (ret < 0)
			return ret;
		n = rx_read(c, MSG_DONTWAIT);
		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return n;
	}
}

/* --- the engine --- */

/*
 * The connection failed with err. Answers the daemon sent before it went away
 * still count: a failed write reads what is left to read first.
 */
static void conn_fail(zap_client *c, int err, bool writing)
{
	if (writing && c->fd >= 0 && rx_drain(c) == -EACCES)
		err = -EACCES; /* why the daemon closed it */
	conn_drop(c, err);
}

/* Sends and reads what can be without blocking. */
static void engine_poll(zap_client *c)
{
	int ret;

	if (c->fd < 0)
		return;
	ret = tx_flush(c);
	if (ret) {
		conn_fail(c, ret, true);
		return;
	}
	ret = rx_drain(c);
	if (ret)
		conn_fail(c, ret, false);
}

/*
 * Makes progress, blocking until some is possible: until sync request q is
 * finished, or (q NULL) until some async request is. Call only when one is
 * pending, so that an answer or a failure must come.
 */
static void engine_block(zap_client *c, const struct zreq *q)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN | POLLOUT };
	ssize_t n;
	int ret;

	if (c->fd < 0)
		return;
	ret = tx_flush(c);
	if (ret) {
		conn_fail(c, ret, true);
		return;
	}
	ret = rx_process(c);
	if (ret) {
		conn_fail(c, ret, false);
		return;
	}
	if (q ? q->done : c->done_head != NULL)
		return;
	if (!c->tx_head) {
		n = rx_read(c, 0); /* nothing to send: wait for the answer in recv itself */
		if (n < 0)
			conn_fail(c, n, false);
		return;
	}
	/* Both ways: the daemon may stop reading until we read its answers. */
	if (poll(&pfd, 1, -1) < 0)
		return; /* EINTR: just go round again */
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
		engine_poll(c);
}

/* Queues request q (frame rq with id assigned, then vlen bytes of val). */
static int engine_submit(zap_client *c, struct zreq *q, Zappend__Request *rq, const void *val,
			 size_t vlen)
{
	size_t hlen;
	int ret;

	if (c->closing)
		return -ECANCELED;
	ret = conn_ensure(c);
	if (!ret && (!c->tab || c->npend > c->tab_mask))
		ret = tab_grow(c);
	if (ret)
		return ret;
	rq->id = c->next_id;
	hlen = zappend__request__get_packed_size(rq);
	if (hlen > ZAP_FRAME_MAX_HEADER)
		return -E2BIG;
	q->hlen = ZAP_FRAME_PREFIX + hlen;
	q->hdr = q->hlen <= sizeof(q->hbuf) ? q->hbuf : malloc(q->hlen);
	if (!q->hdr)
		return -ENOMEM;
	zap_frame_encode(q->hdr, hlen, vlen);
	zappend__request__pack(rq, q->hdr + ZAP_FRAME_PREFIX);
	q->id = c->next_id++;
	q->val = val;
	q->vlen = vlen;
	q->sent = 0;
	q->in_tx = true;
	q->tnext = NULL;
	if (c->tx_tail)
		c->tx_tail->tnext = q;
	else
		c->tx_head = q;
	c->tx_tail = q;
	tab_insert(c, q);
	return 0;
}

/* Waits until synchronous request q is finished. */
static void engine_wait(zap_client *c, struct zreq *q)
{
	while (!q->done)
		engine_block(c, q);
}

/*
 * Sends rq (with value val) and waits for its answer; release q afterwards.
 * A connection the daemon closed while we were idle (it restarted) shows when
 * nothing of the request could be sent: then it is sent again once, on a new
 * connection.
 */
static int engine_call(zap_client *c, struct zreq *q, Zappend__Request *rq, const void *val,
		       size_t vlen)
{
	bool fresh = c->fd < 0;
	int ret = engine_submit(c, q, rq, val, vlen);

	if (ret)
		return ret;
	engine_wait(c, q);
	if (q->err && conn_gone(q->err) && !q->sent && !fresh) {
		struct zreq keep = *q;

		req_release(q);
		memset(q, 0, offsetof(struct zreq, hbuf));
		q->want_payload = keep.want_payload;
		q->dst = keep.dst;
		q->dst_cap = keep.dst_cap;
		ret = engine_submit(c, q, rq, val, vlen);
		if (ret)
			return ret;
		engine_wait(c, q);
	}
	return req_result(q);
}

/* Frees everything of a client whose requests are all finished and handed out. */
static void client_free(zap_client *c)
{
	struct zreq *q;

	conn_drop(c, -ECANCELED);
	while ((q = c->free_list)) {
		c->free_list = q->dnext;
		free(q);
	}
	free(c->tab);
	free(c->rx.buf);
	free(c->path);
	free(c);
}

/* Runs the callbacks of finished async requests, including ones finishing meanwhile. */
static int engine_dispatch(zap_client *c)
{
	struct zreq *q;
	int n = 0;

	c->depth++;
	while ((q = c->done_head)) {
		struct zap_result r = { .op = q->op, .err = req_result(q) };

		c->done_head = q->dnext;
		if (!c->done_head)
			c->done_tail = NULL;
		c->nasync--;
		if (q->resp && !r.err)
			put_info(&r.info, q->resp);
		if (q->resp && q->resp->message && *q->resp->message)
			r.message = q->resp->message;
		if (q->want_payload && !r.err) {
			r.val = q->payload;
			r.vlen = q->plen;
			if (!r.val)
				r.err = -EPROTO; /* an answer without the value */
		}
		if (q->cb) {
			if (!r.err && r.val)
				q->payload = NULL; /* the callback's now */
			q->cb(c, &r, q->arg);
		}
		req_recycle(c, q);
		n++;
	}
	c->depth--;
	return n;
}

/* A callback closed c: finish the close once no callback is running. 1 if c is gone. */
static int close_due(zap_client *c)
{
	if (!c->closing || c->depth)
		return 0;
	engine_dispatch(c);
	client_free(c);
	return 1;
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
		client_free(c);
		return fd;
	}
	c->fd = fd;
	*out = c;
	return 0;
}

ZAP_EXPORT void zap_close(zap_client *c)
{
	if (!c || c->closing)
		return;
	c->closing = true;
	conn_drop(c, -ECANCELED);
	if (c->depth)
		return; /* inside a callback: the outermost dispatcher finishes the close */
	close_due(c);
}

static void key_field(ProtobufCBinaryData *f, const void *key, size_t klen)
{
	f->data = (uint8_t *)key;
	f->len = klen;
}

static int check_put(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen)
{
	int ret = check_key(key, klen);

	if (!ret && (!c || (!val && vlen)))
		ret = -EINVAL;
	if (!ret && vlen > PAYLOAD_MAX)
		ret = -E2BIG;
	return ret;
}

ZAP_EXPORT int zap_put(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen,
		       struct zap_put_info *info)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { 0 };
	int ret = check_put(c, key, klen, val, vlen);

	if (ret)
		return ret;
	rq.op = ZAPPEND__OP__OP_PUT;
	key_field(&rq.key, key, klen);
	ret = engine_call(c, &q, &rq, val, vlen);
	if (!ret && info)
		put_info(info, q.resp);
	req_release(&q);
	return ret;
}

/* A synchronous get, its value collected into q (into q->dst when set). */
static int get_call(zap_client *c, const void *key, size_t klen, struct zreq *q)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;

	rq.op = ZAPPEND__OP__OP_GET;
	rq.snapshot = c->snap;
	key_field(&rq.key, key, klen);
	return engine_call(c, q, &rq, NULL, 0);
}

ZAP_EXPORT int zap_get(zap_client *c, const void *key, size_t klen, void **val, size_t *vlen)
{
	struct zreq q = { .want_payload = true };
	int ret = check_key(key, klen);

	if (!ret && (!c || !val || !vlen))
		ret = -EINVAL;
	if (ret)
		return ret;
	*val = NULL;
	*vlen = 0;
	ret = get_call(c, key, klen, &q);
	if (!ret && !q.payload)
		ret = -EPROTO; /* an answer without the value */
	if (!ret) {
		*val = q.payload;
		*vlen = q.plen;
		q.payload = NULL;
	}
	req_release(&q);
	return ret;
}

ZAP_EXPORT int zap_get_into(zap_client *c, const void *key, size_t klen, void *buf, size_t cap,
			    size_t *vlen)
{
	/* dst marks a get into the caller's buffer; with no room, it points where nothing is
	 * written. */
	struct zreq q = { .want_payload = true, .dst = cap ? buf : (void *)&q, .dst_cap = cap };
	int ret = check_key(key, klen);

	if (!ret && (!c || !vlen || (cap && !buf)))
		ret = -EINVAL;
	if (ret)
		return ret;
	*vlen = 0;
	ret = get_call(c, key, klen, &q);
	if (!ret || ret == -ENOBUFS)
		*vlen = q.plen;
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

/* --- the asynchronous API --- */

static int async_submit(zap_client *c, enum zap_op op, const void *key, size_t klen,
			const void *val, size_t vlen, zap_cb cb, void *arg)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq *q;
	int ret;

	if (c->closing)
		return -ECANCELED;
	q = req_alloc(c);
	if (!q)
		return -ENOMEM;
	q->op = op;
	q->async = true;
	q->want_payload = op == ZAP_OP_GET;
	q->cb = cb;
	q->arg = arg;
	rq.op = op == ZAP_OP_PUT   ? ZAPPEND__OP__OP_PUT
		: op == ZAP_OP_GET ? ZAPPEND__OP__OP_GET
				   : ZAPPEND__OP__OP_DEL;
	if (op == ZAP_OP_GET)
		rq.snapshot = c->snap;
	key_field(&rq.key, key, klen);
	ret = engine_submit(c, q, &rq, val, vlen);
	if (ret) {
		req_recycle(c, q);
		return ret;
	}
	c->nasync++;
	return 0;
}

ZAP_EXPORT int zap_put_async(zap_client *c, const void *key, size_t klen, const void *val,
			     size_t vlen, zap_cb cb, void *arg)
{
	int ret = check_put(c, key, klen, val, vlen);

	return ret ? ret : async_submit(c, ZAP_OP_PUT, key, klen, val, vlen, cb, arg);
}

ZAP_EXPORT int zap_get_async(zap_client *c, const void *key, size_t klen, zap_cb cb, void *arg)
{
	int ret = check_key(key, klen);

	if (!ret && !c)
		ret = -EINVAL;
	return ret ? ret : async_submit(c, ZAP_OP_GET, key, klen, NULL, 0, cb, arg);
}

ZAP_EXPORT int zap_del_async(zap_client *c, const void *key, size_t klen, zap_cb cb, void *arg)
{
	int ret = check_key(key, klen);

	if (!ret && !c)
		ret = -EINVAL;
	return ret ? ret : async_submit(c, ZAP_OP_DEL, key, klen, NULL, 0, cb, arg);
}

ZAP_EXPORT int zap_fd(const zap_client *c)
{
	return c ? c->fd : -1;
}

ZAP_EXPORT int zap_want_write(const zap_client *c)
{
	return c && c->tx_head;
}

ZAP_EXPORT unsigned zap_pending(const zap_client *c)
{
	return c ? c->nasync : 0;
}

ZAP_EXPORT int zap_process(zap_client *c)
{
	int n = 0;

	if (!c)
		return -EINVAL;
	engine_poll(c);
	do {
		n += engine_dispatch(c);
		if (close_due(c))
			return n;
		/* What the callbacks queued goes out now; a failure hands out more at once. */
		if (c->fd >= 0 && c->tx_head)
			engine_poll(c);
	} while (c->fd < 0 && c->done_head);
	return n;
}

ZAP_EXPORT int zap_wait_all(zap_client *c)
{
	if (!c)
		return -EINVAL;
	for (;;) {
		engine_dispatch(c);
		if (close_due(c))
			return -ECANCELED;
		if (c->closing)
			return -ECANCELED; /* closed by a callback of an outer dispatcher */
		if (!c->nasync)
			return 0;
		if (c->fd < 0 && !c->done_head)
			return -EPROTO; /* cannot happen: requests pending on no connection */
		engine_block(c, NULL);
	}
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	/* An empty key may come as a NULL pointer: memcmp must not see it. */
	int d = MIN(alen, blen) ? memcmp(a, b, MIN(alen, blen)) : 0;

	return d ? d : (alen > blen) - (alen < blen);
}

ZAP_EXPORT int zap_scan(zap_client *c, const void *prefix, size_t plen, uint64_t *cursor,
			size_t count, zap_list_fn fn, void *arg)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { 0 };
	int ret;

	if (!c || !fn || !cursor || (!prefix && plen))
		return -EINVAL;
	if (plen > ZAP_KEY_MAX_LEN) {
		*cursor = 0; /* no key is that long */
		return 0;
	}
	rq.op = ZAPPEND__OP__OP_SCAN;
	rq.snapshot = c->snap;
	key_field(&rq.key, prefix, plen);
	rq.cursor = *cursor;
	rq.limit = MIN(count, UINT32_MAX);
	ret = engine_call(c, &q, &rq, NULL, 0);
	for (size_t i = 0; !ret && i < q.resp->n_keys; i++) {
		const ProtobufCBinaryData *k = &q.resp->keys[i];

		ret = k->len > ZAP_KEY_MAX_LEN ? -EPROTO : fn(k->data, k->len, arg);
	}
	if (!ret)
		*cursor = q.resp->cursor;
	req_release(&q);
	return ret;
}

/* Every key of a listing, each as a 2-byte length and its bytes, to sort. */
struct keyset {
	uint8_t *buf;
	size_t len, cap;
	size_t n;
};

static int keyset_add(const void *key, size_t klen, void *arg)
{
	struct keyset *ks = arg;

	if (ks->len + 2 + klen > ks->cap) {
		size_t cap = MAX(ks->cap * 2, 1u << 16);
		uint8_t *buf = realloc(ks->buf, cap);

		if (!buf)
			return -ENOMEM;
		ks->buf = buf;
		ks->cap = cap;
	}
	ks->buf[ks->len] = klen & 0xff;
	ks->buf[ks->len + 1] = klen >> 8;
	if (klen)
		memcpy(ks->buf + ks->len + 2, key, klen);
	ks->len += 2 + klen;
	ks->n++;
	return 0;
}

static size_t keyset_len(const uint8_t *k)
{
	return k[0] | (size_t)k[1] << 8;
}

/* Byte d of key k plus one, or 0 past its end: a key sorts before those it begins. */
static unsigned keyset_byte(const uint8_t *k, size_t d)
{
	return d < keyset_len(k) ? k[2 + d] + 1u : 0;
}

static bool keyset_less(const uint8_t *a, const uint8_t *b, size_t d)
{
	size_t la = keyset_len(a), lb = keyset_len(b);

	return key_cmp(a + 2 + d, la - d, b + 2 + d, lb - d) < 0;
}

static void keyset_insertion(const uint8_t **keys, size_t n, size_t d)
{
	for (size_t i = 1; i < n; i++) {
		const uint8_t *k = keys[i];
		size_t j = i;

		for (; j > 0 && keyset_less(k, keys[j - 1], d); j--)
			keys[j] = keys[j - 1];
		keys[j] = k;
	}
}

/* A run of keys equal in their first d bytes, still to sort. */
struct keyrun {
	size_t off, n, d;
};

/*
 * Sorts keys into byte order: MSD radix sort, one byte a level, insertion
 * sort for short runs. A listing sorts millions of keys that share long
 * prefixes, where qsort's compare calls took most of the client's time and a
 * core from the daemon beside it. Runs wait on a heap stack, not in
 * recursion: keys are up to ZAP_KEY_MAX_LEN bytes deep. Runs are disjoint and
 * hold two keys or more, so n / 2 + 1 of them is room enough.
 */
static int keyset_sort(const uint8_t **keys, const uint8_t **tmp, size_t n)
{
	struct keyrun *stack = malloc((n / 2 + 1) * sizeof(*stack));
	size_t top = 0, count[257];

	if (!stack)
		return -ENOMEM;
	stack[top++] = (struct keyrun){ 0, n, 0 };
	while (top) {
		struct keyrun r = stack[--top];
		const uint8_t **k = keys + r.off;
		size_t first = 0, at = 0;

		if (r.n <= 32) {
			keyset_insertion(k, r.n, r.d);
			continue;
		}
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < r.n; i++)
			count[keyset_byte(k[i], r.d)]++;
		while (!count[first])
			first++;
		if (count[first] == r.n) { /* one bucket: nothing moves at this byte */
			if (first)
				stack[top++] = (struct keyrun){ r.off, r.n, r.d + 1 };
			continue;
		}
		for (unsigned c = 0; c < 257; c++) {
			size_t m = count[c];

			count[c] = at;
			/* Bucket 0 holds the keys that end at d: in place already. */
			if (c && m > 1)
				stack[top++] = (struct keyrun){ r.off + at, m, r.d + 1 };
			at += m;
		}
		for (size_t i = 0; i < r.n; i++)
			tmp[count[keyset_byte(k[i], r.d)]++] = k[i];
		memcpy(k, tmp, r.n * sizeof(*k));
	}
	free(stack);
	return 0;
}

/* The keys in byte order, handed to fn. */
static int keyset_emit(const struct keyset *ks, zap_list_fn fn, void *arg)
{
	const uint8_t **keys = malloc(MAX(ks->n, 1u) * 2 * sizeof(*keys));
	size_t off = 0;
	int ret = 0;

	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < ks->n; i++) {
		keys[i] = ks->buf + off;
		off += 2 + keyset_len(keys[i]);
	}
	ret = keyset_sort(keys, keys + ks->n, ks->n);
	for (size_t i = 0; i < ks->n && !ret; i++)
		ret = fn(keys[i] + 2, keyset_len(keys[i]), arg);
	free(keys);
	return ret;
}

ZAP_EXPORT int zap_list(zap_client *c, const void *prefix, size_t plen, zap_list_fn fn, void *arg)
{
	struct keyset ks = { 0 };
	uint64_t cursor = 0;
	int ret;

	if (!c || !fn || (!prefix && plen))
		return -EINVAL;
	do
		ret = zap_scan(c, prefix, plen, &cursor, LIST_PAGE, keyset_add, &ks);
	while (!ret && cursor);
	if (!ret)
		ret = keyset_emit(&ks, fn, arg);
	free(ks.buf);
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

/* A request with nothing but its op; the answer's seq into *seq, if seq. */
static int bare_call(zap_client *c, Zappend__Op op, uint64_t *seq)
{
	Zappend__Request rq = ZAPPEND__REQUEST__INIT;
	struct zreq q = { 0 };
	int ret;

	rq.op = op;
	ret = engine_call(c, &q, &rq, NULL, 0);
	if (!ret && seq)
		*seq = q.resp->seq;
	req_release(&q);
	return ret;
}

ZAP_EXPORT int zap_ping(zap_client *c)
{
	return c ? bare_call(c, ZAPPEND__OP__OP_PING, NULL) : -EINVAL;
}

ZAP_EXPORT int zap_snapshot(zap_client *c, uint64_t *seq)
{
	int ret;

	if (!c || !seq)
		return -EINVAL;
	c->snap = false;
	ret = bare_call(c, ZAPPEND__OP__OP_SNAPSHOT, seq);
	c->snap = !ret;
	return ret;
}

ZAP_EXPORT int zap_snapshot_end(zap_client *c)
{
	if (!c)
		return -EINVAL;
	c->snap = false;
	/*
	 * Lost with its connection: nothing to end, and no reason to connect for
	 * it. Else END goes even when zap_snapshot failed: the daemon may have
	 * opened one all the same.
	 */
	if (c->fd < 0)
		return 0;
	return bare_call(c, ZAPPEND__OP__OP_SNAPSHOT_END, NULL);
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
	case EACCES:
		return "permission denied: this user may not use the daemon";
	case EPIPE:
		return "connection to the daemon lost";
	case ECONNRESET:
		return "connection reset by the daemon";
	case EPROTO:
		return "the daemon sent a response this client cannot parse";
	case ENOMEM:
		return "out of memory";
	case ENOBUFS:
		return "the value is larger than the buffer given for it";
	case ESTALE:
		return "the snapshot is gone (dropped by the daemon, or its connection lost)";
	default:
		return strerror(err < 0 ? -err : err);
	}
}
