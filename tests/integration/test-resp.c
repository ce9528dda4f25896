/*
 * The RESP listener against a real daemon, on raw sockets:
 *   (a) every command's reply, byte for byte, and the errors users meet;
 *   (b) model-checked pipelining: three connections at once, each with its own
 *       keys, keep up to 300 requests in flight (SET, GET, DEL, EXISTS, MGET,
 *       MSET, STRLEN; values from 0 bytes to 1.5 MiB), reading replies only
 *       as they like, on a daemon whose per-connection share (64 KiB) and pool
 *       (4 MiB) are small, so gets behind the front copy, park and resume;
 *       every reply is checked, in order, against a model of each key;
 *   (c) hostile input: lying lengths, missing CRLFs, huge counts, oversized
 *       arguments (refused, the connection stays in step), a value over
 *       --max-value (dropped, the connection stays in step), a request sent
 *       a byte at a time, QUIT with more behind it, EOF mid-value, EOF
 *       inside a request behind pipelined ones (answered whole); large
 *       requests in random pieces (each byte parsed once, so a slow sender
 *       costs no more than a fast one);
 *   (c') a client reading steadily while the daemon holds its pipelined
 *       requests is not closed by the idle sweep;
 *   (d) AUTH with --resp-password-file, and TCP beyond loopback refused
 *       without one;
 *   (e) kill -9 amid pipelined SETs with --sync always: every acknowledged
 *       SET reads back after the restart.
 * Seeds: ZT_SEED=N reproduces a run of (b).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define IO_MS	  20000
#define MAX_VALUE (2u << 20)
#define NCONN	  3
#define NKEYS	  40
#define NOPS	  6000
#define DEPTH	  300

static struct zt_daemon d;
static char resp_sock[320];

/* --- a RESP client --- */

struct rx {
	int fd;
	char *buf;
	size_t len, cap, pos;
	bool eof;
};

enum rtype { R_STATUS = '+', R_ERROR = '-', R_INT = ':', R_BULK = '$', R_ARRAY = '*' };

struct reply {
	char type;
	long long n; /* integer; bulk or array length (-1: nil) */
	char *str;   /* status, error, bulk */
	struct reply *el;
};

static void reply_free(struct reply *r)
{
	for (long long i = 0; r->type == R_ARRAY && i < r->n; i++)
		reply_free(&r->el[i]);
	free(r->el);
	free(r->str);
	memset(r, 0, sizeof(*r));
}

static int connect_resp(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	zt_check(strlen(resp_sock) < sizeof(sa.sun_path), "socket path too long: %s", resp_sock);
	memcpy(sa.sun_path, resp_sock, strlen(resp_sock) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		zt_fail("connect %s: %s", resp_sock, strerror(errno));
	return fd;
}

/* Reads what the socket has (waiting up to ms for something): false at EOF. */
static bool rx_more(struct rx *x, int ms)
{
	struct pollfd p = { .fd = x->fd, .events = POLLIN };
	ssize_t n;

	if (x->pos > x->len / 2) {
		memmove(x->buf, x->buf + x->pos, x->len - x->pos);
		x->len -= x->pos;
		x->pos = 0;
	}
	if (x->cap - x->len < 65536) {
		x->cap = x->cap * 2 + 65536;
		x->buf = realloc(x->buf, x->cap);
		zt_check(x->buf, "out of memory");
	}
	if (poll(&p, 1, ms) == 0)
		return true;
	n = read(x->fd, x->buf + x->len, x->cap - x->len);
	if (n == 0 || (n < 0 && errno == ECONNRESET)) {
		x->eof = true;
		return false;
	}
	zt_check(n > 0 || errno == EAGAIN || errno == EINTR, "read: %s", strerror(errno));
	if (n > 0)
		x->len += n;
	return true;
}

/* A reply from x's buffer at *at: 1 parsed, 0 not all there yet. Fails on bad RESP. */
static int parse(struct rx *x, size_t *at, struct reply *r)
{
	char *p, *end, *nl;
	size_t hl;

	if (!x->buf)
		return 0;
	p = x->buf + *at;
	end = x->buf + x->len;
	nl = memchr(p, '\n', end - p);
	if (p >= end || !nl)
		return 0;
	zt_check(nl > p + 1 && nl[-1] == '\r', "a reply line without CRLF: %.40s", p);
	hl = nl + 1 - p;
	memset(r, 0, sizeof(*r));
	r->type = *p;
	switch (*p) {
	case R_STATUS:
	case R_ERROR:
		r->str = strndup(p + 1, nl - 1 - (p + 1));
		*at += hl;
		return 1;
	case R_INT:
		r->n = strtoll(p + 1, NULL, 10);
		*at += hl;
		return 1;
	case R_BULK:
		r->n = strtoll(p + 1, NULL, 10);
		if (r->n < 0) {
			*at += hl;
			return 1;
		}
		if ((size_t)(end - p) < hl + r->n + 2)
			return 0;
		zt_check(p[hl + r->n] == '\r' && p[hl + r->n + 1] == '\n',
			 "a bulk without its CRLF");
		r->str = malloc(r->n + 1);
		memcpy(r->str, p + hl, r->n);
		r->str[r->n] = 0;
		*at += hl + r->n + 2;
		return 1;
	case R_ARRAY: {
		size_t pos = *at + hl;

		r->n = strtoll(p + 1, NULL, 10);
		r->el = r->n > 0 ? calloc(r->n, sizeof(*r->el)) : NULL;
		for (long long i = 0; i < r->n; i++) {
			if (!parse(x, &pos, &r->el[i])) {
				reply_free(r);
				return 0;
			}
		}
		*at = pos;
		return 1;
	}
	default:
		zt_fail("a reply of unknown type '%c'", *p);
	}
}

/* The next reply, waiting for it; false at EOF. */
static bool next_reply(struct rx *x, struct reply *r)
{
	double until = zt_now() + IO_MS / 1000.0;

	for (;;) {
		size_t at = x->pos;

		if (parse(x, &at, r)) {
			x->pos = at;
			return true;
		}
		if (!rx_more(x, 100))
			return false;
		zt_check(zt_now() < until, "no reply for %d ms", IO_MS);
	}
}

/* A request as RESP: argv of lengths argl (argl NULL: strings). */
static size_t encode(char **out, int argc, const char *const *argv, const size_t *argl)
{
	size_t len = 32, n = 0;
	char *p;

	for (int i = 0; i < argc; i++)
		len += 32 + (argl ? argl[i] : strlen(argv[i]));
	p = malloc(len);
	n = sprintf(p, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++) {
		size_t l = argl ? argl[i] : strlen(argv[i]);

		n += sprintf(p + n, "$%zu\r\n", l);
		memcpy(p + n, argv[i], l);
		n += l;
		memcpy(p + n, "\r\n", 2);
		n += 2;
	}
	*out = p;
	return n;
}

/* Sends a request and returns its reply as one line: "+OK", ":3", "$bar", "$nil", "*2 ...". */
static char *ask_raw(struct rx *x, const char *req, size_t len)
{
	struct reply r;
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);

	zt_send_all(x->fd, req, len);
	zt_check(next_reply(x, &r), "the daemon closed the connection after %.60s", req);
	if (r.type == R_ARRAY) {
		fprintf(f, "*%lld", r.n);
		for (long long i = 0; i < r.n; i++)
			fprintf(f, " %s",
				r.el[i].type == R_BULK && r.el[i].n < 0 ? "nil"
				: r.el[i].str				? r.el[i].str
									: "?");
	} else if (r.type == R_BULK) {
		fprintf(f, "$%s", r.n < 0 ? "nil" : r.str);
	} else if (r.type == R_INT) {
		fprintf(f, ":%lld", r.n);
	} else {
		fprintf(f, "%c%s", r.type, r.str);
	}
	fclose(f);
	reply_free(&r);
	return s;
}

