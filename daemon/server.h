/*
 * The socket side: a libevent listener on a Unix stream socket, connections
 * reading framed requests (values straight into store buffers) and writing
 * framed responses, possibly out of order, values straight from store buffers.
 */
#ifndef ZAPD_SERVER_H
#define ZAPD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "log.h"
#include "store.h"

struct event_base;
struct event;
struct conn;

struct server_cfg {
	const char *socket_path;
	/*
	 * inherit: serve on inherited_fd, a listening socket systemd passed
	 * (socket activation), instead of creating socket_path; its path is
	 * systemd's, never unlinked here.
	 */
	bool inherit;
	int inherited_fd;
	unsigned max_connections;
	const char *backend;
	bool sync;
};

struct server_stats {
	uint64_t connections; /* accepted so far */
	uint64_t rejected;    /* refused: too many connections */
	uint64_t bad_frames;  /* connections closed for a broken stream */
};

struct server {
	struct event_base *base;
	struct store *store;
	const struct zlog *log;
	struct server_cfg cfg;
	int lfd;
	struct event *lev;
	struct event *stop_timer;
	LIST_HEAD(, conn) conns;
	unsigned nconns;
	bool stopping;
	unsigned stop_ticks;
	time_t started;
	struct server_stats st;
};

int server_start(struct server *srv, struct event_base *base, struct store *store,
		 const struct zlog *log, const struct server_cfg *cfg, struct zerr *err);
/* Stops accepting and reading; the loop exits once in-flight work is answered. */
void server_stop(struct server *srv);
void server_done(struct server *srv);

/* For conn.c: one decoded frame's header; plen payload bytes follow. */
void server_request(struct conn *c, const uint8_t *msg, size_t mlen, uint32_t plen);

#endif
