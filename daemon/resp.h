/*
 * RESP2, the Redis protocol, on listeners of its own (--resp): so that
 * redis-cli, the clients of every language and proxies such as twemproxy
 * reach the store. resp.c is the protocol a listener's connections speak
 * (struct conn_proto); server.c owns the listeners.
 */
#ifndef ZAPD_RESP_H
#define ZAPD_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct pace;
struct store;

/* One of the daemon's counters, for stat and INFO. */
struct stat_item {
	const char *name;
	char kind; /* 'u', 'd' or 's' */
	union {
		uint64_t u;
		double d;
		const char *s;
	};
};

#define STAT_MAX 96

/* What the RESP connections of one daemon share; conns.owner points to it. */
struct resp_env {
	struct store *store;
	const char *password; /* AUTH needed first; NULL: not */
	/* The daemon's counters, as stat shows them: how many were filled. */
	size_t (*stats)(void *arg, struct stat_item *items, size_t max);
	void *stats_arg;
	struct pace *pace; /* SCAN yields to requests */
	uint64_t next_id;  /* HELLO's client id */
};

extern const struct conn_proto resp_proto;

/* The state of c, a new connection of cs (cs->owner: the resp_env); -ENOMEM. */
int resp_conn_init(struct conns *cs, struct conn *c);

#endif