static char *ask(struct rx *x, int argc, const char *const *argv)
{
	char *req, *s;
	size_t n = encode(&req, argc, argv, NULL);

	s = ask_raw(x, req, n);
	free(req);
	return s;
}

#define ASK(x, ...)                                                                                \
	ask((x), sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(char *),                         \
	    (const char *[]){ __VA_ARGS__ })

static void expect(char *got, const char *want, const char *what)
{
	zt_check(!strcmp(got, want), "%s: got '%s', want '%s'", what, got, want);
	free(got);
}

/* got starts with want. */
static void expect_prefix(char *got, const char *want, const char *what)
{
	zt_check(!strncmp(got, want, strlen(want)), "%s: got '%s', want '%s...'", what, got, want);
	free(got);
}

static void rx_open(struct rx *x)
{
	memset(x, 0, sizeof(*x));
	x->fd = connect_resp();
}

static void rx_close(struct rx *x)
{
	close(x->fd);
	free(x->buf);
	memset(x, 0, sizeof(*x));
}

/* The daemon has closed x: what it sent before is drained, then EOF. */
static void expect_closed(struct rx *x, const char *what)
{
	double until = zt_now() + IO_MS / 1000.0;

	while (rx_more(x, 100))
		zt_check(zt_now() < until, "%s: the connection was not closed", what);
}

static void start_daemon(const char *const *extra)
{
	const char *base[] = { "--size", "256M", "--zone-size", "8M", "--resp", resp_sock, NULL };
	static char spec[330];
	size_t n = 0;

	zt_init(&d, NULL);
	snprintf(resp_sock, sizeof(resp_sock), "%s/resp.sock", d.dir);
	snprintf(spec, sizeof(spec), "unix:%s", resp_sock);
	base[5] = spec;
	for (size_t i = 0; base[i]; i++)
		d.args[n++] = base[i];
	for (size_t i = 0; extra && extra[i]; i++)
		d.args[n++] = extra[i];
	d.args[n] = NULL;
	zt_start(&d);
}

/* --- (a) the commands --- */

