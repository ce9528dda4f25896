/*
 * RESP2 requests, taken from a connection's buffer: arrays of bulk strings
 * as clients send them, or inline lines as typed into telnet. A SET's or
 * MSET's value streams into its put as a native put's does; every other
 * argument is read whole first (at most ONE_ARG_MAX each, REQ_MAX together).
 *
 * RESP answers in the order requests came; the store ends them in any. So
 * each request takes one or more reply slots in a queue, filled as the
 * store answers and written out from the front. A get at the front writes
 * its value straight from store buffers; one behind copies what it reads
 * and, once the copies reach the connection's share, waits for its turn
 * holding no pool memory, so that the front never waits behind it.
 */
#include "resp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "pace.h"
#include "resp_parse.h"
#include "store.h"
#include "util.h"

#define ONE_ARG_MAX  (64u << 10)
#define REQ_MAX	     (4u << 20)
#define ARGS_MAX     (1u << 20)
#define ARGS_KEEP    1024 /* argument slots a connection keeps between requests */
#define INLINE_MAX   (64u << 10)
#define SCAN_DEFAULT 10u
#define SCAN_MAX     10000u
#define SCAN_SLOTS   65536u /* index slots one SCAN looks at, at most, to find COUNT keys */

/* What fills a slot. */
enum slot_kind {
	SK_FIXED,  /* the reply was known at once */
	SK_GET,	   /* a bulk string: the value, or nil */
	SK_STRLEN, /* the value's length */
	SK_COUNT,  /* DEL, EXISTS: how many keys did */
	SK_OK,	   /* SET, MSET */
};

struct rbuf {
	char *p;
	size_t len, cap;
};

struct slot {
	STAILQ_ENTRY(slot) link;
	struct rconn *rc; /* NULL once the connection closed: the ops still pending free it */
	struct req *q;	  /* counts in the connection's requests in flight */
	enum slot_kind kind;
	unsigned pending; /* store operations that will call back, and a SET's input */
	int err;	  /* the first error among them */
	char why[96];	  /* what err means here, if more than store_strerror says */
	uint64_t n;
	struct zget *g;
	bool whole;	/* out is the whole reply */
	bool started;	/* a GET's length is out, or in out */
	bool streaming; /* a GET at the front: its pieces go straight out */
	bool
	    parked; /* behind the front, copies at the share: its piece is read again at its turn */
	struct rbuf out;
};

/* An EXISTS of one key. */
struct probe {
	struct slot *s;
	struct zget *g;
};

/*
 * An array request not all in yet: the arguments read so far are kept (as
 * offsets: the buffer moves as it grows), so each byte is parsed once.
 */
struct part {
	size_t argc; /* 0: none */
	size_t i;    /* the arguments read */
	size_t pos;  /* the bytes they took */
	const struct cmd *cmd;
};

struct rconn {
	struct conn *c;
	struct resp_env *env;
	struct conns *cs;
	STAILQ_HEAD(, slot) slots;
	size_t ahead; /* bytes copied into slots not yet written */
	unsigned nparked;
	bool authed, quit;
	bool oom; /* a reply could not be built: the connection closes */
	bool flushing, again, dead;
	/* A request read across calls: SET's or MSET's values, or one refused. */
	size_t argc, argi; /* its arguments, and how many are read */
	struct slot *set;  /* SET, MSET: its reply */
	bool crlf;	   /* a value streamed: its CRLF is next */
	bool skip;	   /* refused: the rest of its arguments are dropped */
	/* The arguments of the request at hand, pointing into the buffer. */
	const uint8_t **argv;
	size_t *argl;
	size_t *argo; /* where they start in the request, while it is read */
	size_t args_cap;
	struct part part;
	char name[32]; /* HELLO's SETNAME, CLIENT SETNAME */
};

struct cmd {
	const char *name;
	int arity; /* n: exactly n arguments with the name; -n: n or more */
	bool before_auth;
	/* Called with the request's arguments read; NULL: SET, MSET, their values stream. */
	void (*fn)(struct rconn *rc, size_t argc);
	const char *flags;
	int first, last, step; /* which arguments are keys, for COMMAND */
};

/* --- replies --- */

static int rb_add(struct rbuf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = MAX(b->cap * 2, b->len + n + 64);
		char *p = realloc(b->p, cap);

		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return 0;
}

__attribute__((format(printf, 2, 3))) static int rb_printf(struct rbuf *b, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	return rb_add(b, line, MIN((size_t)n, sizeof(line) - 1));
}

static int rb_bulk(struct rbuf *b, const void *d, size_t n)
{
	int ret = rb_printf(b, "$%zu\r\n", n);

	if (!ret)
		ret = rb_add(b, d, n);
	return ret ? ret : rb_add(b, "\r\n", 2);
}

static int rb_str(struct rbuf *b, const char *s)
{
	return rb_bulk(b, s, strlen(s));
}

static void slot_free(struct slot *s)
{
	if (s->rc)
		s->rc->ahead -= s->out.len;
	if (s->q)
		req_free(s->q);
	free(s->out.p);
	free(s);
}

static void rconn_free(struct rconn *rc)
{
	free(rc->argv);
	free(rc->argl);
	free(rc->argo);
	free(rc);
}

/* A reply slot at the end of the queue; NULL once the connection was closed for memory. */
static struct slot *slot_new(struct rconn *rc, enum slot_kind kind)
{
	struct slot *s;

	if (rc->oom)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s)
		s->q = req_new(rc->c, 0);
	if (!s || !s->q) {
		free(s);
		rc->oom = true;
		return NULL;
	}
	s->rc = rc;
	s->kind = kind;
	STAILQ_INSERT_TAIL(&rc->slots, s, link);
	return s;
}

