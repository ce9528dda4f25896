/*
 * libzappend-client: talk to zappendd over its Unix socket.
 *
 * Every function returns 0 or a negative errno. The daemon's answers:
 *   -ENOENT  key not found          -ENOSPC  the store is full
 *   -E2BIG   key or value too large -EINVAL  bad argument or request
 *   -EBUSY   the daemon is busy     -EIO     device error or corrupted data
 *                                            (also an INTERNAL daemon failure)
 *   -ESTALE  the snapshot read is gone (zap_snapshot)
 * The connection's failures, which no answer shares:
 *   -ECONNREFUSED  no daemon listens on the socket (or the socket is missing)
 *   -EACCES        the socket's permissions, or the daemon's allow list,
 *                  refuse this user
 *   -EPIPE, -ECONNRESET  the daemon went away
 *   -EPROTO        the daemon sent something this library cannot parse
 * And from the library itself: -ENOMEM, -ECANCELED (the client is closing),
 * -ENOBUFS (zap_get_into: the value is larger than the buffer).
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
 * calls on a shared client yourself. Different clients share nothing.
 *
 * Besides the synchronous calls below, a client offers a pipelined
 * asynchronous API (zap_put_async and friends, further down), built on the
 * same engine; both may be used on one client.
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

/*
 * The structs callers allocate or index in arrays keep room to grow: new
 * fields take reserved space (zeroed by the library) rather than change the
 * size, so programs built against this header keep working with newer
 * libraries. zap_result is only ever allocated by the library.
 */
struct zap_put_info {
	uint32_t zone; /* zone of the value's first record */
	uint32_t reserved0;
	uint64_t offset; /* byte offset of that record within its zone */
	uint64_t seq;	 /* sequence number of the put */
	uint64_t reserved[5];
};

/* socket_path NULL: $ZAPPEND_SOCKET if set, else ZAP_DEFAULT_SOCKET. */
int zap_connect(const char *socket_path, zap_client **out);
void zap_close(zap_client *c); /* accepts NULL */

int zap_put(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen,
	    struct zap_put_info *info);
/* On success *val is malloc()ed (free() it; non-NULL even for an empty value). */
int zap_get(zap_client *c, const void *key, size_t klen, void **val, size_t *vlen);
/*
 * The value into the caller's buffer of cap bytes, its length in *vlen.
 * -ENOBUFS when it is larger: *vlen tells how large (the bytes are dropped).
 */
int zap_get_into(zap_client *c, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen);
int zap_del(zap_client *c, const void *key, size_t klen);

/*
 * Keys starting with prefix, in byte order, handed one at a time to fn
 * (prefix may be NULL when plen is 0: every key). The listing is gathered
 * with zap_scan and sorted here, so it holds every key it lists in memory
 * and costs the daemon no more than a scan; fn may call other functions on
 * c. A non-zero return from fn stops the listing and is returned.
 */
typedef int (*zap_list_fn)(const void *key, size_t klen, void *arg);
int zap_list(zap_client *c, const void *prefix, size_t plen, zap_list_fn fn, void *arg);

/*
 * One step of a scan of the keys starting with prefix, in no order: *cursor
 * 0 starts a scan; the step hands fn about count keys (0: the daemon's
 * default; a step may hand none and still not be the last) and sets *cursor
 * for the next step, 0 once the scan is done. Each step costs the daemon work
 * bounded by count, however many keys it holds. A key present from the first
 * step to the last is handed over exactly once; one put or deleted meanwhile
 * may or may not be. A non-zero return from fn stops the step, leaves *cursor
 * as it was and is returned. -EINVAL: a cursor the daemon did not give (it
 * restarted since): start again.
 */
int zap_scan(zap_client *c, const void *prefix, size_t plen, uint64_t *cursor, size_t count,
	     zap_list_fn fn, void *arg);

/* A round trip that costs the daemon nothing: 0 when it answers. */
int zap_ping(zap_client *c);

/*
 * A snapshot: from zap_snapshot on, the client's gets and scans (zap_get,
 * zap_get_into, zap_get_async, zap_scan, zap_list) read the store as it was
 * at *seq, the last sequence number given out when it was taken, while puts
 * and deletes, this client's too, go on changing the live store. It lasts
 * until zap_snapshot_end, the next zap_snapshot or zap_close. The daemon
 * drops a snapshot when a put needs the room its old versions take, or when
 * too many keys changed since; it lives on one connection, so it is gone
 * when the connection is lost: reads of it then fail with -ESTALE.
 * -EBUSY: the daemon has as many snapshots open as it allows; -ESTALE: it
 * dropped this one before it was ready (retry). A snapshot is ready once
 * every put and delete the daemon received before it has ended: a client
 * that stops midway through sending a put holds it up, until the daemon's
 * --idle-timeout closes that client.
 */
int zap_snapshot(zap_client *c, uint64_t *seq);
/* Back to the live store. 0 also when the snapshot was gone already. */
int zap_snapshot_end(zap_client *c);

enum zap_stat_type { ZAP_STAT_U64, ZAP_STAT_DOUBLE, ZAP_STAT_STRING };

struct zap_stat_item {
	char *name;
	enum zap_stat_type type;
	uint64_t u;
	double d;
	char *s;
	uint64_t reserved[4];
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
	uint32_t reserved0;
	uint64_t reserved[4];
};

