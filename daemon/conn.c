#include "conn.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

#define IN_BUF	       (64u << 10)
#define READS_PER_TURN 16
#define IOV_BATCH      64

enum conn_rstate { R_INPUT, R_PUT, R_DISCARD };

struct conn {
	LIST_ENTRY(conn) link;
	struct conns *cs;
	int fd;
	struct ucred peer;
	time_t last_read;  /* when a request's bytes last arrived */
	time_t last_write; /* when responses last went out, or began to wait */
	struct event *rev, *wev;
	struct event *defer_ev; /* conn_defer's timer, made on first use */
	uint8_t *in;
	size_t in_start, in_end, in_cap;
	enum conn_rstate rs;
	uint64_t left;	    /* payload bytes still to come */
	struct zput *put;   /* R_PUT: where they go */
	struct zsnap *snap; /* the connection's snapshot, if it took one */
	struct store_waiter w;
	struct store_budget budget; /* the connection's share of buffer memory */
	STAILQ_HEAD(, out) outq;
	size_t out_bytes;
	unsigned inflight; /* requests not yet answered */
	unsigned refs;	   /* struct req pointing here */
	void *data;	   /* the protocol's */
	bool mid;	   /* the protocol is inside a request */
	bool reading, waiting, deferred, woken, eof, dead;
};

struct out {
	STAILQ_ENTRY(out) link;
	struct req *r; /* a piece of a get's value: the get goes on once it is written */
	bool last;
	const uint8_t *data;
	size_t dlen;
	size_t hlen;
	size_t done; /* bytes written, of hdr then data */
	uint8_t hdr[];
};

static time_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void conn_update(struct conn *c);

static void mem_ready(struct store_waiter *w)
{
	struct conn *c = container_of(w, struct conn, w);

	c->waiting = false;
	conn_update(c);
}