/* s->out was filled (ret 0) or could not be. */
static void reply_done(struct rconn *rc, struct slot *s, int ret)
{
	if (ret)
		rc->oom = true;
	else
		rc->ahead += s->out.len;
}

/* A reply known at once: fmt is RESP already. */
__attribute__((format(printf, 2, 3))) static struct slot *reply(struct rconn *rc, const char *fmt,
								...)
{
	struct slot *s = slot_new(rc, SK_FIXED);
	char line[512];
	va_list ap;
	int n;

	if (!s)
		return NULL;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->whole = true;
	reply_done(rc, s, rb_add(&s->out, line, MIN((size_t)n, sizeof(line) - 1)));
	return rc->oom ? NULL : s;
}

/* A reply the caller fills into s->out; NULL once the connection was closed. */
static struct slot *reply_buf(struct rconn *rc)
{
	struct slot *s = slot_new(rc, SK_FIXED);

	if (s)
		s->whole = true;
	return s;
}

static void reply_err(struct rconn *rc, int err)
{
	reply(rc, "-ERR %s\r\n", store_strerror(err));
}

/* The gets behind the front that waited for room go on while there is room. */
static void resume_parked(struct rconn *rc)
{
	struct slot *s;

	STAILQ_FOREACH(s, &rc->slots, link)
	{
		if (!rc->nparked || rc->ahead >= rc->cs->lim->max_queued)
			break;
		if (s->parked) {
			s->parked = false;
			rc->nparked--;
			store_get_reread(s->g);
		}
	}
}

/*
 * Writes out the replies at the front that are whole; the first that is not
 * goes on. The last thing its callers do: it may close the connection, and
 * free rc with it.
 */
static void flush(struct rconn *rc)
{
	struct slot *s;

	if (rc->flushing) {
		rc->again = true;
		return;
	}
	rc->flushing = true;
	do {
		rc->again = false;
		while (!rc->oom && (s = STAILQ_FIRST(&rc->slots))) {
			if (s->out.len) {
				if (conn_queue(rc->c, NULL, s->out.p, s->out.len, NULL, 0, true)) {
					rc->oom = true;
					break;
				}
				rc->ahead -= s->out.len;
				s->out.len = 0;
			}
			if (!s->whole) {
				if (s->kind == SK_GET && !s->streaming) {
					s->streaming = true;
					if (s->parked) {
						s->parked = false;
						rc->nparked--;
						store_get_reread(s->g);
					}
				}
				break;
			}
			STAILQ_REMOVE_HEAD(&rc->slots, link);
			slot_free(s);
		}
		if (!rc->oom)
			resume_parked(rc);
	} while (rc->again && !rc->oom);
	rc->flushing = false;
	if (rc->dead)
		rconn_free(rc);
	else if (rc->oom)
		conn_close(rc->c, "out of memory for a reply");
}

/* One of the slot's operations ended: the reply is whole after the last. */
static void op_done(struct slot *s)
{
	struct rconn *rc = s->rc;
	int ret;

	if (--s->pending)
		return;
	if (!rc) {
		slot_free(s);
		return;
	}
	if (s->err)
		ret =
		    rb_printf(&s->out, "-ERR %s\r\n", s->why[0] ? s->why : store_strerror(s->err));
	else if (s->kind == SK_COUNT)
		ret = rb_printf(&s->out, ":%llu\r\n", (unsigned long long)s->n);
	else
		ret = rb_add(&s->out, "+OK\r\n", 5);
	s->whole = true;
	reply_done(rc, s, ret);
	flush(rc);
}

/* --- GET, STRLEN, MGET --- */

static void get_end(struct slot *s, int err)
{
	struct rconn *rc = s->rc;
	int ret;

	s->g = NULL;
	if (err == -ENOENT)
		ret = s->kind == SK_GET ? rb_add(&s->out, "$-1\r\n", 5)
					: rb_add(&s->out, ":0\r\n", 4);
	else
		ret = rb_printf(&s->out, "-ERR %s\r\n", store_strerror(err));
	s->whole = true;
	reply_done(rc, s, ret);
	flush(rc);
}

/* At the front: the piece goes out from the store's buffer. */
static void get_stream(struct slot *s, const char *hdr, size_t hlen, const struct zget_chunk *ch)
{
	struct rconn *rc = s->rc;

	s->q->g = s->g;
	if (conn_queue(rc->c, s->q, hdr, hlen, ch->data, ch->dlen, ch->last)) {
		rc->oom = true;
		flush(rc);
		return;
	}
	if (!ch->last)
		return;
	/* The connection ends the get and its request once the last piece is out. */
	s->q = NULL;
	s->g = NULL;
	s->whole = true;
	if (conn_queue(rc->c, NULL, "\r\n", 2, NULL, 0, true))
		rc->oom = true;
	flush(rc);
}

/*
 * Behind the front: the piece is copied, while the copies stay within the
 * connection's share. Past it, the piece is dropped unread and read again
 * at the get's turn: the copies never hold more than the share and the
 * pieces in flight, however many gets wait behind a front nobody reads.
 */
static void get_copy(struct slot *s, const struct zget_chunk *ch)
{
	struct rconn *rc = s->rc;
	size_t before = s->out.len;
	char hdr[32];
	size_t hlen = 0;

	if (rc->ahead >= rc->cs->lim->max_queued) {
		store_get_release(s->g);
		s->parked = true;
		rc->nparked++;
		return;
	}
	if (!s->started)
		hlen = snprintf(hdr, sizeof(hdr), "$%llu\r\n", (unsigned long long)ch->vlen);
	s->started = true;
	if (rb_add(&s->out, hdr, hlen) || rb_add(&s->out, ch->data, ch->dlen) ||
	    (ch->last && rb_add(&s->out, "\r\n", 2))) {
		rc->oom = true;
		flush(rc);
		return;
	}
	rc->ahead += s->out.len - before;
	store_get_next(s->g);
	if (ch->last) {
		s->g = NULL;
		s->whole = true;
		flush(rc);
	}
}