static void commands(void)
{
	struct rx x;
	char big[70000];

	rx_open(&x);
	expect(ASK(&x, "PING"), "+PONG", "PING");
	expect(ASK(&x, "ping", "hi"), "$hi", "PING msg");
	expect_prefix(ASK(&x, "PING", "a", "b"), "-ERR wrong number of arguments", "PING a b");
	expect(ASK(&x, "ECHO", "a b"), "$a b", "ECHO");
	expect(ASK(&x, "GET", "k"), "$nil", "GET of nothing");
	expect(ASK(&x, "SET", "k", "v1"), "+OK", "SET");
	expect(ASK(&x, "GET", "k"), "$v1", "GET");
	expect(ASK(&x, "SET", "k", ""), "+OK", "SET of an empty value");
	expect(ASK(&x, "GET", "k"), "$", "GET of an empty value");
	expect(ASK(&x, "STRLEN", "k"), ":0", "STRLEN of an empty value");
	expect(ASK(&x, "MSET", "a", "1", "b", "22", "c", "333"), "+OK", "MSET");
	expect(ASK(&x, "MGET", "a", "nope", "c", "b"), "*4 1 nil 333 22", "MGET");
	expect(ASK(&x, "STRLEN", "c"), ":3", "STRLEN");
	expect(ASK(&x, "STRLEN", "nope"), ":0", "STRLEN of nothing");
	expect(ASK(&x, "EXISTS", "a", "nope", "a", "k"), ":3", "EXISTS");
	expect(ASK(&x, "DEL", "a", "nope", "b"), ":2", "DEL");
	expect(ASK(&x, "EXISTS", "a", "b", "c"), ":1", "EXISTS after DEL");
	/* A small store's SCAN answers whole at once, however sparse its table. */
	expect(ASK(&x, "SCAN", "0", "MATCH", "c*"), "*2 0 ?", "SCAN of a small store");
	expect(ASK(&x, "SELECT", "0"), "+OK", "SELECT 0");
	expect_prefix(ASK(&x, "SELECT", "1"), "-ERR DB index is out of range", "SELECT 1");
	expect_prefix(ASK(&x, "SET", "k", "v", "EX", "10"), "-ERR syntax error", "SET EX");
	expect(ASK(&x, "GET", "k"), "$", "GET after a refused SET");
	expect_prefix(ASK(&x, "FLUSHALL"), "-ERR unknown command 'FLUSHALL'", "unknown");
	expect_prefix(ASK(&x, "GET"), "-ERR wrong number of arguments for 'get'", "GET arity");
	expect_prefix(ASK(&x, "MSET", "a", "1", "b"), "-ERR wrong number of arguments", "MSET");
	expect_prefix(ASK(&x, "GET", ""), "-ERR empty key", "GET of an empty key");
	expect_prefix(ASK(&x, "AUTH", "pw"), "-ERR AUTH <password> called without", "AUTH");
	expect_prefix(ASK(&x, "HELLO", "3"), "-NOPROTO", "HELLO 3");
	expect_prefix(ASK(&x, "HELLO", "2"), "*14 server zappend version", "HELLO 2");
	expect(ASK(&x, "COMMAND", "COUNT"), ":18", "COMMAND COUNT");
	expect(ASK(&x, "COMMAND", "DOCS"), "*0", "COMMAND DOCS");
	expect(ASK(&x, "CONFIG", "GET", "save"), "*0", "CONFIG GET");
	expect(ASK(&x, "CLIENT", "SETNAME", "me"), "+OK", "CLIENT SETNAME");
	expect(ASK(&x, "CLIENT", "GETNAME"), "$me", "CLIENT GETNAME");
	expect_prefix(ASK(&x, "INFO"), "$# Server\r\nzappend_version:", "INFO");
	/* A key over the store's limit, and an argument over what is read whole. */
	memset(big, 'k', sizeof(big));
	big[2000] = 0;
	expect_prefix(ASK(&x, "SET", big, "v"), "-ERR key of 2000 bytes exceeds", "long key");
	expect_prefix(ASK(&x, "GET", big), "-ERR key longer than", "GET of a long key");
	big[2000] = 'k';
	big[sizeof(big) - 1] = 0;
	expect_prefix(ASK(&x, "GET", big), "-ERR an argument of 69999 bytes", "huge argument");
	expect(ASK(&x, "PING"), "+PONG", "in step after a huge argument");
	/* Inline, as typed into telnet. */
	expect(ask_raw(&x, "PING\r\n", 6), "+PONG", "inline PING");
	expect(ask_raw(&x, "  get   c \n", 11), "$333", "inline GET");
	expect_prefix(ask_raw(&x, "SET k v\r\n", 9), "-ERR SET and MSET take the array form",
		      "inline SET");
	/* QUIT: its +OK, and nothing of what follows it. */
	zt_send_all(x.fd, "*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n", 28);
	{
		struct reply r;

		zt_check(next_reply(&x, &r) && r.type == R_STATUS && !strcmp(r.str, "OK"),
			 "QUIT's reply");
		reply_free(&r);
	}
	expect_closed(&x, "QUIT");
	zt_check(x.len == x.pos, "a reply after QUIT");
	rx_close(&x);
}

/* A whole SCAN with MATCH pattern: how often each scan:N key came back (and how many in all). */
/* SCAN to its end; with beside, each step right behind a request of that connection. */
static unsigned scan_all(struct rx *x, const char *pattern, unsigned *seen, unsigned nseen,
			 struct rx *beside)
{
	char cursor[32] = "0";
	unsigned n = 0;

	do {
		struct reply r;
		char *req;

		if (beside)
			expect(ASK(beside, "SET", "beside", "x"), "+OK", "a SET beside a SCAN");
		size_t len = encode(
		    &req, 6, (const char *[]){ "SCAN", cursor, "MATCH", pattern, "COUNT", "7" },
		    NULL);

		zt_send_all(x->fd, req, len);
		free(req);
		zt_check(next_reply(x, &r) && r.type == R_ARRAY && r.n == 2, "SCAN's reply");
		snprintf(cursor, sizeof(cursor), "%s", r.el[0].str);
		for (long long i = 0; i < r.el[1].n; i++) {
			unsigned k = atoi(r.el[1].el[i].str + 5);

			zt_check(!strncmp(r.el[1].el[i].str, "scan:", 5) && k < nseen,
				 "SCAN gave %s", r.el[1].el[i].str);
			seen[k]++;
			n++;
		}
		reply_free(&r);
	} while (strcmp(cursor, "0"));
	return n;
}

/* SCAN visits every key once, with MATCH's prefix and COUNT. */
/* A counter of INFO's. */
static unsigned long long info_u64(struct rx *x, const char *name)
{
	char *info = ASK(x, "INFO"), *at = strstr(info, name);
	unsigned long long v;

	zt_check(at && at[strlen(name)] == ':', "INFO has no %s", name);
	v = strtoull(at + strlen(name) + 1, NULL, 10);
	free(info);
	return v;
}

