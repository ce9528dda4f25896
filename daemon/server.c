#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "resp.h"
#include "zappend.pb-c.h"

#define LIST_DEFAULT	 1000u
#define LIST_MAX	 10000u
#define LIST_MAX_BYTES	 (512u << 10)
#define STOP_POLL_MS	 20
#define STOP_GRACE_TICKS (30 * 1000 / STOP_POLL_MS)

/* --- responses --- */

static Zappend__Status status_of(int err)
{
	switch (err) {
	case 0:
		return ZAPPEND__STATUS__STATUS_OK;
	case -ENOENT:
		return ZAPPEND__STATUS__STATUS_NOT_FOUND;
	case -EINVAL:
		return ZAPPEND__STATUS__STATUS_INVALID;
	case -E2BIG:
		return ZAPPEND__STATUS__STATUS_TOO_LARGE;
	case -ENOSPC:
		return ZAPPEND__STATUS__STATUS_NO_SPACE;
	case -EBUSY:
	case -EAGAIN:
	case -ENOMEM:
		return ZAPPEND__STATUS__STATUS_BUSY;
	case -EACCES:
		return ZAPPEND__STATUS__STATUS_DENIED;
	case -ESTALE:
		return ZAPPEND__STATUS__STATUS_SNAPSHOT_GONE;
	case -EIO:
	case -EBADMSG:
	case -EROFS:
		return ZAPPEND__STATUS__STATUS_IO_ERROR;
	default:
		return ZAPPEND__STATUS__STATUS_INTERNAL;
	}
}

/* Sends r; on failure the connection is closed (it cannot stay in sync). */
static int send_response(struct conn *c, Zappend__Response *r, struct req *get, const void *data,
			 size_t dlen, bool last)
{
	size_t len = ZAP_FRAME_PREFIX + zappend__response__get_packed_size(r);
	uint8_t small[256], *buf = len <= sizeof(small) ? small : malloc(len);
	int ret;

	if (!buf) {
		conn_close(c, "out of memory for a response");
		return -ENOMEM;
	}
	zap_frame_encode(buf, len - ZAP_FRAME_PREFIX, dlen);
	zappend__response__pack(r, buf + ZAP_FRAME_PREFIX);
	ret = conn_queue(c, get, buf, len, data, dlen, last);
	if (buf != small)
		free(buf);
	if (ret)
		conn_close(c, "out of memory for a response");
	return ret;
}

static void respond_err(struct conn *c, uint64_t id, int err, const char *msg)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;

	r.id = id;
	r.status = status_of(err);
	r.message = (char *)(msg ? msg : err ? store_strerror(err) : "");
	send_response(c, &r, NULL, NULL, 0, true);
}

/* --- put, del --- */

static void put_done(void *arg, const struct zput_result *res)
{
	struct req *q = arg;
	struct conn *c = q->c;
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;

	if (!conn_closed(c)) {
		if (res->err) {
			respond_err(c, q->id, res->err, NULL);
		} else {
			r.id = q->id;
			r.zone = res->zone;
			r.offset = res->offset;
			r.seq = res->seq;
			send_response(c, &r, NULL, NULL, 0, true);
		}
	}
	req_free(q);
}

static void do_put(struct server *srv, struct conn *c, const Zappend__Request *rq, uint32_t plen)
{
	struct req *q = req_new(c, rq->id);
	struct zput *put;
	char msg[128];
	int ret;

	if (!q) {
		respond_err(c, rq->id, -ENOMEM, NULL);
		return;
	}
	ret = store_put_begin(srv->store, rq->key.data, rq->key.len, plen, conn_budget(c), put_done,
			      q, &put);
	if (ret) {
		if (ret == -E2BIG)
			store_limit_message(srv->store, msg, sizeof(msg), rq->key.len, plen);
		respond_err(c, rq->id, ret,
			    ret == -E2BIG    ? msg
			    : ret == -EINVAL ? "empty key"
					     : NULL);
		req_free(q);
		return;
	}
	conn_payload(c, plen, put);
}

static void do_del(struct server *srv, struct conn *c, const Zappend__Request *rq)
{
	struct req *q = req_new(c, rq->id);
	int ret;

	if (!q) {
		respond_err(c, rq->id, -ENOMEM, NULL);
		return;
	}
	ret = store_del(srv->store, rq->key.data, rq->key.len, conn_budget(c), put_done, q);
	if (ret) {
		respond_err(c, rq->id, ret, NULL);
		req_free(q);
	}
}