static void get_chunk(void *arg, int err, const struct zget_chunk *ch)
{
	struct slot *s = arg;
	char hdr[32];
	size_t hlen = 0;

	if (err && s->started) {
		/* Part of the value went out, or was promised: the reply cannot be finished. */
		s->g = NULL;
		conn_close(s->rc->c, "a value could not be read to its end");
		return;
	}
	if (err) {
		get_end(s, err);
		return;
	}
	if (s->kind == SK_STRLEN) {
		store_get_abort(s->g);
		s->g = NULL;
		s->whole = true;
		reply_done(s->rc, s, rb_printf(&s->out, ":%llu\r\n", (unsigned long long)ch->vlen));
		flush(s->rc);
		return;
	}
	if (!s->streaming) {
		get_copy(s, ch);
		return;
	}
	if (!s->started)
		hlen = snprintf(hdr, sizeof(hdr), "$%llu\r\n", (unsigned long long)ch->vlen);
	s->started = true;
	get_stream(s, hdr, hlen, ch);
}

static void get_key(struct rconn *rc, enum slot_kind kind, const uint8_t *key, size_t klen)
{
	struct slot *s = slot_new(rc, kind);
	int ret;

	if (!s)
		return;
	ret = store_get(rc->env->store, NULL, key, klen, conn_budget(rc->c), get_chunk, s, &s->g);
	if (ret)
		get_end(s, ret);
}

static void cmd_get(struct rconn *rc, size_t argc)
{
	get_key(rc, SK_GET, rc->argv[1], rc->argl[1]);
}

static void cmd_strlen(struct rconn *rc, size_t argc)
{
	get_key(rc, SK_STRLEN, rc->argv[1], rc->argl[1]);
}

static void cmd_mget(struct rconn *rc, size_t argc)
{
	if (!reply(rc, "*%zu\r\n", argc - 1))
		return;
	for (size_t i = 1; i < argc && !rc->oom; i++)
		get_key(rc, SK_GET, rc->argv[i], rc->argl[i]);
}

/* --- DEL, EXISTS --- */

static void count_done(struct slot *s, int err)
{
	if (!err)
		s->n++;
	else if (err != -ENOENT && !s->err)
		s->err = err;
	op_done(s);
}

static void del_done(void *arg, const struct zput_result *res)
{
	count_done(arg, res->err);
}

static void probe_chunk(void *arg, int err, const struct zget_chunk *ch)
{
	struct probe *p = arg;
	struct slot *s = p->s;

	if (!err)
		store_get_abort(p->g);
	free(p);
	count_done(s, err);
}

/* Each key's operation is begun; its end is counted in the slot. */
static void count_keys(struct rconn *rc, size_t argc, bool del)
{
	struct slot *s = slot_new(rc, SK_COUNT);
	struct store *st = rc->env->store;

	if (!s)
		return;
	s->pending = 1; /* until every key's operation is begun */
	for (size_t i = 1; i < argc; i++) {
		struct probe *p = NULL;
		int ret = -ENOMEM;

		s->pending++;
		if (del) {
			ret = store_del(st, rc->argv[i], rc->argl[i], conn_budget(rc->c), del_done,
					s);
		} else if ((p = malloc(sizeof(*p)))) {
			p->s = s;
			ret = store_get(st, NULL, rc->argv[i], rc->argl[i], conn_budget(rc->c),
					probe_chunk, p, &p->g);
		}
		if (ret) {
			free(p);
			count_done(s, ret);
		}
	}
	op_done(s);
}

static void cmd_del(struct rconn *rc, size_t argc)
{
	count_keys(rc, argc, true);
}

static void cmd_exists(struct rconn *rc, size_t argc)
{
	count_keys(rc, argc, false);
}

/* --- SET, MSET: values stream in --- */

static void put_done(void *arg, const struct zput_result *res)
{
	struct slot *s = arg;

	if (res->err && !s->err)
		s->err = res->err;
	op_done(s);
}

/* A value of vlen bytes for key comes next: into a put, or dropped if refused. */
static void value_begin(struct rconn *rc, const uint8_t *key, size_t klen, uint64_t vlen)
{
	struct store *st = rc->env->store;
	struct slot *s = rc->set;
	struct zput *put = NULL;
	int ret;

	s->pending++;
	ret = store_put_begin(st, key, klen, vlen, conn_budget(rc->c), put_done, s, &put);
	if (ret) {
		s->pending--;
		if (!s->err) {
			s->err = ret;
			if (ret == -E2BIG)
				store_limit_message(st, s->why, sizeof(s->why), klen, vlen);
		}
	}
	rc->crlf = true;
	conn_payload(rc->c, vlen, put);
}

/* The request's last argument is read: a SET's reply waits only for its puts now. */
static void request_end(struct rconn *rc)
{
	struct slot *s = rc->set;

	rc->argc = rc->argi = 0;
	rc->skip = false;
	rc->set = NULL;
	conn_set_mid(rc->c, false);
	if (s)
		op_done(s);
}

/* --- the other commands --- */

static void cmd_ping(struct rconn *rc, size_t argc)
{
	struct slot *s;

	if (argc == 1) {
		reply(rc, "+PONG\r\n");
		return;
	}
	if (argc > 2) {
		reply(rc, "-ERR wrong number of arguments for 'ping' command\r\n");
		return;
	}
	s = reply_buf(rc);
	if (s)
		reply_done(rc, s, rb_bulk(&s->out, rc->argv[1], rc->argl[1]));
}