static void scan(void)
{
	struct rx x, other;
	char key[32];
	unsigned seen[300] = { 0 }, n;
	unsigned long long paced;

	rx_open(&x);
	for (unsigned i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "scan:%u", i);
		expect(ASK(&x, "SET", key, key), "+OK", "SET for SCAN");
	}
	n = scan_all(&x, "scan:*", seen, 300, NULL);
	zt_check(n == 300, "SCAN found %u keys of 300", n);
	for (unsigned i = 0; i < 300; i++)
		zt_check(seen[i] == 1, "SCAN found scan:%u %u times", i, seen[i]);
	/* Steps behind another client's requests wait, and still find every key once. */
	rx_open(&other);
	paced = info_u64(&x, "scan_steps_paced");
	memset(seen, 0, sizeof(seen));
	n = scan_all(&x, "scan:*", seen, 300, &other);
	zt_check(n == 300, "SCAN beside SETs found %u keys of 300", n);
	for (unsigned i = 0; i < 300; i++)
		zt_check(seen[i] == 1, "SCAN beside SETs found scan:%u %u times", i, seen[i]);
	zt_check(info_u64(&x, "scan_steps_paced") > paced, "no SCAN step beside SETs waited");
	rx_close(&other);
	memset(seen, 0, sizeof(seen));
	n = scan_all(&x, "scan:17", seen, 300, NULL);
	zt_check(n == 1 && seen[17] == 1, "SCAN MATCH scan:17 found %u keys", n);
	expect_prefix(ASK(&x, "SCAN", "0", "MATCH", "s?an*"), "-ERR this server's SCAN MATCH",
		      "SCAN MATCH glob");
	expect_prefix(ASK(&x, "SCAN", "x"), "-ERR invalid cursor", "SCAN bad cursor");
	rx_close(&x);
}

/* --- (b) pipelining against a model --- */

struct kv {
	bool set;
	bool gone; /* deleted since its last SET: a delete may still be in flight */
	size_t len;
	uint64_t seed;
};

/* What a request expects back. */
struct want {
	char kind; /* 'o' +OK, 'i' integer, 'd' 0 or 1, 'v' a value (or nil), 'm' MGET */
	const char *op;
	long long n;
	struct kv v;
	struct kv mv[4];
	unsigned nm;
};

struct pconn {
	struct rx x;
	unsigned id;
	struct kv keys[NKEYS];
	struct want *wants; /* a ring of the requests sent, not yet answered */
	unsigned head, tail;
	char *out;
	size_t olen, ocap, osent;
	unsigned sent, answered;
	uint64_t rng;
};

static size_t value_len(uint64_t *rng)
{
	unsigned r = zt_rand(rng) % 100;

	if (r < 60)
		return zt_rand(rng) % 200;
	if (r < 90)
		return zt_rand(rng) % 20000;
	if (r < 98)
		return zt_rand(rng) % 300000;
	return 1000000 + zt_rand(rng) % 500000;
}

static void out_add(struct pconn *p, const void *b, size_t n)
{
	if (p->olen + n > p->ocap) {
		p->ocap = (p->olen + n) * 2;
		p->out = realloc(p->out, p->ocap);
		zt_check(p->out, "out of memory");
	}
	memcpy(p->out + p->olen, b, n);
	p->olen += n;
}

static void out_arg(struct pconn *p, const void *b, size_t n)
{
	char h[32];

	out_add(p, h, snprintf(h, sizeof(h), "$%zu\r\n", n));
	out_add(p, b, n);
	out_add(p, "\r\n", 2);
}

/* Keys carry CRLF and NUL: RESP is binary-safe. */
static void out_key(struct pconn *p, unsigned k)
{
	char key[32];
	int n = snprintf(key, sizeof(key), "c%u\r\n", p->id);

	key[n++] = 0;
	n += snprintf(key + n, sizeof(key) - n, "key%u", k);
	out_arg(p, key, n);
}

static void out_value(struct pconn *p, unsigned k)
{
	struct kv *v = &p->keys[k];
	char *buf;

	v->set = true;
	v->gone = false;
	v->len = value_len(&p->rng);
	v->seed = zt_rand(&p->rng);
	buf = malloc(v->len + 1);
	zt_fill(buf, v->len, v->seed);
	out_arg(p, buf, v->len);
	free(buf);
}

/* One random request, into p's output, and what it expects, from the model. */
static void gen(struct pconn *p)
{
	struct want *w = &p->wants[p->tail++ % DEPTH];
	unsigned op = zt_rand(&p->rng) % 100, k = zt_rand(&p->rng) % NKEYS, n;
	char h[16];

	memset(w, 0, sizeof(*w));
	if (op < 35) {
		out_add(p, "*3\r\n$3\r\nSET\r\n", 13);
		out_key(p, k);
		out_value(p, k);
		w->kind = 'o';
		w->op = "SET";
	} else if (op < 70) {
		out_add(p, "*2\r\n$3\r\nGET\r\n", 13);
		out_key(p, k);
		w->kind = 'v';
		w->op = "GET";
		w->v = p->keys[k];
	} else if (op < 80) {
		out_add(p, "*2\r\n$3\r\nDEL\r\n", 13);
		out_key(p, k);
		/* Behind a delete still in flight, a delete finds what that one deletes. */
		w->kind = !p->keys[k].set && p->keys[k].gone ? 'd' : 'i';
		w->op = "DEL";
		w->n = p->keys[k].set;
		p->keys[k].gone = true;
		p->keys[k].set = false;
	} else if (op < 85) {
		unsigned k2 = zt_rand(&p->rng) % NKEYS;

		out_add(p, "*3\r\n$6\r\nEXISTS\r\n", 16);
		out_key(p, k);
		out_key(p, k2);
		w->kind = 'i';
		w->op = "EXISTS";
		w->n = p->keys[k].set + p->keys[k2].set;
	} else if (op < 90) {
		out_add(p, "*2\r\n$6\r\nSTRLEN\r\n", 16);
		out_key(p, k);
		w->kind = 'i';
		w->op = "STRLEN";
		w->n = p->keys[k].set ? (long long)p->keys[k].len : 0;
	} else if (op < 95) {
		n = 1 + zt_rand(&p->rng) % 4;
		out_add(p, h, snprintf(h, sizeof(h), "*%u\r\n$4\r\nMGET\r\n", n + 1));
		w->kind = 'm';
		w->op = "MGET";
		w->nm = n;
		for (unsigned i = 0; i < n; i++) {
			k = zt_rand(&p->rng) % NKEYS;
			out_key(p, k);
			w->mv[i] = p->keys[k];
		}
	} else {
		n = 1 + zt_rand(&p->rng) % 3;
		out_add(p, h, snprintf(h, sizeof(h), "*%u\r\n$4\r\nMSET\r\n", 2 * n + 1));
		for (unsigned i = 0; i < n; i++) {
			k = zt_rand(&p->rng) % NKEYS;
			out_key(p, k);
			out_value(p, k);
		}
		w->kind = 'o';
		w->op = "MSET";
	}
	p->sent++;
}