/* --- get --- */

static void get_chunk(void *arg, int err, const struct zget_chunk *ch)
{
	struct req *q = arg;
	struct conn *c = q->c;
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;

	if (err) {
		/* The store ended the get; a client drops the pieces it already has. */
		if (!conn_closed(c))
			respond_err(c, q->id, err, NULL);
		req_free(q);
		return;
	}
	if (conn_closed(c)) {
		store_get_abort(q->g);
		req_free(q);
		return;
	}
	r.id = q->id;
	r.more = !ch->last;
	if (!q->started) {
		r.value_len = ch->vlen;
		r.seq = ch->seq;
	}
	q->started = true;
	if (send_response(c, &r, q, ch->data, ch->dlen, ch->last)) {
		store_get_abort(q->g);
		req_free(q);
	}
}

/*
 * The snapshot the request reads (NULL: the live store); else false, and
 * the request is answered.
 */
static bool read_at(struct conn *c, const Zappend__Request *rq, const struct zsnap **at)
{
	struct zsnap *sn = conn_snapshot(c);
	const char *why = "this connection has no snapshot (was the connection lost?): take a "
			  "new one";
	int ret = -ESTALE;

	*at = NULL;
	if (!rq->snapshot)
		return true;
	if (sn)
		ret = store_snap_check(sn, &why);
	if (ret) {
		respond_err(c, rq->id, ret, why);
		return false;
	}
	*at = sn;
	return true;
}

static void do_get(struct server *srv, struct conn *c, const Zappend__Request *rq)
{
	const struct zsnap *at;
	struct req *q;
	int ret;

	if (!read_at(c, rq, &at))
		return;
	q = req_new(c, rq->id);
	if (!q) {
		respond_err(c, rq->id, -ENOMEM, NULL);
		return;
	}
	ret = store_get(srv->store, at, rq->key.data, rq->key.len, conn_budget(c), get_chunk, q,
			&q->g);
	if (ret) {
		respond_err(c, rq->id, ret, NULL);
		req_free(q);
	}
}

/* --- list --- */

struct list_acc {
	ProtobufCBinaryData *keys;
	size_t n;
	size_t cap; /* scan: room in keys */
	size_t bytes;
};

static int list_key(const void *key, size_t klen, void *arg)
{
	struct list_acc *a = arg;

	if (a->bytes + klen > LIST_MAX_BYTES)
		return 1;
	a->keys[a->n++] = (ProtobufCBinaryData){ klen, (uint8_t *)key };
	a->bytes += klen + 4;
	return 0;
}

static int scan_key(const void *key, size_t klen, void *arg)
{
	struct list_acc *a = arg;

	if (a->n == a->cap) {
		ProtobufCBinaryData *k = reallocarray(a->keys, a->cap * 2 + 64, sizeof(*k));

		if (!k)
			return -ENOMEM;
		a->keys = k;
		a->cap = a->cap * 2 + 64;
	}
	a->keys[a->n++] = (ProtobufCBinaryData){ klen, (uint8_t *)key };
	return 0;
}

static void do_list(struct server *srv, struct conn *c, const Zappend__Request *rq)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;
	size_t limit = rq->limit ? MIN(rq->limit, LIST_MAX) : LIST_DEFAULT;
	struct list_acc a = { .keys = malloc(limit * sizeof(*a.keys)) };
	bool more = false;
	int ret;

	if (rq->snapshot) {
		respond_err(c, rq->id, -EINVAL, "LIST does not read snapshots: use SCAN");
		goto out;
	}
	if (!a.keys) {
		respond_err(c, rq->id, -ENOMEM, NULL);
		goto out;
	}
	ret = zidx_list(srv->store->idx, rq->key.data, rq->key.len, rq->start_after.data,
			rq->start_after.len, limit, list_key, &a, &more);
	if (ret < 0) {
		respond_err(c, rq->id, ret, NULL);
		goto out;
	}
	r.id = rq->id;
	r.n_keys = a.n;
	r.keys = a.keys;
	r.more = more || ret > 0;
	send_response(c, &r, NULL, NULL, 0, true);
out:
	free(a.keys);
}