struct conn *conn_new(struct conns *cs, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	socklen_t len = sizeof(c->peer);

	if (!c)
		return NULL;
	c->cs = cs;
	c->fd = fd;
	c->in_cap = IN_BUF;
	c->in = malloc(c->in_cap);
	c->rev = event_new(cs->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(cs->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	if (!c->in || !c->rev || !c->wev) {
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		free(c->in);
		free(c);
		return NULL;
	}
	/* Left zero, as calloc made it, if the socket will not say. */
	getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->peer, &len);
	c->last_read = c->last_write = now_s();
	c->w.fn = mem_ready;
	store_budget_init(&c->budget, cs->lim->max_queued);
	STAILQ_INIT(&c->outq);
	conn_update(c);
	LIST_INSERT_HEAD(&cs->list, c, link);
	cs->n++;
	return c;
}

const struct ucred *conn_peer(const struct conn *c)
{
	return &c->peer;
}

bool conn_closed(const struct conn *c)
{
	return c->dead;
}

struct store_budget *conn_budget(struct conn *c)
{
	return &c->budget;
}

struct zsnap *conn_snapshot(const struct conn *c)
{
	return c->snap;
}

void *conn_data(const struct conn *c)
{
	return c->data;
}

void conn_set_data(struct conn *c, void *data)
{
	c->data = data;
}

void conn_set_mid(struct conn *c, bool mid)
{
	c->mid = mid;
}

void conn_set_snapshot(struct conn *c, struct zsnap *sn)
{
	struct zsnap *old = c->snap;

	c->snap = sn;
	store_snap_close(old);
}

static void conn_free(struct conn *c)
{
	event_free(c->rev);
	event_free(c->wev);
	if (c->defer_ev)
		event_free(c->defer_ev);
	free(c->in);
	free(c);
}

static void conn_unref(struct conn *c)
{
	if (--c->refs)
		return;
	if (c->dead)
		conn_free(c);
	else if (c->eof && STAILQ_EMPTY(&c->outq))
		conn_close(c, NULL); /* answered everything the client asked before it left */
}

struct req *req_new(struct conn *c, uint64_t id)
{
	struct req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->c = c;
	r->id = id;
	c->refs++;
	c->inflight++;
	return r;
}

void req_free(struct req *r)
{
	struct conn *c = r->c;

	free(r);
	c->inflight--;
	if (!c->dead)
		conn_update(c);
	conn_unref(c);
}

static void drop_outs(struct out *o)
{
	while (o) {
		struct out *next = STAILQ_NEXT(o, link);

		if (o->r) {
			store_get_abort(o->r->g);
			req_free(o->r);
		}
		free(o);
		o = next;
	}
}

void conn_close(struct conn *c, const char *why)
{
	struct out *outs = STAILQ_FIRST(&c->outq);

	if (c->dead)
		return;
	if (why)
		log_warn(c->cs->log, "client pid %d uid %u: closing the connection: %s",
			 (int)c->peer.pid, (unsigned)c->peer.uid, why);
	c->dead = true;
	event_del(c->rev);
	event_del(c->wev);
	if (c->defer_ev)
		event_del(c->defer_ev);
	close(c->fd);
	c->fd = -1;
	store_wait_cancel(&c->w);
	if (c->put) {
		store_put_abort(c->put);
		c->put = NULL;
	}
	LIST_REMOVE(c, link);
	c->cs->n--;
	c->refs++; /* dropping the queue must not free c under us */
	if (c->cs->proto->closed)
		c->cs->proto->closed(c->cs, c);
	STAILQ_INIT(&c->outq);
	drop_outs(outs);
	conn_set_snapshot(c, NULL);
	if (--c->refs == 0)
		conn_free(c);
}

void conn_finish(struct conn *c)
{
	c->eof = true;
	conn_update(c);
	c->refs++;
	conn_unref(c); /* closes it now if nothing is queued */
}

/* Whether a new request may start: the client's share of the daemon is not used up. */
static bool may_start(const struct conn *c)
{
	const struct conns *cs = c->cs;

	return !cs->stopping && c->inflight < cs->lim->max_inflight &&
	       c->out_bytes < cs->lim->max_queued;
}

/* A frame that has begun is always read to its end, unless memory is short. */
static bool want_read(const struct conn *c)
{
	if (c->dead || c->eof || c->waiting || c->deferred)
		return false;
	return c->rs != R_INPUT || c->mid || may_start(c);
}

/* Starts or stops reading, as the limits, buffer memory and the requests in flight allow. */
static void conn_update(struct conn *c)
{
	bool want = want_read(c);

	if (want == c->reading)
		return;
	c->reading = want;
	if (!want) {
		event_del(c->rev);
		return;
	}
	event_add(c->rev, NULL);
	/* The client's silence counts from now: we were not listening. */
	c->last_read = now_s();
	/* Requests may already sit in our buffer, with no readiness event to come. */
	event_active(c->rev, EV_READ, 0);
}

/* --- output --- */

int conn_queue(struct conn *c, struct req *r, const void *hdr, size_t hlen, const void *data,
	       size_t dlen, bool last)
{
	struct out *o = malloc(sizeof(*o) + hlen);

	if (!o)
		return -ENOMEM;
	*o = (struct out){ .r = r, .last = last, .data = data, .dlen = dlen, .hlen = hlen };
	if (r)
		r->queued = true;
	if (hlen)
		memcpy(o->hdr, hdr, hlen);
	if (STAILQ_EMPTY(&c->outq)) {
		event_add(c->wev, NULL);
		c->last_write = now_s();
	}
	STAILQ_INSERT_TAIL(&c->outq, o, link);
	c->out_bytes += hlen + dlen;
	return 0;
}

static void out_done(struct conn *c, struct out *o)
{
	c->out_bytes -= o->hlen + o->dlen;
	if (o->r) {
		struct req *r = o->r;

		r->queued = false;
		store_get_next(r->g);
		if (o->last)
			req_free(r);
	}
	free(o);
}

static int fill_iov(struct conn *c, struct iovec *iov)
{
	int n = 0;
	struct out *o;

	STAILQ_FOREACH(o, &c->outq, link)
	{
		if (n + 2 > IOV_BATCH)
			break;
		if (o->done < o->hlen)
			iov[n++] = (struct iovec){ o->hdr + o->done, o->hlen - o->done };
		if (o->dlen) {
			size_t off = o->done > o->hlen ? o->done - o->hlen : 0;

			iov[n++] = (struct iovec){ (void *)(o->data + off), o->dlen - off };
		}
	}
	return n;
}

/* n bytes went out: finish the outs they complete (an empty one is complete at once). */
static void consume(struct conn *c, size_t n)
{
	struct out *o;

	while ((o = STAILQ_FIRST(&c->outq))) {
		size_t take = MIN(o->hlen + o->dlen - o->done, n);

		o->done += take;
		n -= take;
		if (o->done < o->hlen + o->dlen)
			break;
		STAILQ_REMOVE_HEAD(&c->outq, link);
		out_done(c, o);
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct iovec iov[IOV_BATCH];
	ssize_t w;
	int n;

	c->refs++; /* a get ending here must not free c */
	while (!c->dead && !STAILQ_EMPTY(&c->outq)) {
		n = fill_iov(c, iov);
		w = n ? writev(c->fd, iov, n) : 0;
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c,
				   errno == EPIPE || errno == ECONNRESET ? NULL : strerror(errno));
			break;
		}
		consume(c, w);
		if (w > 0)
			c->last_write = now_s();
	}
	if (!c->dead && STAILQ_EMPTY(&c->outq))
		event_del(c->wev);
	if (!c->dead)
		conn_update(c);
	conn_unref(c);
}