static void check_value(const struct reply *r, const struct kv *v, const char *what)
{
	char *buf;

	if (!v->set) {
		zt_check(r->type == R_BULK && r->n == -1, "%s: a value where none is", what);
		return;
	}
	zt_check(r->type == R_BULK && r->n == (long long)v->len, "%s: %c %lld, want a value of %zu",
		 what, r->type, r->n, v->len);
	buf = malloc(v->len + 1);
	zt_fill(buf, v->len, v->seed);
	zt_check(!memcmp(buf, r->str, v->len), "%s: the value differs", what);
	free(buf);
}

static void check(struct pconn *p, const struct reply *r)
{
	const struct want *w = &p->wants[p->head++ % DEPTH];
	char what[64];

	snprintf(what, sizeof(what), "conn %u request %u (%s)", p->id, p->answered, w->op);
	p->answered++;
	zt_check(r->type != R_ERROR, "%s: -%s", what, r->str);
	switch (w->kind) {
	case 'o':
		zt_check(r->type == R_STATUS && !strcmp(r->str, "OK"), "%s: not +OK", what);
		break;
	case 'i':
		zt_check(r->type == R_INT && r->n == w->n, "%s: %c%lld, want :%lld", what, r->type,
			 r->n, w->n);
		break;
	case 'd':
		zt_check(r->type == R_INT && (r->n == 0 || r->n == 1), "%s: %c%lld, want :0 or :1",
			 what, r->type, r->n);
		break;
	case 'v':
		check_value(r, &w->v, what);
		break;
	default:
		zt_check(r->type == R_ARRAY && r->n == w->nm, "%s: MGET's array", what);
		for (unsigned i = 0; i < w->nm; i++)
			check_value(&r->el[i], &w->mv[i], what);
	}
}

/* Sends what is queued, as much as the socket takes now. */
static void pump_out(struct pconn *p)
{
	ssize_t n;

	if (p->osent == p->olen)
		return;
	n = send(p->x.fd, p->out + p->osent, p->olen - p->osent, MSG_DONTWAIT | MSG_NOSIGNAL);
	zt_check(n >= 0 || errno == EAGAIN, "send: %s", strerror(errno));
	if (n > 0)
		p->osent += n;
	if (p->osent == p->olen)
		p->osent = p->olen = 0;
}

static void pump_in(struct pconn *p)
{
	struct reply r;
	size_t at = p->x.pos;

	while (parse(&p->x, &at, &r)) {
		p->x.pos = at;
		check(p, &r);
		reply_free(&r);
	}
}

static void pipeline(uint64_t seed)
{
	struct pconn pc[NCONN] = { 0 };
	double last = zt_now();
	unsigned total = 0;

	for (unsigned i = 0; i < NCONN; i++) {
		rx_open(&pc[i].x);
		fcntl(pc[i].x.fd, F_SETFL, O_NONBLOCK);
		pc[i].id = i;
		pc[i].rng = seed * 31 + i;
		pc[i].wants = calloc(DEPTH, sizeof(*pc[i].wants));
	}
	while (total < NCONN * NOPS) {
		struct pollfd pf[NCONN];

		for (unsigned i = 0; i < NCONN; i++) {
			struct pconn *p = &pc[i];

			/* Bursts of requests, and pauses in reading: the daemon must hold both. */
			while (p->sent < NOPS && p->sent - p->answered < DEPTH &&
			       p->olen < (4u << 20) && zt_rand(&p->rng) % 8)
				gen(p);
			pump_out(p);
			pf[i] = (struct pollfd){ .fd = p->x.fd,
						 .events = POLLIN | (p->olen ? POLLOUT : 0) };
		}
		zt_check(poll(pf, NCONN, 1000) >= 0, "poll: %s", strerror(errno));
		total = 0;
		for (unsigned i = 0; i < NCONN; i++) {
			struct pconn *p = &pc[i];
			unsigned before = p->answered;

			if ((pf[i].revents & POLLIN) && zt_rand(&p->rng) % 4) {
				zt_check(rx_more(&p->x, 0), "conn %u: closed by the daemon", i);
				pump_in(p);
			}
			if (p->answered != before)
				last = zt_now();
			total += p->answered;
		}
		zt_check(zt_now() - last < IO_MS / 1000.0, "no reply for %d ms: %u of %u answered",
			 IO_MS, total, NCONN * NOPS);
	}
	for (unsigned i = 0; i < NCONN; i++) {
		expect(ASK(&pc[i].x, "PING"), "+PONG", "PING after the pipeline");
		rx_close(&pc[i].x);
		free(pc[i].wants);
		free(pc[i].out);
	}
	printf("pipelined %u requests on %u connections (seed %llu)\n", total, NCONN,
	       (unsigned long long)seed);
}