static void do_scan(struct server *srv, struct conn *c, const Zappend__Request *rq)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;
	size_t count = rq->limit ? MIN(rq->limit, LIST_MAX) : LIST_DEFAULT;
	struct list_acc a = { 0 };
	uint64_t cursor = rq->cursor;
	uint64_t start = pace_now_us();
	const struct zsnap *at;
	int ret;

	if (!read_at(c, rq, &at))
		return;
	ret = store_scan(srv->store, at, rq->key.data, rq->key.len, &cursor, count,
			 LIST_MAX_BYTES / 2, scan_key, &a);
	pace_spent(&srv->pace, start);
	if (ret < 0) {
		respond_err(c, rq->id, ret,
			    ret == -EINVAL ? "unknown scan cursor (did the daemon restart?): "
					     "start the scan again"
					   : NULL);
		goto out;
	}
	r.id = rq->id;
	r.n_keys = a.n;
	r.keys = a.keys;
	r.cursor = cursor;
	send_response(c, &r, NULL, NULL, 0, true);
out:
	free(a.keys);
}

/* --- snapshots --- */

static void snapshot_ready(void *arg, int err, uint64_t seq)
{
	struct req *q = arg;
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;

	if (conn_closed(q->c)) {
		req_free(q);
		return;
	}
	if (err == -ECANCELED) {
		respond_err(q->c, q->id, -ESTALE,
			    "ended by a later SNAPSHOT or SNAPSHOT_END before it was ready");
	} else if (err) {
		respond_err(q->c, q->id, err, NULL);
	} else {
		r.id = q->id;
		r.seq = seq;
		send_response(q->c, &r, NULL, NULL, 0, true);
	}
	req_free(q);
}

/* The connection's snapshot, replacing any it had, answered once it is ready. */
static void do_snapshot(struct server *srv, struct conn *c, const Zappend__Request *rq)
{
	struct req *q = req_new(c, rq->id);
	struct zsnap *sn;
	int ret;

	if (!q) {
		respond_err(c, rq->id, -ENOMEM, NULL);
		return;
	}
	conn_set_snapshot(c, NULL);
	ret = store_snap_open(srv->store, snapshot_ready, q, &sn);
	if (ret < 0) {
		respond_err(c, rq->id, ret,
			    ret == -EBUSY ? "too many snapshots open: retry once a dump ends"
					  : NULL);
		req_free(q);
		return;
	}
	conn_set_snapshot(c, sn);
	if (ret == 1)
		snapshot_ready(q, 0, store_snap_seq(sn));
}

/* --- stat, zones --- */

struct stat_acc {
	struct stat_item *items;
	size_t n, max;
};

static struct stat_item *stat_item(struct stat_acc *a, const char *name, char kind)
{
	/* Past the array's end, the last slot is overwritten: raise STAT_MAX then. */
	struct stat_item *it = &a->items[MIN(a->n, a->max - 1)];

	if (a->n < a->max)
		a->n++;
	it->name = name;
	it->kind = kind;
	return it;
}

static void stat_u(struct stat_acc *a, const char *name, uint64_t v)
{
	stat_item(a, name, 'u')->u = v;
}

static void stat_d(struct stat_acc *a, const char *name, double v)
{
	stat_item(a, name, 'd')->d = v;
}

static void stat_s(struct stat_acc *a, const char *name, const char *v)
{
	stat_item(a, name, 's')->s = v;
}

