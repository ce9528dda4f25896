/*
 * Client connections: reading requests (a put's value straight into store
 * buffers), writing responses in the order they are queued (a get's value
 * straight from store buffers), and pausing reads while a client has too
 * much in flight. Only conn.c touches a connection: the protocol a listener
 * speaks (native frames in server.c, RESP in resp.c) takes requests from
 * its buffered input through conns.proto and answers through the functions
 * below, so no protocol knows how the bytes move.
 */
#ifndef ZAPD_CONN_H
#define ZAPD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

struct event_base;
struct zlog;
struct store_budget;
struct zput;
struct zget;
struct zsnap;
struct conn;
struct conns;

/* Read live: the owner may change them (SIGHUP) under running connections. */
struct conn_limits {
	unsigned max_inflight; /* requests in flight per connection */
	size_t max_queued;     /* response bytes queued per connection */
};

/* How a listener's connections speak. */
struct conn_proto {
	/*
	 * Takes what it can of buf, the len bytes c has buffered: returns how
	 * many it took (0: it needs more to go on, or deferred the request:
	 * conn_defer), or -1 once it closed c or ended it (conn_finish).
	 * Called again while it takes bytes and the client's share allows.
	 */
	ssize_t (*input)(struct conns *cs, struct conn *c, const uint8_t *buf, size_t len);
	/* c is closing, its state to be dropped; answers would go nowhere. */
	void (*closed)(struct conns *cs, struct conn *c);
};

/* The connections of one listener, and what they share. */
struct conns {
	struct event_base *base;
	const struct zlog *log;
	const struct conn_limits *lim;
	const struct conn_proto *proto;
	void *owner;
	LIST_HEAD(, conn) list;
	unsigned n;
	bool stopping;	     /* no new request starts */
	uint64_t bad_frames; /* connections closed for a broken stream */
	uint64_t cut_short;  /* closed at EOF inside a value: replies cut */
};

void conns_init(struct conns *cs, struct event_base *base, const struct zlog *log,
		const struct conn_limits *lim, const struct conn_proto *proto, void *owner);
/* Stops reading new requests; those begun are read to their end and answered. */
void conns_stop(struct conns *cs);
void conns_close_all(struct conns *cs);
/* No connection has a request in flight or a response not yet written. */
bool conns_idle(const struct conns *cs);
/* What the connections' input buffers hold. */
uint64_t conns_buffer_bytes(const struct conns *cs);
/*
 * Closes the connections that stalled mid-request or stopped reading for
 * longer than timeout seconds; returns how many.
 */
unsigned conns_sweep(struct conns *cs, time_t now, unsigned timeout);

/* A connection on the accepted socket fd, or NULL (fd is left open). */
struct conn *conn_new(struct conns *cs, int fd);
void conn_close(struct conn *c, const char *why);
/* Sends what is queued, then closes; reads nothing more meanwhile. */
void conn_finish(struct conn *c);
/* The peer's credentials (SO_PEERCRED); zeros if the socket would not say. */
const struct ucred *conn_peer(const struct conn *c);
/* Closed: the client is gone, answers would go nowhere. */
bool conn_closed(const struct conn *c);
/* The connection's share of buffer memory, for the store calls made on its behalf. */
struct store_budget *conn_budget(struct conn *c);
/*
 * The snapshot the client reads from, or NULL. Setting one closes the one
 * before; closing the connection closes it.
 */
struct zsnap *conn_snapshot(const struct conn *c);
void conn_set_snapshot(struct conn *c, struct zsnap *sn);
/*
 * From input: the n bytes after those it takes are a payload, handed to put
 * as they arrive, or dropped if put is NULL; input is called again after.
 */
void conn_payload(struct conn *c, uint64_t n, struct zput *put);
/* From input, before it returns 0: the buffer will hold a request of n bytes. */
int conn_want(struct conn *c, size_t n);
/*
 * From input, before it returns 0 leaving the request at hand untaken: c
 * reads nothing for usec, then input is offered that request again.
 * Background work so yields the loop to other clients' requests.
 */
int conn_defer(struct conn *c, unsigned usec);
/* The request at hand waited (conn_defer) and is offered again. */
bool conn_woken(const struct conn *c);
/* The protocol is inside a request across calls of input (a sweep or EOF says so). */
void conn_set_mid(struct conn *c, bool mid);
/* The protocol's own state for c. */
void *conn_data(const struct conn *c);
void conn_set_data(struct conn *c, void *data);

/* A request that outlives its dispatch: a put, delete or get in progress. */
struct req {
	struct conn *c;
	uint64_t id;
	struct zget *g;
	bool started; /* get: the first frame is out */
	bool queued;  /* a piece of its value waits in the connection's queue */
};

/* Requests take a reference on their connection; the last one frees a closed one. */
struct req *req_new(struct conn *c, uint64_t id);
void req_free(struct req *r);

/*
 * Queues hlen bytes of hdr (copied) and dlen bytes of data. With r, the data
 * is a piece of r's value in a store buffer: once it is written conn.c calls
 * store_get_next(r->g), and ends r after the last piece; without, data must
 * live until written (NULL, or static).
 */
int conn_queue(struct conn *c, struct req *r, const void *hdr, size_t hlen, const void *data,
	       size_t dlen, bool last);

#endif