static void cmd_echo(struct rconn *rc, size_t argc)
{
	struct slot *s = reply_buf(rc);

	if (s)
		reply_done(rc, s, rb_bulk(&s->out, rc->argv[1], rc->argl[1]));
}

static void cmd_quit(struct rconn *rc, size_t argc)
{
	if (reply(rc, "+OK\r\n"))
		rc->quit = true;
}

static bool arg_is(const struct rconn *rc, size_t i, const char *s)
{
	return rc->argl[i] == strlen(s) && !strncasecmp((const char *)rc->argv[i], s, rc->argl[i]);
}

static void cmd_select(struct rconn *rc, size_t argc)
{
	if (arg_is(rc, 1, "0"))
		reply(rc, "+OK\r\n");
	else
		reply(rc, "-ERR DB index is out of range (zappendd has database 0 only)\r\n");
}

/* Compares all of both, whatever differs first: the time tells nothing of the password. */
static bool password_is(const struct rconn *rc, size_t i)
{
	const char *pw = rc->env->password;
	size_t n = strlen(pw);
	unsigned diff = n != rc->argl[i];

	for (size_t k = 0; k < rc->argl[i]; k++)
		diff |= (unsigned)rc->argv[i][k] ^ (unsigned)(uint8_t)pw[k < n ? k : 0];
	return !diff;
}