static void collect_stats(struct server *srv, struct stat_acc *a)
{
	const struct store *st = srv->store;
	struct store_space sp;

	store_space(st, &sp);
	stat_u(a, "keys", zidx_count(st->idx));
	/* The newest put or delete: a dump records where it began and ended. */
	stat_u(a, "sequence", st->next_seq - 1);
	stat_u(a, "index_bytes", zidx_memory(st->idx));
	stat_u(a, "live_bytes", sp.live);
	stat_u(a, "used_bytes", sp.used);
	stat_u(a, "capacity_bytes", sp.capacity);
	stat_u(a, "block_bytes", st->zones.block);
	stat_u(a, "zones_total", sp.zones);
	stat_u(a, "zones_empty", sp.empty);
	stat_u(a, "zones_open", sp.open);
	stat_u(a, "zones_full", sp.full);
	stat_u(a, "zones_other", sp.other);
	stat_u(a, "puts", st->st.puts);
	stat_u(a, "gets", st->st.gets);
	stat_u(a, "dels", st->st.dels);
	stat_u(a, "put_bytes", st->st.put_bytes);
	stat_u(a, "get_bytes", st->st.get_bytes);
	stat_u(a, "gc_bytes_moved", st->gc.bytes_moved);
	stat_u(a, "gc_records_moved", st->gc.records_moved);
	stat_u(a, "gc_tombstones_dropped", st->gc.tombstones_dropped);
	stat_u(a, "gc_zones_reclaimed", st->gc.zones_reclaimed);
	stat_u(a, "gc_victims_given_up", st->gc.victims_given_up);
	stat_u(a, "gc_records_restored", st->gc.records_restored);
	stat_s(a, "gc_policy", st->gc.policy == GC_GREEDY ? "greedy" : "cost-benefit");
	stat_u(a, "snapshots_open", st->nsnaps);
	stat_u(a, "snapshot_versions_kept", store_snap_versions(st));
	stat_u(a, "snapshots_dropped", st->st.snaps_dropped);
	stat_u(a, "zones_reset", st->zones.resets);
	stat_u(a, "zones_retired", st->zones.retired);
	stat_u(a, "zones_offline", st->zones.offline);
	stat_u(a, "zone_errors", st->st.zone_errors);
	stat_u(a, "batched_appends", st->st.batches);
	stat_u(a, "batched_records", st->st.batched_records);
	stat_u(a, "batched_holds", st->st.batched_holds);
	/* Everything the device was asked to write, over the value bytes clients put. */
	stat_d(a, "write_amplification",
	       st->st.put_bytes
		   ? (double)(st->st.appended_bytes + st->gc.bytes_moved + st->st.summary_bytes) /
			 st->st.put_bytes
		   : 0.0);
	stat_u(a, "waiting_for_space", st->space_waiters);
	stat_u(a, "appended_bytes", st->st.appended_bytes);
	stat_u(a, "max_inflight_per_zone", st->zones.max_inflight);
	stat_u(a, "flushes", st->st.flushes);
	stat_u(a, "errors", st->st.errors);
	stat_u(a, "corrupt_records", st->st.corrupt);
	stat_u(a, "torn_records", st->st.torn_records);
	stat_u(a, "unreadable_bytes", st->st.unreadable_bytes);
	stat_u(a, "recovered_records", st->st.recovered_records);
	stat_d(a, "recovery_seconds", st->st.recovery_seconds);
	stat_u(a, "recovery_zones_scanned", st->st.zones_scanned);
	stat_u(a, "recovery_zones_summarised", st->st.zones_summarised);
	stat_u(a, "recovery_zones_checkpointed", st->st.zones_checkpointed);
	stat_u(a, "summary_bytes", st->st.summary_bytes);
	stat_u(a, "connections", srv->conns.n + srv->resp.n);
	stat_u(a, "connections_resp", srv->resp.n);
	stat_u(a, "connection_buffer_bytes",
	       conns_buffer_bytes(&srv->conns) + conns_buffer_bytes(&srv->resp));
	stat_u(a, "connections_total", srv->st.connections);
	stat_u(a, "connections_rejected", srv->st.rejected);
	stat_u(a, "bad_frames", srv->conns.bad_frames);
	stat_u(a, "resp_protocol_errors", srv->resp.bad_frames);
	stat_u(a, "connections_idle_closed", srv->st.idle_closed);
	stat_u(a, "connections_denied", srv->st.denied);
	stat_u(a, "connections_cut_short", srv->conns.cut_short + srv->resp.cut_short);
	stat_u(a, "scan_steps_paced", srv->pace.waits);
	stat_u(a, "max_connections", srv->cfg.max_connections);
	stat_u(a, "max_inflight_per_connection", srv->cfg.conn.max_inflight);
	stat_u(a, "max_queued_bytes_per_connection", srv->cfg.conn.max_queued);
	stat_u(a, "idle_timeout_seconds", srv->cfg.idle_timeout);
	stat_u(a, "buffer_pool_bytes", st->pool->size);
	stat_u(a, "buffer_pool_free", st->pool->free_bytes);
	stat_u(a, "fixed_buffers", st->ring->fixed_buffers);
	stat_u(a, "max_value", st->cfg.max_value);
	stat_u(a, "uptime_seconds", time(NULL) - srv->started);
	stat_s(a, "backend", st->dev->info.backend);
	stat_s(a, "sync", st->cfg.sync ? "always" : "none");
	stat_s(a, "version", PACKAGE_VERSION);
}

static size_t server_stats(void *arg, struct stat_item *items, size_t max)
{
	struct stat_acc a = { .items = items, .max = max };

	collect_stats(arg, &a);
	return a.n;
}