/* --- input --- */

enum { NEED_INPUT, PAUSED, CLOSED, GO_ON };

static void compact(struct conn *c)
{
	memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
	c->in_end -= c->in_start;
	c->in_start = 0;
}

/* Makes the buffer able to hold need bytes from in_start on. */
int conn_want(struct conn *c, size_t need)
{
	uint8_t *in;

	if (c->in_start + need <= c->in_cap)
		return 0;
	compact(c);
	if (need <= c->in_cap)
		return 0;
	in = realloc(c->in, need);
	if (!in)
		return -ENOMEM;
	c->in = in;
	c->in_cap = need;
	return 0;
}

static int take_input(struct conn *c)
{
	ssize_t n;

	/* Finished (QUIT, a refused peer): what else it sent goes unread. */
	if (c->eof)
		return PAUSED;
	n = c->cs->proto->input(c->cs, c, c->in + c->in_start, c->in_end - c->in_start);
	if (n < 0 || c->dead)
		return CLOSED;
	if (n == 0)
		return c->deferred ? PAUSED : NEED_INPUT;
	c->woken = false;
	c->in_start += n;
	return GO_ON;
}

static void defer_end(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	c->deferred = false;
	c->woken = true;
	conn_update(c);
}

bool conn_woken(const struct conn *c)
{
	return c->woken;
}

int conn_defer(struct conn *c, unsigned usec)
{
	struct timeval tv = { .tv_sec = usec / 1000000, .tv_usec = usec % 1000000 };

	if (!c->defer_ev)
		c->defer_ev = evtimer_new(c->cs->base, defer_end, c);
	if (!c->defer_ev || evtimer_add(c->defer_ev, &tv))
		return -ENOMEM;
	c->deferred = true;
	conn_update(c);
	return 0;
}

void conn_payload(struct conn *c, uint64_t n, struct zput *put)
{
	c->left = n;
	c->put = put;
	c->rs = put ? R_PUT : R_DISCARD;
}

/* Hands buffered payload to the put; *dst, *room: where to read the rest straight into. */
static int feed_put(struct conn *c, uint8_t **dst, size_t *room)
{
	while (!store_put_filled(c->put)) {
		uint8_t *buf = store_put_buf(c->put, room, &c->w);
		size_t n;

		if (!buf) {
			if (!store_put_filled(c->put)) {
				c->waiting = true;
				conn_update(c);
				return PAUSED;
			}
			break; /* the put failed: the rest of the value is dropped */
		}
		n = MIN(*room, c->in_end - c->in_start);
		memcpy(buf, c->in + c->in_start, n);
		c->in_start += n;
		c->left -= n;
		store_put_fill(c->put, n);
		if (n < *room) {
			*dst = buf + n;
			*room -= n;
			return NEED_INPUT;
		}
	}
	c->put = NULL;
	c->rs = c->left ? R_DISCARD : R_INPUT;
	return GO_ON;
}

static int discard(struct conn *c)
{
	size_t n = MIN(c->left, c->in_end - c->in_start);

	c->in_start += n;
	c->left -= n;
	if (c->left)
		return NEED_INPUT;
	c->rs = R_INPUT;
	return GO_ON;
}

static int process(struct conn *c, uint8_t **dst, size_t *room)
{
	int ret;

	do {
		*dst = NULL;
		switch (c->rs) {
		case R_INPUT:
			if (!c->mid && !may_start(c)) {
				conn_update(c);
				return PAUSED;
			}
			ret = take_input(c);
			break;
		case R_PUT:
			ret = feed_put(c, dst, room);
			break;
		default:
			ret = discard(c);
			break;
		}
	} while (ret == GO_ON);
	return ret;
}