/* --- (c) hostile input --- */

/* raw breaks the stream: an error line, then the connection closes. */
static void broken(const char *raw, size_t len, const char *why)
{
	struct rx x;
	struct reply r;

	printf("broken: %s\n", why);
	rx_open(&x);
	zt_send_all(x.fd, raw, len);
	/* A SET whose value came whole is answered first. */
	zt_check(next_reply(&x, &r), "%s: no reply", why);
	if (r.type == R_STATUS) {
		reply_free(&r);
		zt_check(next_reply(&x, &r), "%s: no reply after +OK", why);
	}
	zt_check(r.type == R_ERROR && strstr(r.str, "Protocol error"), "%s: no protocol error",
		 why);
	reply_free(&r);
	expect_closed(&x, why);
	rx_close(&x);
}

static void hostile(void)
{
	static const char bad_crlf[] = "*2\r\n$3\r\nGET\r\n$1\r\nkXY";
	struct rx x;
	char *req, *val;
	size_t n;

	broken("*abc\r\n", 6, "a multibulk count that is not a number");
	broken("*2\r\n$-1\r\n", 9, "a nil bulk in a request");
	broken("*2\r\n+GET\r\n", 10, "a status in a request");
	broken(bad_crlf, sizeof(bad_crlf) - 1, "a bulk longer than its length");
	broken("*99999999999\r\n", 14, "a huge multibulk count");
	broken("*1\r\n$12345678901234567890123\r\n", 30, "a bulk length that overflows");
	broken("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nvvv\r\n", 29, "a value longer than said");
	val = malloc(70000);
	memset(val, 'x', 70000);
	broken(val, 70000, "an inline line of 70,000 bytes");

	free(val);
	rx_open(&x);
	/* A value over --max-value: refused, dropped, and the stream stays in step. */
	val = calloc(1, MAX_VALUE + 10);
	n = encode(&req, 3, (const char *[]){ "SET", "big", val },
		   (size_t[]){ 3, 3, MAX_VALUE + 10 });
	expect_prefix(ask_raw(&x, req, n), "-ERR value of 2097162 bytes exceeds the limit",
		      "SET over --max-value");
	free(req);
	expect(ASK(&x, "GET", "big"), "$nil", "the refused value is not stored");
	/* A request a byte at a time. */
	n = encode(&req, 3, (const char *[]){ "SET", "slow", val }, (size_t[]){ 3, 4, 5000 });
	for (size_t i = 0; i < n; i++)
		zt_send_all(x.fd, req + i, 1);
	free(req);
	{
		struct reply r;

		zt_check(next_reply(&x, &r) && r.type == R_STATUS, "SET a byte at a time");
		reply_free(&r);
	}
	expect(ASK(&x, "STRLEN", "slow"), ":5000", "the value sent a byte at a time");
	/* An MSET whose second key is too long: refused, the first pair stands. */
	{
		char *key = malloc(70000);

		memset(key, 'q', 70000);
		n = encode(&req, 5, (const char *[]){ "MSET", "m1", "one", key, "two" },
			   (size_t[]){ 4, 2, 3, 70000, 3 });
		free(key);
		expect_prefix(ask_raw(&x, req, n), "-ERR key of 70000 bytes", "MSET, a long key");
		free(req);
		expect(ASK(&x, "GET", "m1"), "$one", "MSET's first pair");
		expect(ASK(&x, "PING"), "+PONG", "in step after MSET's long key");
	}
	/* An empty multibulk is nothing; then a request split inside its value. */
	zt_send_all(x.fd, "*0\r\n*-1\r\n", 9);
	expect(ASK(&x, "PING"), "+PONG", "after empty multibulks");
	free(val);
	/* A request cut short by EOF: the replies before it still come whole. */
	{
		struct reply r;

		val = malloc(300000);
		memset(val, 'w', 300000);
		for (int i = 0; i < 4; i++) {
			char key[8];

			snprintf(key, sizeof(key), "w%d", i);
			n = encode(&req, 3, (const char *[]){ "SET", key, val },
				   (size_t[]){ 3, strlen(key), 300000 });
			expect(ask_raw(&x, req, n), "+OK", "SET of 300,000 bytes");
			free(req);
		}
		n = encode(&req, 5, (const char *[]){ "MGET", "w0", "w1", "w2", "w3" }, NULL);
		zt_send_all(x.fd, req, n);
		free(req);
		zt_send_all(x.fd, "*2\r\n$3\r\nGET\r\n$1\r\n", 17);
		shutdown(x.fd, SHUT_WR);
		zt_check(next_reply(&x, &r) && r.type == R_ARRAY && r.n == 4,
			 "an MGET before a request cut short by EOF: its reply was cut");
		for (int i = 0; i < 4; i++)
			zt_check(r.el[i].n == 300000 && !memcmp(r.el[i].str, val, 300000),
				 "an MGET before a request cut short by EOF: value %d differs", i);
		reply_free(&r);
		expect_closed(&x, "EOF after a partial request");
		rx_close(&x);
		rx_open(&x);
	}
	free(val);
	/* EOF in the middle of a value: that put is not stored. */
	zt_send_all(x.fd, "*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$100\r\nabc", 32);
	shutdown(x.fd, SHUT_WR);
	expect_closed(&x, "EOF mid-value");
	rx_close(&x);
	rx_open(&x);
	expect(ASK(&x, "GET", "half"), "$nil", "a value cut short is not stored");
	rx_close(&x);
}

/*
 * Requests whose bytes come in random pieces, so that reads end inside
 * number lines, arguments and CRLFs while the daemon's buffer grows and
 * moves under a request it has half read: an MSET and an MGET of 1100 keys,
 * a refused command, an argument too long in the middle of an MGET, and a
 * 60,000-byte ECHO, each answered as if it had come whole.
 */