static void do_stat(struct server *srv, struct conn *c, const Zappend__Request *rq)
{
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;
	struct stat_item items[STAT_MAX];
	Zappend__StatItem pb[STAT_MAX], *ptrs[STAT_MAX];
	size_t n = server_stats(srv, items, STAT_MAX);

	for (size_t i = 0; i < n; i++) {
		zappend__stat_item__init(&pb[i]);
		pb[i].name = (char *)items[i].name;
		if (items[i].kind == 'u') {
			pb[i].value_case = ZAPPEND__STAT_ITEM__VALUE_U;
			pb[i].u = items[i].u;
		} else if (items[i].kind == 'd') {
			pb[i].value_case = ZAPPEND__STAT_ITEM__VALUE_D;
			pb[i].d = items[i].d;
		} else {
			pb[i].value_case = ZAPPEND__STAT_ITEM__VALUE_S;
			pb[i].s = (char *)items[i].s;
		}
		ptrs[i] = &pb[i];
	}
	r.id = rq->id;
	r.n_stats = n;
	r.stats = ptrs;
	send_response(c, &r, NULL, NULL, 0, true);
}

static void do_zones(struct server *srv, struct conn *c, const Zappend__Request *rq)
{
	const struct zones *zs = &srv->store->zones;
	Zappend__Response r = ZAPPEND__RESPONSE__INIT;
	Zappend__ZoneInfo *zi = calloc(zs->n, sizeof(*zi));
	Zappend__ZoneInfo **zp = calloc(zs->n, sizeof(*zp));

	if (!zi || !zp) {
		respond_err(c, rq->id, -ENOMEM, NULL);
		goto out;
	}
	for (uint32_t i = 0; i < zs->n; i++) {
		const struct zone *z = &zs->z[i];

		zappend__zone_info__init(&zi[i]);
		zi[i].id = i;
		zi[i].state = (char *)zone_state_name(z->state);
		zi[i].start = z->start;
		zi[i].capacity = z->cap;
		/* What is written, as the device counts it: not the room handed out. */
		zi[i].write_pointer = z->state == ZS_OPEN || z->state == ZS_CLOSED ||
					      z->state == ZS_FILLING || z->state == ZS_EMPTY
					  ? z->wp
					  : MIN(z->used, z->cap);
		zi[i].live_bytes = z->live;
		zi[i].inflight = z->inflight;
		zp[i] = &zi[i];
	}
	r.id = rq->id;
	r.n_zones = zs->n;
	r.zones = zp;
	send_response(c, &r, NULL, NULL, 0, true);
out:
	free(zi);
	free(zp);
}

/* --- dispatch --- */

static void on_request(struct server *srv, struct conn *c, Zappend__Request *rq, uint32_t plen)
{
	char why[64];

	if (!rq) {
		/* The frame itself was sound: answer, skip its payload, stay in sync. */
		respond_err(c, 0, -EINVAL, "cannot parse the request");
		return;
	}
	if (rq->op != ZAPPEND__OP__OP_SCAN)
		pace_request(&srv->pace);
	switch (rq->op) {
	case ZAPPEND__OP__OP_PUT:
		do_put(srv, c, rq, plen);
		break;
	case ZAPPEND__OP__OP_GET:
		do_get(srv, c, rq);
		break;
	case ZAPPEND__OP__OP_DEL:
		do_del(srv, c, rq);
		break;
	case ZAPPEND__OP__OP_STAT:
		do_stat(srv, c, rq);
		break;
	case ZAPPEND__OP__OP_LIST:
		do_list(srv, c, rq);
		break;
	case ZAPPEND__OP__OP_ZONES:
		do_zones(srv, c, rq);
		break;
	case ZAPPEND__OP__OP_SCAN:
		do_scan(srv, c, rq);
		break;
	case ZAPPEND__OP__OP_PING:
		respond_err(c, rq->id, 0, NULL);
		break;
	case ZAPPEND__OP__OP_SNAPSHOT:
		do_snapshot(srv, c, rq);
		break;
	case ZAPPEND__OP__OP_SNAPSHOT_END:
		conn_set_snapshot(c, NULL);
		respond_err(c, rq->id, 0, NULL);
		break;
	default:
		snprintf(why, sizeof(why), "unknown request type %d", (int)rq->op);
		respond_err(c, rq->id, -EINVAL, why);
	}
	zappend__request__free_unpacked(rq, NULL);
}

