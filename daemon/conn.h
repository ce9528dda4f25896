/*
 * One client connection: reading frames (a put's value straight into store
 * buffers), writing response frames in the order they are queued (a get's
 * value straight from store buffers), and pausing reads while the client has
 * too much in flight. Used by server.c, which handles the requests.
 */
#ifndef ZAPD_CONN_H
#define ZAPD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "frame.h"
#include "store.h"

struct server;
struct out;

/* A request that outlives its dispatch: a put, delete or get in progress. */
struct req {
	struct conn *c;
	uint64_t id;
	struct zget *g;
	bool started; /* get: the first frame is out */
};

enum conn_rstate { R_PREFIX, R_PUT, R_DISCARD };

struct conn {
	LIST_ENTRY(conn) link;
	struct server *srv;
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	time_t last_read;  /* when a request's bytes last arrived */
	time_t last_write; /* when responses last went out, or began to wait */
	struct event *rev, *wev;
	uint8_t *in;
	size_t in_start, in_end, in_cap;
	enum conn_rstate rs;
	struct zap_frame fr;
	uint64_t left;	  /* payload bytes still to come */
	struct zput *put; /* R_PUT: where they go */
	struct store_waiter w;
	struct store_budget budget; /* the connection's share of buffer memory */
	STAILQ_HEAD(, out) outq;
	size_t out_bytes;
	unsigned inflight; /* requests not yet answered */
	unsigned refs;	   /* struct req pointing here */
	bool reading, waiting, eof, dead;
};

struct conn *conn_new(struct server *srv, int fd);
void conn_close(struct conn *c, const char *why);

/* Requests take a reference on their connection; the last one frees a closed one. */
struct req *req_new(struct conn *c, uint64_t id);
void req_free(struct req *r);

/*
 * Queues a frame: msg (an encoded Response) and dlen bytes of payload. With r,
 * the payload is a piece of r's value in a store buffer: once it is written
 * conn.c calls store_get_next(r->g), and ends r after the last piece.
 */
int conn_queue(struct conn *c, struct req *r, const void *msg, size_t mlen, const void *data,
	       size_t dlen, bool last);

/* Re-evaluates whether the connection may read, after limits change. Never frees c. */
void conn_update(struct conn *c);

/* Closes c if it stalled mid-request or stopped reading for longer than timeout seconds. */
bool conn_sweep(struct conn *c, time_t now, unsigned timeout);

#endif
