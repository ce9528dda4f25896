/*
 * fuzz-client: the client library's response parser, on bytes from an
 * untrusted daemon. Per input, a fake daemon accepts the client's connection
 * on a temporary socket, writes the input (less its first byte) as its whole
 * answer, and shuts its side; the socket path is gone by then, so a client
 * that reconnects is refused instead of waiting. The first byte chooses what
 * the client asks: a get, a listing, stats, zones, pipelined asynchronous
 * requests (waited for with zap_wait_all, or driven by a poll() loop through
 * zap_fd/zap_process), synchronous put and delete, or all of them in turn.
 * Request ids are 1, 2, 3, ... in that order, so inputs can answer them.
 *
 * Every call must return 0 or a negative errno, every asynchronous callback
 * run exactly once, and nothing may leak or hang.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zappend/client.h>

#include "fuzz-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* A daemon may announce any value length: the client's malloc of it may fail, not abort. */
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

#define NASYNC 8

static const uint8_t value[64] = "a value of sixty-four bytes, which the fake daemon never reads";

struct tally {
	unsigned calls[3 * NASYNC];
};

static void check_err(int err, const char *what)
{
	/* 0 or a negative errno; nothing else may come out of the library. */
	if (err > 0 || err < -4095)
		fz_die("%s returned %d", what, err);
}

static void on_result(zap_client *c, const struct zap_result *r, void *arg)
{
	unsigned *calls = arg;

	(*calls)++;
	check_err(r->err, "a callback's result");
	if (r->op != ZAP_OP_PUT && r->op != ZAP_OP_GET && r->op != ZAP_OP_DEL)
		fz_die("a callback got op %d", r->op);
	if (r->op == ZAP_OP_GET && !r->err && !r->val)
		fz_die("a get succeeded without a value");
	if (r->op != ZAP_OP_GET && r->val)
		fz_die("a %s came with a value", r->op == ZAP_OP_PUT ? "put" : "delete");
	free(r->val);
}

static void do_get(zap_client *c)
{
	void *val = NULL;
	size_t len = 0;
	int ret = zap_get(c, "key", 3, &val, &len);

	check_err(ret, "zap_get");
	if (!ret && !val)
		fz_die("zap_get succeeded without a value");
	if (ret && val)
		fz_die("zap_get failed (%d) but left a value", ret);
	free(val);
}

static int count_key(const void *key, size_t klen, void *arg)
{
	(*(size_t *)arg)++;
	if (klen && !key)
		fz_die("zap_list handed a NULL key of %zu bytes", klen);
	return 0;
}

static void do_list(zap_client *c)
{
	size_t n = 0;

	check_err(zap_list(c, "k", 1, count_key, &n), "zap_list");
}

static void do_stat(zap_client *c)
{
	struct zap_stat_item *it = NULL;
	size_t n = 0;
	int ret = zap_stat(c, &it, &n);

	check_err(ret, "zap_stat");
	for (size_t i = 0; !ret && i < n; i++) {
		if (!it[i].name || (it[i].type == ZAP_STAT_STRING && !it[i].s))
			fz_die("zap_stat: item %zu without its strings", i);
	}
	zap_stat_free(it, n);
}

static void do_zones(zap_client *c)
{
	struct zap_zone *z = NULL;
	size_t n = 0;
	int ret = zap_zones(c, &z, &n);

	check_err(ret, "zap_zones");
	for (size_t i = 0; !ret && i < n; i++) {
		if (strnlen(z[i].state, sizeof(z[i].state)) == sizeof(z[i].state))
			fz_die("zap_zones: zone %zu's state is not terminated", i);
	}
	free(z);
}

/* Queues gets, puts and deletes; returns how many were queued (their callbacks must run). */
static unsigned queue_async(zap_client *c, struct tally *t)
{
	unsigned queued = 0;

	for (unsigned i = 0; i < NASYNC; i++) {
		char key[16];
		int len = snprintf(key, sizeof(key), "k%u", i), ret;

		switch (i % 4) {
		case 0:
		case 1:
			ret = zap_get_async(c, key, len, on_result, &t->calls[i]);
			break;
		case 2:
			ret = zap_put_async(c, key, len, value, sizeof(value), on_result,
					    &t->calls[i]);
			break;
		default:
			ret = zap_del_async(c, key, len, on_result, &t->calls[i]);
			break;
		}
		check_err(ret, "an asynchronous call");
		if (!ret)
			queued |= 1u << i;
	}
	return queued;
}

static void check_calls(const struct tally *t, unsigned queued)
{
	for (unsigned i = 0; i < NASYNC; i++) {
		unsigned want = queued >> i & 1;

		if (t->calls[i] != want)
			fz_die("request %u: its callback ran %u times, not %u", i, t->calls[i],
			       want);
	}
}

static void do_async_wait(zap_client *c)
{
	struct tally t = { { 0 } };
	unsigned queued = queue_async(c, &t);

	check_err(zap_wait_all(c), "zap_wait_all");
	check_calls(&t, queued);
	if (zap_pending(c))
		fz_die("zap_wait_all returned with %u requests pending", zap_pending(c));
}

static void do_async_poll(zap_client *c)
{
	struct tally t = { { 0 } };
	unsigned queued = queue_async(c, &t);
	uint64_t until = fz_now_ms() + 10000;

	while (zap_pending(c)) {
		struct pollfd pfd = { .fd = zap_fd(c), .events = POLLIN };
		int n;

		if (fz_now_ms() > until)
			fz_die("hang: %u requests pending after 10 s", zap_pending(c));
		if (pfd.fd >= 0) {
			if (zap_want_write(c))
				pfd.events |= POLLOUT;
			if (poll(&pfd, 1, 1000) == 0)
				continue;
		}
		n = zap_process(c);
		check_err(n < 0 ? n : 0, "zap_process");
	}
	check_calls(&t, queued);
}

static void do_put_del(zap_client *c)
{
	struct zap_put_info info;

	check_err(zap_put(c, "key", 3, value, sizeof(value), &info), "zap_put");
	check_err(zap_del(c, "key", 3), "zap_del");
}

static void (*const modes[])(zap_client *c) = {
	do_get, do_list, do_stat, do_zones, do_async_wait, do_async_poll, do_put_del,
};

#define NMODES (sizeof(modes) / sizeof(modes[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[300];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, sfd, buf = 8 << 20;
	unsigned mode;
	zap_client *c;

	if (size < 1)
		return 0;
	mode = data[0] % (NMODES + 1);
	data++;
	size--;
	if (!path[0])
		snprintf(path, sizeof(path), "%s/daemon.sock", fz_tmpdir());
	strcpy(sa.sun_path, path);
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
		fz_die("listen on %s: %s", path, strerror(errno));
	if (zap_connect(path, &c))
		fz_die("zap_connect %s failed", path);
	sfd = accept(lfd, NULL, NULL);
	if (sfd < 0)
		fz_die("accept: %s", strerror(errno));
	close(lfd);
	unlink(path);
	/* The whole answer waits in the socket before the client reads: no timing involved. */
	if (setsockopt(sfd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0)
		setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	/* (libFuzzer's -max_len keeps inputs far below the buffer; a longer one is cut.) */
	while (size) {
		ssize_t w = send(sfd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w <= 0)
			break;
		data += w;
		size -= w;
	}
	shutdown(sfd, SHUT_WR);
	if (mode < NMODES) {
		modes[mode](c);
	} else {
		for (unsigned i = 0; i < NMODES; i++)
			modes[i](c);
	}
	zap_close(c);
	close(sfd);
	return 0;
}