/* A frame: its header is handled whole; its payload follows, to a put or dropped. */
static ssize_t frame_input(struct conns *cs, struct conn *c, const uint8_t *buf, size_t len)
{
	struct server *srv = cs->owner;
	Zappend__Request *rq;
	struct zap_frame fr;
	unsigned wait;

	if (len < ZAP_FRAME_PREFIX)
		return 0;
	if (zap_frame_decode(buf, &fr)) {
		cs->bad_frames++;
		conn_close(c, "frame header longer than the limit: not a zappend client?");
		return -1;
	}
	if (len < ZAP_FRAME_PREFIX + fr.hlen) {
		if (!conn_want(c, ZAP_FRAME_PREFIX + fr.hlen))
			return 0;
		conn_close(c, "out of memory for a request header");
		return -1;
	}
	rq = zappend__request__unpack(NULL, fr.hlen, buf + ZAP_FRAME_PREFIX);
	/* A listing's step waits while requests come; its frame stays in the buffer. */
	if (rq && rq->op == ZAPPEND__OP__OP_SCAN && !fr.plen &&
	    (wait = pace_wait(&srv->pace, conn_woken(c))) && !conn_defer(c, wait)) {
		zappend__request__free_unpacked(rq, NULL);
		return 0;
	}
	conn_payload(c, fr.plen, NULL);
	on_request(srv, c, rq, fr.plen);
	return conn_closed(c) ? -1 : (ssize_t)(ZAP_FRAME_PREFIX + fr.hlen);
}

static const struct conn_proto frame_proto = { .input = frame_input };

/* --- listener --- */

static bool listed(const uint32_t *ids, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == id)
			return true;
	}
	return false;
}

/* With allow lists, a peer must be on one of them; root always may. */
static bool allowed(const struct server_cfg *cfg, uid_t uid, gid_t gid)
{
	if (!cfg->n_allow_uids && !cfg->n_allow_gids)
		return true;
	return uid == 0 || listed(cfg->allow_uids, cfg->n_allow_uids, uid) ||
	       listed(cfg->allow_gids, cfg->n_allow_gids, gid);
}

/* The client is told why, in its protocol, before the connection closes. */
static void deny(struct listener *l, struct conn *c)
{
	char why[96];
	int n;

	n = snprintf(why, sizeof(why), "%suid %u is not allowed (--allow-uid, --allow-gid)%s",
		     l->cs == &l->srv->resp ? "-ERR " : "", (unsigned)conn_peer(c)->uid,
		     l->cs == &l->srv->resp ? "\r\n" : "");
	if (l->cs == &l->srv->resp)
		conn_queue(c, NULL, why, n, NULL, 0, true);
	else
		respond_err(c, 0, -EACCES, why);
	conn_finish(c);
}

/* A connection on l: its protocol's state, and who may use it. */
static void accepted(struct listener *l, int fd)
{
	struct server *srv = l->srv;
	const struct ucred *peer;
	struct conn *c = conn_new(l->cs, fd);

	if (c && l->cs == &srv->resp && resp_conn_init(l->cs, c)) {
		conn_close(c, NULL);
		c = NULL;
		fd = -1;
	}
	if (!c) {
		log_warn(srv->log, "refusing a connection: out of memory");
		if (fd >= 0)
			close(fd);
		return;
	}
	srv->st.connections++;
	if (l->tcp) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		log_debug(srv->log, "RESP client connected over TCP");
		return;
	}
	peer = conn_peer(c);
	if (!allowed(&srv->cfg, peer->uid, peer->gid)) {
		srv->st.denied++;
		log_warn(srv->log, "refusing client pid %d uid %u gid %u: not an allowed user",
			 (int)peer->pid, (unsigned)peer->uid, (unsigned)peer->gid);
		deny(l, c);
		return;
	}
	log_debug(srv->log, "client pid %d uid %u gid %u connected", (int)peer->pid,
		  (unsigned)peer->uid, (unsigned)peer->gid);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;

	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn(srv->log, "accept: %s", strerror(errno));
			return;
		}
		if (srv->conns.n + srv->resp.n >= srv->cfg.max_connections) {
			srv->st.rejected++;
			log_warn(srv->log,
				 "refusing a connection: %u connections is the limit "
				 "(--max-connections)",
				 srv->cfg.max_connections);
			close(fd);
			continue;
		}
		accepted(l, fd);
	}
}

/* A socket file that nobody answers on is left from a daemon that died: remove it. */
static int claim_path(const char *path, struct zerr *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return zerr_set(err, -errno, "socket: %s", strerror(errno));
	ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (ret == 0)
		return zerr_set(err, -EADDRINUSE, "%s: another zappendd is serving on it", path);
	if (errno == ECONNREFUSED && unlink(path) < 0)
		return zerr_set(err, -errno, "%s: cannot remove the stale socket: %s", path,
				strerror(errno));
	return 0;
}