/* One entry per zone; free() the array. */
int zap_zones(zap_client *c, struct zap_zone **zones, size_t *n);

/* A static, human-readable message for a value returned by this library. */
const char *zap_strerror(int err);

/*
 * --- The pipelined asynchronous API ---
 *
 * Many requests in flight on one connection. zap_put_async, zap_get_async and
 * zap_del_async queue a request and return at once: 0, or a negative errno
 * when the request could not be queued (bad argument, no connection to the
 * daemon, out of memory, the client is closing) -- then its callback never
 * runs. A request that was queued gets its callback exactly once, with the
 * daemon's answer or with the error that ended it. The daemon answers out of
 * order; each answer is matched to its request by the id the library gave it.
 *
 * Nothing goes out nor comes in until the caller drives the client, in one of
 * two ways:
 *   - its own event loop (libevent, epoll, poll, io_uring): watch zap_fd() for
 *     reading, and for writing while zap_want_write() is true; call
 *     zap_process() when it is ready. zap_process never blocks and is safe
 *     with edge-triggered notification (it sends until the socket is full and
 *     reads until it is empty).
 *   - zap_wait_all(), which blocks until no request is pending.
 * Callbacks run only inside zap_process(), zap_wait_all() and zap_close().
 *
 * Callbacks may queue new requests (the way to keep a queue depth), call the
 * synchronous functions, zap_process() and zap_wait_all(), and zap_close(c):
 * then c stays valid until the callback returns and is freed when the
 * outermost zap_process()/zap_wait_all() returns (do not use it after that).
 *
 * The synchronous functions run on the same engine: they queue their request
 * behind any asynchronous ones, then send and read until it is answered. They
 * do not run callbacks: asynchronous requests that complete meanwhile keep
 * their callbacks until the next zap_process() or zap_wait_all(), so an event
 * loop that mixes both should call zap_process() after a synchronous call.
 *
 * Connection failures: when the connection breaks (the daemon restarted or
 * stopped, or sent something unparseable), every pending request fails with
 * that error (-EPIPE, -ECONNRESET, -EPROTO, ...); a put that fails so may or
 * may not have been stored. Asynchronous requests are never re-sent. The next
 * request, asynchronous or not, connects again; zap_fd() is then a new file
 * descriptor (-1 in between), so an event loop must re-read zap_fd() after
 * zap_process() and after queuing requests, and re-register it when it
 * changed. When zap_fd() is -1 and zap_pending() is not 0, the failed
 * requests' callbacks are waiting: call zap_process().
 *
 * Memory is the caller's to bound: every queued request holds about 200 bytes
 * plus its key until its callback has run, and a get's value is held in full
 * (malloc'ed at its announced size) once its answer starts to arrive. The
 * daemon reads at most about a thousand requests of one connection at a time;
 * the rest wait in the client. A queue depth of 16 to 256 gives the daemon
 * enough to batch; zap_pending() tells how many are outstanding.
 *
 * A put's value is not copied: it must stay valid and unchanged until the
 * put's callback runs (it goes out straight from the caller's memory, however
 * large). Keys are copied at once.
 */

enum zap_op { ZAP_OP_PUT = 1, ZAP_OP_GET = 2, ZAP_OP_DEL = 3 };

struct zap_result {
	enum zap_op op;
	int err; /* 0, or a negative errno as the synchronous calls return it */
	/*
	 * get, err 0: the value, malloc()ed and now the callback's: free() it (or
	 * keep it). Non-NULL even for an empty value. NULL otherwise.
	 */
	void *val;
	size_t vlen;
	/* put, err 0: zone, offset, seq; del, err 0: seq; get, err 0: the version's seq */
	struct zap_put_info info;
	/* The daemon's error message, NULL if none; valid during the callback only. */
	const char *message;
};

/* cb may be NULL: the result is dropped (a get's value freed). */
typedef void (*zap_cb)(zap_client *c, const struct zap_result *r, void *arg);

int zap_put_async(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen,
		  zap_cb cb, void *arg);
int zap_get_async(zap_client *c, const void *key, size_t klen, zap_cb cb, void *arg);
int zap_del_async(zap_client *c, const void *key, size_t klen, zap_cb cb, void *arg);

/* The connection's socket, or -1 while not connected. */
int zap_fd(const zap_client *c);
/* 1 when requests wait to be sent: watch zap_fd() for writing too. */
int zap_want_write(const zap_client *c);
/*
 * Sends what the socket takes, reads what has arrived, runs the callbacks of
 * the requests that completed (and sends what they queued). Never blocks.
 * Returns the number of callbacks run, or -EINVAL. Errors of requests go to
 * their callbacks.
 */
int zap_process(zap_client *c);
/*
 * Blocks until no asynchronous request is pending, running callbacks as they
 * complete (including those of requests the callbacks queue). 0, or -EINVAL,
 * or -ECANCELED when a callback closed the client.
 */
int zap_wait_all(zap_client *c);
/* Asynchronous requests queued whose callbacks have not run yet. */
unsigned zap_pending(const zap_client *c);

/*
 * zap_close() with requests pending: those not yet answered complete with
 * -ECANCELED, and every pending callback runs before zap_close returns;
 * requests they queue fail at once with -ECANCELED.
 */

#ifdef __cplusplus
}
#endif

#endif