static void on_eof(struct conn *c)
{
	if (c->rs != R_INPUT || c->mid) {
		c->cs->cut_short++;
		conn_close(c, "the client went away in the middle of a request");
		return;
	}
	/*
	 * We read only once the protocol needed more: what is buffered is the
	 * start of a request that will never end. It is dropped; the requests
	 * before it are answered whole, as at a clean EOF, not cut mid-reply.
	 */
	if (c->in_end != c->in_start) {
		log_warn(c->cs->log,
			 "client pid %d uid %u: went away in the middle of a request: "
			 "it is dropped, the requests before it answered",
			 (int)c->peer.pid, (unsigned)c->peer.uid);
		c->in_start = c->in_end;
	}
	/* A client may shut down its sending side and still wait for answers. */
	c->eof = true;
	conn_update(c);
}

/*
 * An empty buffer grown for one large header goes back to its usual size:
 * a thousand idle connections must not each keep a megabyte.
 */
static void shrink(struct conn *c)
{
	uint8_t *in;

	if (c->in_cap <= IN_BUF)
		return;
	in = realloc(c->in, IN_BUF);
	if (!in)
		return;
	c->in = in;
	c->in_cap = IN_BUF;
}

static ssize_t read_more(struct conn *c, uint8_t *dst, size_t room)
{
	ssize_t n;

	if (dst && room >= 4096) {
		/* A value too big for our buffer goes straight to its store buffer. */
		n = read(c->fd, dst, room);
		if (n > 0) {
			c->left -= n;
			store_put_fill(c->put, n);
		}
		return n;
	}
	if (c->in_start == c->in_end) {
		c->in_start = c->in_end = 0;
		shrink(c);
	} else if (c->in_start > c->in_cap / 2) {
		compact(c);
	}
	n = read(c->fd, c->in + c->in_end, c->in_cap - c->in_end);
	if (n > 0)
		c->in_end += n;
	return n;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint8_t *dst;
	size_t room;
	ssize_t n;

	c->refs++;
	for (int i = 0;; i++) {
		/* All that is buffered is handled before yielding: no event would bring us back. */
		if (process(c, &dst, &room) != NEED_INPUT || i == READS_PER_TURN)
			break;
		n = read_more(c, dst, room);
		if (n > 0) {
			c->last_read = now_s();
			continue;
		}
		if (n == 0)
			on_eof(c);
		else if (errno != EAGAIN && errno != EINTR)
			conn_close(c, errno == ECONNRESET ? NULL : strerror(errno));
		break;
	}
	conn_unref(c);
}

static bool conn_sweep(struct conn *c, time_t now, unsigned timeout)
{
	bool mid_request = c->rs != R_INPUT || c->mid || c->in_end != c->in_start;

	/*
	 * Not reading (waiting for buffer memory, or at the client's share of
	 * requests in flight) is the daemon's doing, not the client's.
	 */
	if (mid_request && c->reading && now - c->last_read > timeout) {
		conn_close(c, "sent part of a request, then nothing for too long (--idle-timeout)");
		return true;
	}
	if (!STAILQ_EMPTY(&c->outq) && now - c->last_write > timeout) {
		conn_close(c, "has not read its responses for too long (--idle-timeout)");
		return true;
	}
	return false;
}

/* --- the set --- */

void conns_init(struct conns *cs, struct event_base *base, const struct zlog *log,
		const struct conn_limits *lim, const struct conn_proto *proto, void *owner)
{
	*cs =
	    (struct conns){ .base = base, .log = log, .lim = lim, .proto = proto, .owner = owner };
	LIST_INIT(&cs->list);
}

void conns_stop(struct conns *cs)
{
	struct conn *c;

	cs->stopping = true;
	LIST_FOREACH(c, &cs->list, link)
	conn_update(c);
}

void conns_close_all(struct conns *cs)
{
	while (!LIST_EMPTY(&cs->list))
		conn_close(LIST_FIRST(&cs->list), NULL);
}

bool conns_idle(const struct conns *cs)
{
	const struct conn *c;

	LIST_FOREACH(c, &cs->list, link)
	{
		if (c->inflight || !STAILQ_EMPTY(&c->outq))
			return false;
	}
	return true;
}

uint64_t conns_buffer_bytes(const struct conns *cs)
{
	const struct conn *c;
	uint64_t n = 0;

	LIST_FOREACH(c, &cs->list, link)
	n += c->in_cap;
	return n;
}

unsigned conns_sweep(struct conns *cs, time_t now, unsigned timeout)
{
	struct conn *c, *next;
	unsigned closed = 0;

	for (c = LIST_FIRST(&cs->list); c; c = next) {
		next = LIST_NEXT(c, link);
		closed += conn_sweep(c, now, timeout);
	}
	return closed;
}