static void trickled(uint64_t seed)
{
	enum { N = 1100 }; /* MGET: past the argument slots a connection keeps */
	static char vals[N][200];
	const char *mset[1 + 2 * N], *mget[2 + N];
	size_t msetl[1 + 2 * N], mgetl[2 + N];
	char keys[N][16], *all = NULL, *req, *echo = malloc(60000), *huge = malloc(70000);
	size_t len = 0, n;
	FILE *f = open_memstream(&all, &len);
	uint64_t rng = seed ^ 0x7472696bull;
	struct reply r;
	struct rx x;

	zt_check(echo && huge && f, "out of memory");
	mset[0] = "MSET";
	msetl[0] = 4;
	mget[0] = "MGET";
	mgetl[0] = 4;
	for (unsigned i = 0; i < N; i++) {
		size_t vl = 1 + zt_rand(&rng) % sizeof(vals[i]);

		snprintf(keys[i], sizeof(keys[i]), "trickle%u", i);
		for (size_t k = 0; k < vl; k++)
			vals[i][k] = 'a' + (i + k) % 26;
		mset[1 + 2 * i] = mget[1 + i] = keys[i];
		msetl[1 + 2 * i] = mgetl[1 + i] = strlen(keys[i]);
		mset[2 + 2 * i] = vals[i];
		msetl[2 + 2 * i] = vl;
	}
	mget[1 + N] = "trickle-none";
	mgetl[1 + N] = strlen(mget[1 + N]);
	memset(echo, 'e', 60000);
	memset(huge, 'h', 70000);
	n = encode(&req, 1 + 2 * N, mset, msetl);
	fwrite(req, 1, n, f);
	free(req);
	n = encode(&req, 2 + N, mget, mgetl);
	fwrite(req, 1, n, f);
	free(req);
	fputs("*3\r\n$6\r\nNOSUCH\r\n$1\r\na\r\n$1\r\nb\r\n", f);
	n = encode(&req, 4, (const char *[]){ "MGET", "trickle1", huge, "trickle2" },
		   (size_t[]){ 4, 8, 70000, 8 });
	fwrite(req, 1, n, f);
	free(req);
	n = encode(&req, 2, (const char *[]){ "ECHO", echo }, (size_t[]){ 4, 60000 });
	fwrite(req, 1, n, f);
	free(req);
	fclose(f);
	rx_open(&x);
	for (size_t at = 0; at < len; at += n) {
		n = 1 + zt_rand(&rng) % 97;
		n = n < len - at ? n : len - at;
		zt_send_all(x.fd, all + at, n);
		if (zt_rand(&rng) % 4 == 0)
			usleep(50);
	}
	zt_check(next_reply(&x, &r) && r.type == R_STATUS, "a trickled MSET: not +OK");
	reply_free(&r);
	zt_check(next_reply(&x, &r) && r.type == R_ARRAY && r.n == N + 1,
		 "a trickled MGET: not an array of %d", N + 1);
	for (unsigned i = 0; i < N; i++)
		zt_check(r.el[i].n == (long long)msetl[2 + 2 * i] &&
			     !memcmp(r.el[i].str, vals[i], msetl[2 + 2 * i]),
			 "a trickled MGET: key %u's value differs", i);
	zt_check(r.el[N].n < 0, "a trickled MGET: a missing key is not nil");
	reply_free(&r);
	zt_check(next_reply(&x, &r) && r.type == R_ERROR && strstr(r.str, "unknown command"),
		 "a trickled unknown command: no error");
	reply_free(&r);
	zt_check(next_reply(&x, &r) && r.type == R_ERROR && strstr(r.str, "70000 bytes"),
		 "a trickled MGET with a long key: no error");
	reply_free(&r);
	zt_check(next_reply(&x, &r) && r.type == R_BULK && r.n == 60000 &&
		     !memcmp(r.str, echo, 60000),
		 "a trickled ECHO of 60,000 bytes: not echoed");
	reply_free(&r);
	expect(ASK(&x, "PING"), "+PONG", "in step after the trickled requests");
	rx_close(&x);
	free(all);
	free(echo);
	free(huge);
	printf("requests in random pieces (%zu bytes): answered as if whole\n", len);
}

/*
 * A client that reads its replies steadily, if slowly, while the daemon
 * holds its further pipelined requests unread (at its share of requests in
 * flight): that silence is the daemon's doing, and the idle sweep must not
 * close the client for "sending part of a request".
 */
static void steady_reader(void)
{
	const char *extra[] = { "--idle-timeout",
				"1",
				"--max-inflight-per-connection",
				"2",
				"--max-value",
				"2M",
				NULL };
	enum { N = 40, V = 1 << 20 };
	char *val = malloc(V), *req, *all, buf[65536];
	size_t n, want = 0, got = 0;
	struct rx x;
	double t0;

	zt_check(val != NULL, "out of memory");
	memset(val, 's', V);
	zt_cleanup(&d);
	start_daemon(extra);
	rx_open(&x);
	n = encode(&req, 3, (const char *[]){ "SET", "big", val }, (size_t[]){ 3, 3, V });
	expect(ask_raw(&x, req, n), "+OK", "SET of 1 MiB");
	free(req);
	n = encode(&req, 2, (const char *[]){ "GET", "big" }, NULL);
	all = malloc(n * N);
	zt_check(all != NULL, "out of memory");
	for (unsigned i = 0; i < N; i++)
		memcpy(all + i * n, req, n);
	free(req);
	zt_send_all(x.fd, all, n * N);
	free(all);
	want = (size_t)N * (V + strlen("$1048576\r\n\r\n"));
	/* About 16 MB/s: the GETs take more than two idle timeouts to drain. */
	t0 = zt_now();
	while (got < want) {
		ssize_t r = read(x.fd, buf, sizeof(buf));

		zt_check(r > 0, "a steady reader was closed after %zu of %zu bytes (%.1f s)", got,
			 want, zt_now() - t0);
		got += r;
		usleep(4000);
	}
	printf("a steady reader drained %zu bytes in %.1f s with --idle-timeout 1\n", got,
	       zt_now() - t0);
	expect(ASK(&x, "PING"), "+PONG", "the steady reader's connection after its GETs");
	rx_close(&x);
	free(val);
	zt_check(zt_stop(&d) == 0, "the daemon's exit status");
}