/* AUTH's check: user (or 0 for none) and password at argument i. */
static bool auth_ok(struct rconn *rc, size_t user, size_t pass)
{
	if (!rc->env->password) {
		reply(rc, "-ERR AUTH <password> called without any password configured "
			  "(--resp-password-file)\r\n");
		return false;
	}
	if ((user && !arg_is(rc, user, "default")) || !password_is(rc, pass)) {
		reply(rc, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
		return false;
	}
	rc->authed = true;
	return true;
}

static void cmd_auth(struct rconn *rc, size_t argc)
{
	if (argc > 3) {
		reply(rc, "-ERR syntax error\r\n");
		return;
	}
	if (auth_ok(rc, argc == 3 ? 1 : 0, argc - 1))
		reply(rc, "+OK\r\n");
}

static void set_name(struct rconn *rc, size_t i)
{
	size_t n = MIN(rc->argl[i], sizeof(rc->name) - 1);

	memcpy(rc->name, rc->argv[i], n);
	rc->name[n] = 0;
}

static void cmd_hello(struct rconn *rc, size_t argc)
{
	struct slot *s;
	size_t i = 2;
	int ret;

	if (argc > 1 && !arg_is(rc, 1, "2")) {
		reply(rc,
		      "-NOPROTO sorry, this protocol version is not supported (RESP2 only)\r\n");
		return;
	}
	for (; i < argc; i++) {
		if (arg_is(rc, i, "AUTH") && i + 2 < argc) {
			if (!auth_ok(rc, i + 1, i + 2))
				return;
			i += 2;
		} else if (arg_is(rc, i, "SETNAME") && i + 1 < argc) {
			set_name(rc, ++i);
		} else {
			reply(rc, "-ERR syntax error in HELLO\r\n");
			return;
		}
	}
	if (rc->env->password && !rc->authed) {
		reply(rc, "-NOAUTH HELLO must be called with the client's password (AUTH)\r\n");
		return;
	}
	s = reply_buf(rc);
	if (!s)
		return;
	ret = rb_printf(&s->out, "*14\r\n");
	ret = ret ?: rb_str(&s->out, "server");
	ret = ret ?: rb_str(&s->out, "zappend");
	ret = ret ?: rb_str(&s->out, "version");
	ret = ret ?: rb_str(&s->out, PACKAGE_VERSION);
	ret = ret ?: rb_str(&s->out, "proto");
	ret = ret ?: rb_printf(&s->out, ":2\r\n");
	ret = ret ?: rb_str(&s->out, "id");
	ret = ret ?: rb_printf(&s->out, ":%llu\r\n", (unsigned long long)++rc->env->next_id);
	ret = ret ?: rb_str(&s->out, "mode");
	ret = ret ?: rb_str(&s->out, "standalone");
	ret = ret ?: rb_str(&s->out, "role");
	ret = ret ?: rb_str(&s->out, "master");
	ret = ret ?: rb_str(&s->out, "modules");
	ret = ret ?: rb_printf(&s->out, "*0\r\n");
	reply_done(rc, s, ret);
}

static void cmd_client(struct rconn *rc, size_t argc)
{
	if ((arg_is(rc, 1, "SETNAME") && argc == 3) || (arg_is(rc, 1, "SETINFO") && argc == 4)) {
		if (arg_is(rc, 1, "SETNAME"))
			set_name(rc, 2);
		reply(rc, "+OK\r\n");
	} else if (arg_is(rc, 1, "GETNAME") && argc == 2) {
		struct slot *s = reply_buf(rc);

		if (s)
			reply_done(rc, s,
				   rc->name[0] ? rb_str(&s->out, rc->name)
					       : rb_add(&s->out, "$-1\r\n", 5));
	} else {
		reply(rc, "-ERR CLIENT takes SETNAME, GETNAME or SETINFO here\r\n");
	}
}

/* Nothing is configured through RESP: CONFIG GET finds nothing, as for an unknown name. */
static void cmd_config(struct rconn *rc, size_t argc)
{
	if (arg_is(rc, 1, "GET") && argc >= 3)
		reply(rc, "*0\r\n");
	else
		reply(rc, "-ERR zappendd is configured by its command line and "
			  "zappendd.conf, not by CONFIG\r\n");
}

static int info_section(struct rbuf *b, const struct stat_item *it, size_t n)
{
	int ret = rb_printf(b,
			    "# Server\r\nzappend_version:%s\r\n"
			    /* Clients read it to decide what they may send: RESP2 commands. */
			    "redis_version:7.0.0\r\nredis_mode:standalone\r\n\r\n# Zappend\r\n",
			    PACKAGE_VERSION);

	for (size_t i = 0; i < n && !ret; i++) {
		if (it[i].kind == 'u')
			ret = rb_printf(b, "%s:%llu\r\n", it[i].name, (unsigned long long)it[i].u);
		else if (it[i].kind == 'd')
			ret = rb_printf(b, "%s:%.6g\r\n", it[i].name, it[i].d);
		else
			ret = rb_printf(b, "%s:%s\r\n", it[i].name, it[i].s);
	}
	return ret;
}

static void cmd_info(struct rconn *rc, size_t argc)
{
	struct stat_item items[STAT_MAX];
	size_t n = rc->env->stats(rc->env->stats_arg, items, STAT_MAX);
	struct rbuf text = { 0 };
	struct slot *s = reply_buf(rc);
	int ret;

	if (!s)
		return;
	ret = info_section(&text, items, n);
	ret = ret ?: rb_bulk(&s->out, text.p, text.len);
	free(text.p);
	reply_done(rc, s, ret);
}

/* --- SCAN --- */

struct scan_acc {
	struct rbuf keys;
	size_t n;
	const uint8_t *prefix; /* MATCH's */
	size_t plen;
	bool exact; /* MATCH without '*': only the key that is the prefix */
};

static int scan_key(const void *key, size_t klen, void *arg)
{
	struct scan_acc *a = arg;

	if (a->exact && klen != a->plen)
		return 0;
	a->n++;
	return rb_bulk(&a->keys, key, klen);
}

/* The options after the cursor: false once the request is answered with an error. */
static bool scan_opts(struct rconn *rc, size_t argc, struct scan_acc *a, uint64_t *count,
		      bool *none)
{
	for (size_t i = 2; i < argc; i += 2) {
		if (i + 1 == argc) {
			reply(rc, "-ERR syntax error\r\n");
			return false;
		}
		if (arg_is(rc, i, "COUNT")) {
			if (!resp_u64(rc->argv[i + 1], rc->argl[i + 1], count) || !*count) {
				reply(rc, "-ERR value is out of range, must be positive\r\n");
				return false;
			}
		} else if (arg_is(rc, i, "MATCH")) {
			if (!resp_match_prefix(rc->argv[i + 1], rc->argl[i + 1], &a->plen,
					       &a->exact)) {
				reply(rc, "-ERR this server's SCAN MATCH takes a key, or a prefix "
					  "and one '*' at its end\r\n");
				return false;
			}
			a->prefix = rc->argv[i + 1];
		} else if (arg_is(rc, i, "TYPE")) {
			*none = !arg_is(rc, i + 1, "string");
		} else {
			reply(rc, "-ERR syntax error\r\n");
			return false;
		}
	}
	return true;
}

static void cmd_scan(struct rconn *rc, size_t argc)
{
	struct scan_acc a = { 0 };
	uint64_t cursor, count = SCAN_DEFAULT, start = pace_now_us();
	bool none = false;
	struct slot *s;
	char cur[24];
	int ret;

	if (!resp_u64(rc->argv[1], rc->argl[1], &cursor)) {
		reply(rc, "-ERR invalid cursor\r\n");
		return;
	}
	if (!scan_opts(rc, argc, &a, &count, &none))
		return;
	/*
	 * A step of the index's scan looks at twice COUNT slots: in a sparse
	 * table that finds nothing. Steps go on until COUNT keys came, up to
	 * SCAN_SLOTS slots: bounded work still, and a small store answers at once.
	 */
	count = MIN(count, SCAN_MAX);
	ret = 0;
	if (none)
		cursor = 0;
	for (size_t slots = 0; !none && slots < SCAN_SLOTS; slots += 2 * count) {
		ret = store_scan(rc->env->store, NULL, a.prefix, a.plen, &cursor, count,
				 REQ_MAX / 4, scan_key, &a);
		if (ret || !cursor || a.n >= count || a.keys.len >= REQ_MAX / 4)
			break;
	}
	pace_spent(rc->env->pace, start);
	if (ret < 0) {
		free(a.keys.p);
		if (ret == -EINVAL)
			reply(rc, "-ERR unknown scan cursor (did the daemon restart?): "
				  "start the scan again\r\n");
		else
			reply_err(rc, ret);
		return;
	}
	s = reply_buf(rc);
	if (s) {
		snprintf(cur, sizeof(cur), "%llu", (unsigned long long)cursor);
		ret = rb_add(&s->out, "*2\r\n", 4);
		ret = ret ?: rb_str(&s->out, cur);
		ret = ret ?: rb_printf(&s->out, "*%zu\r\n", a.n);
		ret = ret ?: (a.n ? rb_add(&s->out, a.keys.p, a.keys.len) : 0);
		reply_done(rc, s, ret);
	}
	free(a.keys.p);
}

static void cmd_command(struct rconn *rc, size_t argc);

static const struct cmd cmds[] = {
	{ "get", 2, false, cmd_get, "readonly", 1, 1, 1 },
	{ "set", -3, false, NULL, "write", 1, 1, 1 },
	{ "del", -2, false, cmd_del, "write", 1, -1, 1 },
	{ "exists", -2, false, cmd_exists, "readonly", 1, -1, 1 },
	{ "mget", -2, false, cmd_mget, "readonly", 1, -1, 1 },
	{ "mset", -3, false, NULL, "write", 1, -1, 2 },
	{ "strlen", 2, false, cmd_strlen, "readonly", 1, 1, 1 },
	{ "scan", -2, false, cmd_scan, "readonly", 0, 0, 0 },
	{ "ping", -1, false, cmd_ping, "fast", 0, 0, 0 },
	{ "echo", 2, false, cmd_echo, "fast", 0, 0, 0 },
	{ "quit", -1, true, cmd_quit, "fast", 0, 0, 0 },
	{ "auth", -2, true, cmd_auth, "fast", 0, 0, 0 },
	{ "hello", -1, true, cmd_hello, "fast", 0, 0, 0 },
	{ "info", -1, false, cmd_info, "loading", 0, 0, 0 },
	{ "select", 2, false, cmd_select, "fast", 0, 0, 0 },
	{ "command", -1, false, cmd_command, "loading", 0, 0, 0 },
	{ "config", -2, false, cmd_config, "admin", 0, 0, 0 },
	{ "client", -2, false, cmd_client, "fast", 0, 0, 0 },
};

static const size_t ncmds = ARRAY_SIZE(cmds);

/* --- COMMAND: what clients such as redis-cli ask first --- */

static int command_entry(struct rbuf *b, const struct cmd *c)
{
	int ret = rb_printf(b, "*6\r\n");

	ret = ret ?: rb_str(b, c->name);
	ret = ret ?: rb_printf(b, ":%d\r\n", c->arity);
	ret = ret ?: rb_printf(b, "*1\r\n+%s\r\n", c->flags);
	return ret ?: rb_printf(b, ":%d\r\n:%d\r\n:%d\r\n", c->first, c->last, c->step);
}

static const struct cmd *find_cmd(const uint8_t *name, size_t n)
{
	for (size_t i = 0; i < ncmds; i++) {
		if (strlen(cmds[i].name) == n && !strncasecmp(cmds[i].name, (const char *)name, n))
			return &cmds[i];
	}
	return NULL;
}

static void cmd_command(struct rconn *rc, size_t argc)
{
	struct slot *s;
	int ret = 0;

	if (argc == 2 && arg_is(rc, 1, "COUNT")) {
		reply(rc, ":%zu\r\n", ncmds);
		return;
	}
	/* No docs: clients such as redis-cli then go without hints. */
	if (argc >= 2 && arg_is(rc, 1, "DOCS")) {
		reply(rc, "*0\r\n");
		return;
	}
	if (argc >= 2 && !arg_is(rc, 1, "INFO")) {
		reply(rc, "-ERR COMMAND takes COUNT, DOCS or INFO here\r\n");
		return;
	}
	s = reply_buf(rc);
	if (!s)
		return;
	if (argc == 1) {
		ret = rb_printf(&s->out, "*%zu\r\n", ncmds);
		for (size_t i = 0; i < ncmds && !ret; i++)
			ret = command_entry(&s->out, &cmds[i]);
	} else {
		ret = rb_printf(&s->out, "*%zu\r\n", argc - 2);
		for (size_t i = 2; i < argc && !ret; i++) {
			const struct cmd *c = find_cmd(rc->argv[i], rc->argl[i]);

			ret = c ? command_entry(&s->out, c) : rb_add(&s->out, "*-1\r\n", 5);
		}
	}
	reply_done(rc, s, ret);
}

/* --- parsing --- */

/*
 * The connection cannot stay in step: the client is told, after the replies
 * to what came before, and the connection closes once they are written. A
 * value that arrived whole, as long as its length said, was stored already.
 */
static ssize_t proto_error(struct rconn *rc, const char *why)
{
	rc->cs->bad_frames++;
	if (rc->argc)
		request_end(rc);
	reply(rc, "-ERR Protocol error: %s\r\n", why);
	rc->quit = true;
	return -1;
}

/* More bytes are needed, n at least: the buffer grows to hold them. */
static ssize_t need(struct rconn *rc, size_t have, size_t n)
{
	if (conn_want(rc->c, MAX(n, have + have / 2 + RESP_NUM_LINE_MAX)))
		rc->oom = true;
	return rc->oom ? -1 : 0;
}

/* Room for n arguments; false once the connection was closed for memory. */
static bool args_room(struct rconn *rc, size_t n)
{
	const uint8_t **v;
	size_t *l, *o;

	if (n <= rc->args_cap)
		return true;
	n = MAX(n, rc->args_cap * 2);
	v = realloc(rc->argv, n * sizeof(*v));
	if (v)
		rc->argv = v;
	l = v ? realloc(rc->argl, n * sizeof(*l)) : NULL;
	if (l)
		rc->argl = l;
	o = l ? realloc(rc->argo, n * sizeof(*o)) : NULL;
	if (!o) {
		rc->oom = true;
		return false;
	}
	rc->argo = o;
	rc->args_cap = n;
	return true;
}

/* After a request of many arguments: an idle connection keeps little. */
static void args_shrink(struct rconn *rc)
{
	if (rc->args_cap <= ARGS_KEEP)
		return;
	free(rc->argv);
	free(rc->argl);
	free(rc->argo);
	rc->argv = NULL;
	rc->argl = NULL;
	rc->argo = NULL;
	rc->args_cap = 0;
}

/* The rest of the request, from argument i on, is read and dropped. */
static void skip_rest(struct rconn *rc, size_t argc, size_t i)
{
	rc->argc = argc;
	rc->argi = i;
	rc->skip = true;
	conn_set_mid(rc->c, true);
	args_shrink(rc);
}

/*
 * The command in argv[0] of an argc-argument request, once its name is
 * read: NULL if it is refused, and answered.
 */
static const struct cmd *check(struct rconn *rc, size_t argc)
{
	const struct cmd *c = find_cmd(rc->argv[0], rc->argl[0]);
	char name[40];
	size_t n = MIN(rc->argl[0], sizeof(name) - 1);

	for (size_t i = 0; i < n; i++)
		name[i] = rc->argv[0][i] >= ' ' && rc->argv[0][i] < 127 ? rc->argv[0][i] : '?';
	name[n] = 0;
	if (!c) {
		reply(rc, "-ERR unknown command '%s'\r\n", name);
	} else if (rc->env->password && !rc->authed && !c->before_auth) {
		reply(rc, "-NOAUTH Authentication required.\r\n");
	} else if (c->arity > 0 ? argc != (size_t)c->arity : argc < (size_t)-c->arity) {
		reply(rc, "-ERR wrong number of arguments for '%s' command\r\n", c->name);
	} else if (!strcmp(c->name, "set") && argc != 3) {
		reply(rc, "-ERR syntax error: this server's SET takes a key and a value, "
			  "no options\r\n");
	} else if (!strcmp(c->name, "mset") && argc % 2 == 0) {
		reply(rc, "-ERR wrong number of arguments for 'mset' command\r\n");
	} else {
		if (c->fn != cmd_scan)
			pace_request(rc->env->pace);
		return c;
	}
	return NULL;
}

/*
 * SCAN yields to other clients' requests (pace.h): true if it waits, the
 * connection deferred and the request left in the buffer.
 */
static bool scan_waits(struct rconn *rc, const struct cmd *c)
{
	unsigned wait = c->fn == cmd_scan ? pace_wait(rc->env->pace, conn_woken(rc->c)) : 0;

	return wait && !conn_defer(rc->c, wait);
}

/* SET's or MSET's first value, its length just read: its put begins. */
static void values_begin(struct rconn *rc, size_t argc, uint64_t vlen)
{
	rc->set = slot_new(rc, SK_OK);
	if (!rc->set)
		return;
	rc->set->pending = 1; /* until the last value is read */
	rc->set->kind = SK_OK;
	rc->argc = argc;
	rc->argi = 2;
	conn_set_mid(rc->c, true);
	value_begin(rc, rc->argv[1], rc->argl[1], vlen);
}

/* The first n arguments of the array request that starts at buf, read. */
static void args_at(struct rconn *rc, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rc->argv[i] = buf + rc->argo[i];
}

/*
 * An array request, from its start or from where it stopped for more bytes.
 * Its arguments are read whole, up to SET's or MSET's first value; a refused
 * one is dropped from the argument that gives it away.
 */
static ssize_t array_request(struct rconn *rc, const uint8_t *buf, size_t len)
{
	struct part *p = &rc->part;
	const struct cmd *c;
	int64_t argc, alen;
	size_t pos = 0, at;
	int r;

	if (!p->argc) {
		r = resp_int_line(buf, len, &pos, '*', &argc);
		if (r <= 0)
			return r ? proto_error(rc, "invalid multibulk length")
				 : need(rc, len, len + 1);
		if (argc <= 0)
			return pos;
		if (argc > ARGS_MAX)
			return proto_error(rc, "invalid multibulk length");
		*p = (struct part){ .argc = argc, .pos = pos };
	}
	for (; p->i < p->argc; p->i++) {
		at = pos = p->pos;
		r = resp_int_line(buf, len, &pos, '$', &alen);
		if (r <= 0)
			return r ? proto_error(rc, "invalid bulk length") : need(rc, len, len + 1);
		if (alen < 0)
			return proto_error(rc, "invalid bulk length");
		if (p->cmd && !p->cmd->fn && p->i == 2) {
			args_at(rc, buf, 2);
			argc = p->argc;
			*p = (struct part){ 0 };
			values_begin(rc, argc, alen);
			return pos;
		}
		if (alen > ONE_ARG_MAX || pos + alen > REQ_MAX) {
			reply(rc,
			      "-ERR an argument of %lld bytes: more than this server reads "
			      "(64 KiB; 4 MiB a request)\r\n",
			      (long long)alen);
			skip_rest(rc, p->argc, p->i);
			*p = (struct part){ 0 };
			return at;
		}
		if (pos + alen + 2 > len)
			return need(rc, len, pos + alen + 2);
		if (buf[pos + alen] != '\r' || buf[pos + alen + 1] != '\n')
			return proto_error(rc, "a bulk string longer than its length");
		if (!args_room(rc, MIN(p->argc, p->i + 64)))
			return -1;
		rc->argo[p->i] = pos;
		rc->argl[p->i] = alen;
		p->pos = pos + alen + 2;
		if (p->i == 0) {
			args_at(rc, buf, 1);
			p->cmd = check(rc, p->argc);
			if (!p->cmd) {
				if (p->argc > 1)
					skip_rest(rc, p->argc, 1);
				pos = p->pos;
				*p = (struct part){ 0 };
				return pos;
			}
		}
	}
	c = p->cmd;
	args_at(rc, buf, p->argc);
	argc = p->argc;
	pos = p->pos;
	*p = (struct part){ 0 };
	if (scan_waits(rc, c))
		return 0;
	c->fn(rc, argc);
	args_shrink(rc);
	return pos;
}

/* A line of words, as typed into telnet. */
static ssize_t inline_request(struct rconn *rc, const uint8_t *buf, size_t len)
{
	const uint8_t *nl = memchr(buf, '\n', MIN(len, INLINE_MAX));
	const struct cmd *c;
	size_t end, argc = 0;

	if (!nl)
		return len >= INLINE_MAX ? proto_error(rc, "too big inline request")
					 : need(rc, len, len + 1);
	end = nl - buf;
	argc = resp_words(buf, end, rc->argv, rc->argl, rc->args_cap);
	if (argc > rc->args_cap) {
		if (!args_room(rc, argc))
			return -1;
		resp_words(buf, end, rc->argv, rc->argl, rc->args_cap);
	}
	if (!argc)
		return end + 1;
	c = check(rc, argc);
	if (c && !c->fn)
		reply(rc, "-ERR SET and MSET take the array form here (as redis-cli and "
			  "client libraries send them)\r\n");
	else if (c && scan_waits(rc, c))
		return 0;
	else if (c)
		c->fn(rc, argc);
	args_shrink(rc);
	return end + 1;
}

/* Inside a request read across calls: MSET's next key and value, or an argument dropped. */
static ssize_t next_arg(struct rconn *rc, const uint8_t *buf, size_t len)
{
	size_t pos = 0, kpos;
	int64_t klen, alen;
	int r = resp_int_line(buf, len, &pos, '$', &alen);

	if (r <= 0 || alen < 0)
		return r ? proto_error(rc, "invalid bulk length") : need(rc, len, len + 1);
	if (alen > ONE_ARG_MAX && !rc->skip) {
		/* MSET's key: far too long. Its value, and the rest, are dropped. */
		rc->set->err = -E2BIG;
		snprintf(rc->set->why, sizeof(rc->set->why), "key of %lld bytes exceeds the limit",
			 (long long)alen);
		rc->skip = true;
	}
	if (alen > ONE_ARG_MAX) {
		rc->crlf = true;
		conn_payload(rc->c, alen, NULL);
		return pos;
	}
	if (pos + alen + 2 > len)
		return need(rc, len, pos + alen + 2);
	if (buf[pos + alen] != '\r' || buf[pos + alen + 1] != '\n')
		return proto_error(rc, "a bulk string longer than its length");
	kpos = pos;
	klen = alen;
	pos += alen + 2;
	rc->argi++;
	if (rc->skip) {
		if (rc->argi == rc->argc)
			request_end(rc);
		return pos;
	}
	/* MSET: the key is read; the put begins with its value's length. */
	r = resp_int_line(buf, len, &pos, '$', &alen);
	if (r <= 0 || alen < 0) {
		rc->argi--;
		return r ? proto_error(rc, "invalid bulk length") : need(rc, len, len + 1);
	}
	value_begin(rc, buf + kpos, klen, alen);
	return pos;
}

static ssize_t take(struct rconn *rc, const uint8_t *buf, size_t len)
{
	if (rc->crlf) {
		if (len < 2)
			return need(rc, len, 2);
		if (buf[0] != '\r' || buf[1] != '\n')
			return proto_error(rc, "a bulk string longer than its length");
		rc->crlf = false;
		if (++rc->argi == rc->argc)
			request_end(rc);
		return 2;
	}
	if (rc->argi < rc->argc)
		return next_arg(rc, buf, len);
	if (!len)
		return 0;
	return rc->part.argc || buf[0] == '*' ? array_request(rc, buf, len)
					      : inline_request(rc, buf, len);
}

/* After QUIT, or a request that broke the stream: nothing more is read, the rest is answered. */
static ssize_t resp_input(struct conns *cs, struct conn *c, const uint8_t *buf, size_t len)
{
	struct rconn *rc = conn_data(c);
	ssize_t n;
	bool quit;

	/* Held as if flushing: what the request answers goes out once it is taken. */
	rc->flushing = true;
	n = take(rc, buf, len);
	rc->flushing = false;
	quit = rc->quit;
	flush(rc);
	if (conn_closed(c))
		return -1;
	if (quit) {
		conn_finish(c);
		return -1;
	}
	return n;
}

/*
 * The requests end with the connection: gets are aborted (the connection
 * drops the piece it holds), puts and deletes go on and free their slots.
 */
static void resp_closed(struct conns *cs, struct conn *c)
{
	struct rconn *rc = conn_data(c);
	STAILQ_HEAD(, slot) slots = STAILQ_HEAD_INITIALIZER(slots);
	struct slot *s;

	if (!rc) /* resp_conn_init failed */
		return;
	if (rc->set) {
		rc->set->pending--;
		rc->set = NULL;
	}
	/*
	 * Every slot is detached and held first: aborting a get that waits for
	 * its version settles it, which may commit a put of this connection
	 * deferred behind it at once (put_done, op_done): that must neither
	 * flush to the closed connection nor free a slot still on the list.
	 */
	STAILQ_CONCAT(&slots, &rc->slots);
	STAILQ_FOREACH(s, &slots, link)
	{
		s->rc = NULL;
		s->pending++;
	}
	while ((s = STAILQ_FIRST(&slots))) {
		STAILQ_REMOVE_HEAD(&slots, link);
		if (s->streaming && s->q && s->q->queued)
			s->q = NULL; /* the connection aborts the get as it drops the piece */
		else if (s->g)
			store_get_abort(s->g);
		s->g = NULL;
		if (!--s->pending)
			slot_free(s);
	}
	conn_set_data(c, NULL);
	if (rc->flushing)
		rc->dead = true;
	else
		rconn_free(rc);
}

const struct conn_proto resp_proto = { .input = resp_input, .closed = resp_closed };

int resp_conn_init(struct conns *cs, struct conn *c)
{
	struct rconn *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return -ENOMEM;
	rc->c = c;
	rc->env = cs->owner;
	rc->cs = cs;
	STAILQ_INIT(&rc->slots);
	conn_set_data(c, rc);
	return 0;
}
