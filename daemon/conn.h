/*
 * One client connection: reading frames (a put's value straight into store
 * buffers), writing responses in the order they are queued, keeping one
 * value's bytes contiguous on the stream, and pausing reads when the client
 * has too much in flight. Used by server.c, which handles the requests.
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
	bool streaming; /* get: the response has begun */
};

enum conn_rstate { R_PREFIX, R_PUT, R_DISCARD };

struct conn {
	LIST_ENTRY(conn) link;
	struct server *srv;
	int fd;
	pid_t pid;
	uid_t uid;
	struct event *rev, *wev;
	uint8_t *in;
	size_t in_start, in_end, in_cap;
	enum conn_rstate rs;
	struct zap_frame fr;
	uint64_t left;	  /* payload bytes still to come */
	struct zput *put; /* R_PUT: where they go */
	struct store_waiter w;
	STAILQ_HEAD(, out) outq, held;
	struct req *streaming; /* a get whose value is on its way out */
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
 * Queues a response: the frame prefix and msg (an encoded Response), then
 * dlen bytes of data. A get's value goes out in several calls: the first with
 * msg and plen the whole value's length, the later ones with msg NULL; after
 * each chunk is written conn.c calls store_get_next(r->g), after the last it
 * ends r. Other responses wait while a value is on its way out.
 */
int conn_queue(struct conn *c, struct req *r, const void *msg, size_t mlen, uint64_t plen,
	       const void *data, size_t dlen, bool last);

/* Re-evaluates whether the connection may read, after limits change. Never frees c. */
void conn_update(struct conn *c);

#define CONN_MAX_INFLIGHT  1024u
#define CONN_MAX_OUT_BYTES (8u << 20)

#endif
