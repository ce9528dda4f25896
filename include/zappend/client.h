/*
 * libzappend-client: talk to zappendd over its Unix socket.
 *
 * Every function returns 0 or a negative errno:
 *   -ENOENT  key not found          -ENOSPC  the store is full
 *   -E2BIG   key or value too large -EINVAL  bad argument or request
 *   -EBUSY   the daemon is busy     -EIO     device error or corrupted data
 *                                            (also an INTERNAL daemon failure)
 *   -ECONNREFUSED, -ENOENT (no socket), -EPIPE, -ECONNRESET: connection
 *   -EPROTO  the daemon sent something this library cannot parse
 *
 * Only zap_connect returns -ENOENT for a missing socket; the other calls
 * report that as -ECONNREFUSED, so -ENOENT from them always means "not found".
 *
 * A connection error closes the connection and fails the call; the next call
 * connects again (once per call). A request none of which could be sent
 * because the daemon had closed the connection while the client was idle (it
 * was restarted) is sent again, once, on a new connection, so a restart
 * between calls goes unnoticed. A request that was sent, even in part, is
 * never repeated: a put that failed with a connection error may or may not
 * have been stored.
 *
 * A zap_client is not thread-safe: use one client per thread, or serialise
 * calls on a shared client yourself.
 */
#ifndef ZAPPEND_CLIENT_H
#define ZAPPEND_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZAP_DEFAULT_SOCKET "/run/zappend/zappend.sock"
#define ZAP_KEY_MAX_LEN	   1024

typedef struct zap_client zap_client;

struct zap_put_info {
	uint32_t zone;	 /* zone of the value's first record */
	uint64_t offset; /* byte offset of that record within its zone */
	uint64_t seq;	 /* sequence number of the put */
};

/* socket_path NULL: $ZAPPEND_SOCKET if set, else ZAP_DEFAULT_SOCKET. */
int zap_connect(const char *socket_path, zap_client **out);
void zap_close(zap_client *c); /* accepts NULL */

int zap_put(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen,
	    struct zap_put_info *info);
/* On success *val is malloc()ed (free() it; non-NULL even for an empty value). */
int zap_get(zap_client *c, const void *key, size_t klen, void **val, size_t *vlen);
int zap_del(zap_client *c, const void *key, size_t klen);

/*
 * Keys starting with prefix, in byte order, handed one at a time to fn
 * (prefix may be NULL when plen is 0: every key). The listing is fetched in
 * pages of 1000 keys; fn may call other functions on c. A non-zero return
 * from fn stops the listing and is returned.
 */
typedef int (*zap_list_fn)(const void *key, size_t klen, void *arg);
int zap_list(zap_client *c, const void *prefix, size_t plen, zap_list_fn fn, void *arg);

enum zap_stat_type { ZAP_STAT_U64, ZAP_STAT_DOUBLE, ZAP_STAT_STRING };

struct zap_stat_item {
	char *name;
	enum zap_stat_type type;
	uint64_t u;
	double d;
	char *s;
};

/* The daemon's counters, in the daemon's order. Free with zap_stat_free(). */
int zap_stat(zap_client *c, struct zap_stat_item **items, size_t *n);
void zap_stat_free(struct zap_stat_item *items, size_t n);

struct zap_zone {
	uint32_t id;
	char state[16];
	uint64_t start;
	uint64_t capacity;
	uint64_t write_pointer;
	uint64_t live_bytes;
	uint32_t inflight;
};

/* One entry per zone; free() the array. */
int zap_zones(zap_client *c, struct zap_zone **zones, size_t *n);

/* A static, human-readable message for a value returned by this library. */
const char *zap_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
