/*
 * The socket side: a libevent listener on a Unix stream socket, and the
 * requests its connections (conn.c) read: each is dispatched to the store
 * and answered, possibly out of order, values straight from store buffers.
 */
#ifndef ZAPD_SERVER_H
#define ZAPD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conn.h"
#include "log.h"
#include "pace.h"
#include "resp.h"
#include "store.h"

struct event_base;
struct event;

struct server_cfg {
	const char *socket_path;
	int socket_gid; /* group of the socket created; -1: the daemon's */
	/*
	 * inherit: serve on inherited_fd, a listening socket systemd passed
	 * (socket activation), instead of creating socket_path; its path is
	 * systemd's, never unlinked here.
	 */
	bool inherit;
	int inherited_fd;
	unsigned max_connections;
	struct conn_limits conn;    /* 0s: the defaults */
	unsigned idle_timeout;	    /* seconds a half-sent request or unread responses may wait */
	const uint32_t *allow_uids; /* peers allowed by uid or gid; none listed: everyone */
	size_t n_allow_uids;
	const uint32_t *allow_gids;
	size_t n_allow_gids;
	const char *resp;	   /* RESP listeners: "unix:PATH,HOST:PORT"; NULL: none */
	const char *resp_password; /* RESP clients must AUTH with it; NULL: they need not */
};

#define SERVER_MAX_INFLIGHT 1024u
#define SERVER_MAX_QUEUED   (16u << 20)
#define SERVER_IDLE_TIMEOUT 60u

struct server_stats {
	uint64_t connections; /* accepted so far */
	uint64_t rejected;    /* refused: too many connections */
	uint64_t idle_closed; /* connections closed for stalling mid-request or not reading */
	uint64_t denied;      /* refused: peer not among the allowed uids/gids */
};

/* A listening socket: its connections go to cs. */
struct listener {
	struct server *srv;
	struct conns *cs;
	int fd;
	struct event *ev;
	bool tcp;
	char *path; /* a Unix socket zappendd made: removed when it stops */
};

#define SERVER_MAX_LISTENERS 5 /* the native socket and four RESP ones */

struct server {
	struct event_base *base;
	struct store *store;
	const struct zlog *log;
	struct server_cfg cfg;
	struct listener lis[SERVER_MAX_LISTENERS]; /* the native one first */
	unsigned nlis;
	struct event *stop_timer;
	struct event *sweep_timer; /* once a second: connections stuck mid-request */
	struct conns conns;	   /* native */
	struct conns resp;
	struct resp_env renv;
	struct pace pace; /* listing steps against requests, on both protocols */
	unsigned stop_ticks;
	bool fixed_refusal_logged;
	time_t started;
	struct server_stats st;
};

/* Owns cfg->inherited_fd from here on, even when it fails. */
int server_start(struct server *srv, struct event_base *base, struct store *store,
		 const struct zlog *log, const struct server_cfg *cfg, struct zerr *err);
/* Stops accepting and reading; the loop exits once in-flight work is answered. */
void server_stop(struct server *srv);
void server_done(struct server *srv);

#endif