/* --- (d) AUTH --- */

static void auth(void)
{
	char pwfile[320];
	const char *extra[] = { "--resp-password-file", pwfile, NULL };
	const char *open_tcp[] = { "--resp", "0.0.0.0:0", NULL };
	struct rx x;
	FILE *f;
	int st;

	st = zt_start_fails(&d, open_tcp);
	zt_check(st != 0, "--resp 0.0.0.0:0 without a password started");
	zt_cleanup(&d);
	start_daemon(NULL);
	zt_stop(&d);
	snprintf(pwfile, sizeof(pwfile), "%s/pw", d.dir);
	f = fopen(pwfile, "w");
	fputs("s3cret\n", f);
	fclose(f);
	for (size_t i = 0; extra[i]; i++)
		d.args[6 + i] = extra[i];
	d.args[8] = NULL;
	zt_start(&d);
	rx_open(&x);
	expect_prefix(ASK(&x, "GET", "k"), "-NOAUTH", "GET before AUTH");
	expect_prefix(ASK(&x, "SET", "k", "v"), "-NOAUTH", "SET before AUTH");
	expect_prefix(ASK(&x, "AUTH", "wrong"), "-WRONGPASS", "a wrong password");
	expect_prefix(ASK(&x, "AUTH", "s3cre"), "-WRONGPASS", "a prefix of the password");
	expect_prefix(ASK(&x, "HELLO", "2"), "-NOAUTH", "HELLO without AUTH");
	expect_prefix(ASK(&x, "HELLO", "2", "AUTH", "default", "s3cret"), "*14", "HELLO AUTH");
	expect(ASK(&x, "SET", "k", "v"), "+OK", "SET after AUTH");
	rx_close(&x);
	rx_open(&x);
	expect(ASK(&x, "AUTH", "default", "s3cret"), "+OK", "AUTH user password");
	expect(ASK(&x, "GET", "k"), "$v", "GET after AUTH");
	rx_close(&x);
	zt_cleanup(&d);
}

/* --- (e) kill -9 amid pipelined SETs --- */

static void crash(void)
{
	const char *sync[] = { "--sync", "always", NULL };
	enum { N = 400 };
	struct pconn p = { .id = 9, .rng = 7 };
	struct kv acked[N] = { 0 };
	unsigned got = 0;

	start_daemon(sync);
	rx_open(&p.x);
	p.wants = calloc(DEPTH, sizeof(*p.wants));
	for (unsigned i = 0; i < N; i++) {
		char key[16];

		out_add(&p, "*3\r\n$3\r\nSET\r\n", 13);
		out_arg(&p, key, snprintf(key, sizeof(key), "crash%u", i));
		p.keys[0].set = true;
		p.keys[0].len = 1 + zt_rand(&p.rng) % 9000;
		p.keys[0].seed = zt_rand(&p.rng);
		acked[i] = p.keys[0];
		{
			char *buf = malloc(p.keys[0].len);

			zt_fill(buf, p.keys[0].len, p.keys[0].seed);
			out_arg(&p, buf, p.keys[0].len);
			free(buf);
		}
	}
	zt_send_all(p.x.fd, p.out, p.olen);
	/* Kill once a third is acknowledged: the rest are in flight or unread. */
	while (got < N / 3) {
		struct reply r;

		zt_check(next_reply(&p.x, &r) && r.type == R_STATUS, "SET before the crash");
		reply_free(&r);
		got++;
	}
	zt_kill(&d);
	rx_close(&p.x);
	zt_start(&d);
	rx_open(&p.x);
	for (unsigned i = 0; i < N; i++) {
		char key[16];
		struct reply r;
		char *req;
		size_t n;

		snprintf(key, sizeof(key), "crash%u", i);
		n = encode(&req, 2, (const char *[]){ "GET", key }, NULL);
		zt_send_all(p.x.fd, req, n);
		free(req);
		zt_check(next_reply(&p.x, &r), "GET after the crash");
		if (i < got)
			check_value(&r, &acked[i], key);
		else if (r.n >= 0)
			check_value(&r, &acked[i],
				    key); /* not acknowledged: all of it, or nothing */
		reply_free(&r);
	}
	printf("kill -9 after %u of %u SETs acknowledged: all of them read back\n", got, N);
	rx_close(&p.x);
	free(p.wants);
	free(p.out);
	zt_cleanup(&d);
}

int main(void)
{
	const char *limits[] = { "--sync",
				 "none",
				 "--max-value",
				 "2M",
				 "--buffer-pool",
				 "4M",
				 "--max-queued-per-connection",
				 "64K",
				 NULL };
	const char *seed_env = getenv("ZT_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);

	zt_watchdog(600, "test-resp");
	printf("seed %llu (ZT_SEED reproduces it)\n", (unsigned long long)seed);
	start_daemon(limits);
	commands();
	scan();
	printf("commands and SCAN: as expected\n");
	hostile();
	trickled(seed);
	printf("hostile input: as expected\n");
	pipeline(seed);
	zt_check(zt_stop(&d) == 0, "the daemon's exit status");
	steady_reader();
	auth();
	crash();
	return 0;
}