static int make_dir_of(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int listen_on(const char *path, int gid, struct zerr *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return zerr_set(err, -ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	ret = make_dir_of(path);
	if (ret)
		return zerr_set(err, ret, "cannot create the directory of %s: %s", path,
				strerror(-ret));
	ret = claim_path(path, err);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return zerr_set(err, -errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
	    (gid >= 0 && chown(path, -1, gid) < 0) || listen(fd, 512) < 0) {
		ret = -errno;
		close(fd);
		return zerr_set(err, ret, "cannot listen on %s: %s", path, strerror(-ret));
	}
	return fd;
}

/* Loopback only: a listener there may go without a password. */
static bool loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6 = (const void *)sa;

	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
	       (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127);
}

/* "HOST:PORT" ("[::1]:6379" for IPv6) split at its last colon. */
static int split_host(const char *spec, char *host, size_t hlen, const char **port)
{
	const char *colon = strrchr(spec, ':');
	size_t n;

	if (!colon || colon == spec || !colon[1])
		return -EINVAL;
	n = colon - spec;
	if (spec[0] == '[' && n >= 2 && spec[n - 1] == ']') {
		spec++;
		n -= 2;
	}
	if (n >= hlen)
		return -EINVAL;
	memcpy(host, spec, n);
	host[n] = 0;
	*port = colon + 1;
	return 0;
}

static int listen_tcp(const char *spec, bool password, struct zerr *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai;
	char host[256];
	const char *port;
	int fd, ret;

	if (split_host(spec, host, sizeof(host), &port))
		return zerr_set(err, -EINVAL,
				"--resp %s: expected unix:PATH or HOST:PORT (e.g. 127.0.0.1:6379)",
				spec);
	ret = getaddrinfo(host, port, &hints, &ai);
	if (ret)
		return zerr_set(err, -EINVAL, "--resp %s: %s", spec, gai_strerror(ret));
	if (!password && !loopback(ai->ai_addr)) {
		freeaddrinfo(ai);
		return zerr_set(err, -EPERM,
				"--resp %s listens beyond this machine: give --resp-password-file, "
				"or listen on 127.0.0.1",
				spec);
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 512)) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return zerr_set(err, ret, "cannot listen on %s: %s", spec, strerror(-ret));
	}
	freeaddrinfo(ai);
	return fd;
}

static int add_listener(struct server *srv, struct conns *cs, int fd, bool tcp, const char *path,
			struct zerr *err)
{
	struct listener *l = &srv->lis[srv->nlis];

	*l = (struct listener){ .srv = srv, .cs = cs, .fd = fd, .tcp = tcp };
	l->path = path ? strdup(path) : NULL;
	l->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_accept, l);
	if (!l->ev || (path && !l->path)) {
		free(l->path);
		if (l->ev)
			event_free(l->ev);
		close(fd);
		return zerr_set(err, -ENOMEM, "out of memory");
	}
	srv->nlis++;
	event_add(l->ev, NULL);
	return 0;
}

/* --resp's listeners: "unix:PATH" or "HOST:PORT", separated by commas. */
static int listen_resp(struct server *srv, struct zerr *err)
{
	char *list = strdup(srv->cfg.resp), *save = NULL;
	int ret = list ? 0 : zerr_set(err, -ENOMEM, "out of memory");

	for (char *spec = list ? strtok_r(list, ",", &save) : NULL; spec && !ret;
	     spec = strtok_r(NULL, ",", &save)) {
		bool unix_path = !strncmp(spec, "unix:", 5);
		int fd;

		if (srv->nlis == ARRAY_SIZE(srv->lis)) {
			ret = zerr_set(err, -EINVAL, "--resp: at most %zu listeners",
				       ARRAY_SIZE(srv->lis) - 1);
			break;
		}
		fd = unix_path ? listen_on(spec + 5, srv->cfg.socket_gid, err)
			       : listen_tcp(spec, srv->cfg.resp_password != NULL, err);
		ret = fd < 0 ? fd
			     : add_listener(srv, &srv->resp, fd, !unix_path,
					    unix_path ? spec + 5 : NULL, err);
		if (!ret)
			log_notice(srv->log, "serving RESP on %s%s", spec,
				   srv->cfg.resp_password ? " (AUTH required)" : "");
	}
	free(list);
	return ret;
}

/* Clients that stalled halfway through a request, or stopped reading, give their share back. */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct timespec now;

	if (srv->store->dev->fixed_refused && !srv->fixed_refusal_logged) {
		srv->fixed_refusal_logged = true;
		log_warn(srv->log, "the kernel refused a registered buffer for NVMe passthrough "
				   "(Linux 6.1): using plain buffers");
	}
	store_tick(srv->store);
	clock_gettime(CLOCK_MONOTONIC, &now);
	srv->st.idle_closed += conns_sweep(&srv->conns, now.tv_sec, srv->cfg.idle_timeout);
	srv->st.idle_closed += conns_sweep(&srv->resp, now.tv_sec, srv->cfg.idle_timeout);
}

int server_start(struct server *srv, struct event_base *base, struct store *store,
		 const struct zlog *log, const struct server_cfg *cfg, struct zerr *err)
{
	int fd, ret;

	memset(srv, 0, sizeof(*srv));
	srv->base = base;
	srv->store = store;
	srv->log = log;
	srv->cfg = *cfg;
	if (!srv->cfg.conn.max_inflight)
		srv->cfg.conn.max_inflight = SERVER_MAX_INFLIGHT;
	if (!srv->cfg.conn.max_queued)
		srv->cfg.conn.max_queued = SERVER_MAX_QUEUED;
	if (!srv->cfg.idle_timeout)
		srv->cfg.idle_timeout = SERVER_IDLE_TIMEOUT;
	srv->started = time(NULL);
	conns_init(&srv->conns, base, log, &srv->cfg.conn, &frame_proto, srv);
	srv->renv = (struct resp_env){ .store = store,
				       .password = cfg->resp_password,
				       .stats = server_stats,
				       .stats_arg = srv,
				       .pace = &srv->pace };
	conns_init(&srv->resp, base, log, &srv->cfg.conn, &resp_proto, &srv->renv);
	fd = cfg->inherit ? cfg->inherited_fd : listen_on(cfg->socket_path, cfg->socket_gid, err);
	if (fd < 0)
		return fd;
	ret =
	    add_listener(srv, &srv->conns, fd, false, cfg->inherit ? NULL : cfg->socket_path, err);
	if (!ret && cfg->resp)
		ret = listen_resp(srv, err);
	if (ret)
		return ret;
	srv->sweep_timer = event_new(base, -1, EV_PERSIST, on_sweep, srv);
	if (!srv->sweep_timer)
		return zerr_set(err, -ENOMEM, "out of memory");
	event_add(srv->sweep_timer, &(struct timeval){ 1, 0 });
	return 0;
}

static bool quiet(const struct server *srv)
{
	return store_idle(srv->store) && conns_idle(&srv->conns) && conns_idle(&srv->resp);
}

static void close_listeners(struct server *srv)
{
	for (unsigned i = 0; i < srv->nlis; i++) {
		struct listener *l = &srv->lis[i];

		event_free(l->ev);
		close(l->fd);
		if (l->path)
			unlink(l->path);
		free(l->path);
	}
	srv->nlis = 0;
}

static void on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	static const struct timeval tick = { 0, STOP_POLL_MS * 1000 };

	/* Everything answered: the open zones' checkpoints, then the end. */
	if (quiet(srv) && store_checkpoint(srv->store)) {
		event_add(srv->stop_timer, &tick);
		return;
	}
	if (quiet(srv) || ++srv->stop_ticks > STOP_GRACE_TICKS) {
		if (!quiet(srv))
			log_warn(srv->log, "stopping with requests still unanswered after 30 s");
		event_base_loopexit(srv->base, NULL);
		return;
	}
	event_add(srv->stop_timer, &tick);
}

void server_stop(struct server *srv)
{
	if (srv->conns.stopping)
		return;
	conns_stop(&srv->conns);
	conns_stop(&srv->resp);
	store_stop(srv->store);
	close_listeners(srv);
	srv->stop_timer = evtimer_new(srv->base, on_stop_tick, srv);
	if (!srv->stop_timer)
		event_base_loopexit(srv->base, NULL);
	else
		on_stop_tick(-1, 0, srv);
}

void server_done(struct server *srv)
{
	conns_close_all(&srv->conns);
	conns_close_all(&srv->resp);
	close_listeners(srv);
	if (srv->stop_timer)
		event_free(srv->stop_timer);
	if (srv->sweep_timer)
		event_free(srv->sweep_timer);
	memset(srv, 0, sizeof(*srv));
}
