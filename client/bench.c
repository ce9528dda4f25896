/*
 * zappend-cli bench: a load generator for zappendd.
 *
 * N client threads, each with its own connection and Q requests in flight
 * through the pipelined API (with Q = 1, the synchronous API: one request at
 * a time, as an ordinary application calls it). Every request's latency, from
 * submission to completion (CLOCK_MONOTONIC), goes into the thread's
 * log-linear histogram (HDR style: 128 linear steps per power of two, so any
 * value is known within 0.8%, from 1 ns to centuries, in 58 KiB); the
 * histograms are summed at the end, so percentiles need no sorting.
 *
 * Put values come from one buffer filled with pseudo-random bytes once, at a
 * varying offset; the hot path allocates nothing (a get's value is the
 * library's malloc, freed at once).
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { EXIT_USAGE = 2, EXIT_FAIL = 3 };

#define KEY_FMT	      "bench/%010u" /* 16 bytes, the key the index is sized for */
#define KEY_LEN	      32
#define VAL_SLACK     4096u /* put values start anywhere in the first 4 KiB of the buffer */
#define SIZE_LIMIT    (1ull << 30)
#define PRELOAD_DEPTH 64u
#define DEFAULT_SECS  10.0

static const char bench_usage_text[] =
    "Usage: " PROG " [-s SOCKET] bench [OPTIONS]\n"
    "  --clients N        client threads, each with its own connection (default 1)\n"
    "  --depth Q          requests in flight per client (default 1: the synchronous API,\n"
    "                     one request at a time; more: the pipelined API)\n"
    "  --size SIZE        value size: BYTES or MIN-MAX (uniform), with K, M or G (default 4K)\n"
    "  --keys N           key space: keys bench/0000000000 ... (default 10000)\n"
    "  --seconds S        run for S seconds (default 10), or\n"
    "  --count N          run N requests in all\n"
    "  --mix MIX          put, get, or the percentage of puts (default put)\n"
    "  --json             print the summary as one JSON object\n"
    "  --remove           delete the key space's keys afterwards (not timed)\n"
    "bench writes into the live store: keys bench/0000000000 and on, which it leaves\n"
    "there unless --remove is given. For gets, every key is first put once (not\n"
    "timed). The summary gives ops_per_s,\n"
    "mib_per_s (value bytes), latency percentiles p50_us p99_us p999_us and max_us\n"
    "(submission to completion), and errors. Exit status 0, or 3 if any request failed.\n";

/* --- latency histogram (nanoseconds) --- */

#define H_SUB_BITS 7
#define H_SUB	   (1u << H_SUB_BITS)
#define H_BUCKETS  (H_SUB + (64 - H_SUB_BITS) * H_SUB)

struct hist {
	uint64_t n, max;
	uint64_t b[H_BUCKETS];
};

static unsigned h_index(uint64_t v)
{
	unsigned e;

	if (v < H_SUB)
		return v;
	e = 63 - __builtin_clzll(v); /* v in [2^e, 2^(e+1)), e >= H_SUB_BITS */
	return H_SUB + (e - H_SUB_BITS) * H_SUB + (unsigned)((v >> (e - H_SUB_BITS)) - H_SUB);
}

/* The middle of bucket i. */
static double h_value(unsigned i)
{
	unsigned e, sub;
	double width;

	if (i < H_SUB)
		return i;
	e = (i - H_SUB) / H_SUB + H_SUB_BITS;
	sub = (i - H_SUB) % H_SUB;
	width = ldexp(1.0, e - H_SUB_BITS);
	return ldexp(1.0, e) + sub * width + (width - 1) / 2;
}

static void h_record(struct hist *h, uint64_t v)
{
	h->b[h_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static void h_add(struct hist *to, const struct hist *from)
{
	for (unsigned i = 0; i < H_BUCKETS; i++)
		to->b[i] += from->b[i];
	to->n += from->n;
	if (from->max > to->max)
		to->max = from->max;
}

/* The value at quantile q (0..1), in nanoseconds. */
static double h_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	want = (uint64_t)ceil(q * (double)h->n);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want)
			return fmin(h_value(i), (double)h->max);
	}
	return h->max;
}

/* --- the run --- */

struct bench;

struct slot {
	struct worker *w;
	uint64_t t0;
	size_t len;
	unsigned key;
	bool put;
};

struct worker {
	struct bench *b;
	unsigned id;
	zap_client *c;
	pthread_t thread;
	uint64_t rng;
	uint64_t quota, issued; /* requests this worker may start, has started */
	bool stopped;		/* a request could not even be queued */
	struct slot *slots;
	struct hist *h;
	uint64_t t_end;
	/* read by the progress line while the run goes on */
	_Atomic uint64_t done, errors, bytes;
	/* preload */
	unsigned next_key, preload_inflight;
	_Atomic uint64_t preload_errors;
	char pad[64];
};

struct bench {
	/* options */
	const char *socket;
	uint64_t clients, depth, keys, count; /* set through int_opts */
	unsigned mix;			      /* percent of puts */
	uint64_t size_min, size_max;
	double seconds;
	bool json, size_range, remove;
	/* state */
	uint8_t *buf;
	struct worker *w;
	pthread_barrier_t preloaded, go;
	atomic_bool stop, abort;
	atomic_uint finished; /* workers done */
	atomic_flag first_error;
};

static atomic_bool interrupted;

static int vmsg(int code, const char *fmt, va_list ap)
{
	fputs(PROG ": bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	return code;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(EXIT_FAIL, fmt, ap);
	va_end(ap);
	return EXIT_FAIL;
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(EXIT_USAGE, fmt, ap);
	va_end(ap);
	fputs(bench_usage_text, stderr);
	return EXIT_USAGE;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t pick_size(struct worker *w)
{
	const struct bench *b = w->b;

	if (!b->size_range)
		return b->size_min;
	return b->size_min + rnd(&w->rng) % (b->size_max - b->size_min + 1);
}

static const uint8_t *value_at(struct worker *w)
{
	return w->b->buf + (rnd(&w->rng) & (VAL_SLACK - 1));
}

static int key_name(char *key, unsigned k)
{
	return snprintf(key, KEY_LEN, KEY_FMT, k);
}

/* A request failed: count it; the first failure of the run is told at once. */
static void note_error(struct worker *w, bool put, unsigned key, int err, const char *msg)
{
	struct bench *b = w->b;
	char name[KEY_LEN];

	atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
	/* Refused, or no daemon: nothing more would get through. */
	if (err == -EACCES || err == -ECONNREFUSED)
		atomic_store(&b->stop, true);
	if (atomic_flag_test_and_set(&b->first_error))
		return;
	key_name(name, key);
	fprintf(stderr, "%s" PROG ": bench: %s %s: %s%s%s%s\n", isatty(2) ? "\r\033[K" : "",
		put ? "put" : "get", name, zap_strerror(err), msg ? " (" : "", msg ? msg : "",
		msg ? ")" : "");
}

/* The outcome of one timed request. */
static void finish(struct worker *w, struct slot *s, int err, size_t vlen, const char *msg)
{
	h_record(w->h, now_ns() - s->t0);
	if (err)
		note_error(w, s->put, s->key, err, msg);
	else
		atomic_fetch_add_explicit(&w->bytes, s->put ? s->len : vlen, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->done, 1, memory_order_relaxed);
}

/* Chooses the next request for slot s; false when the worker is done. */
static bool next_op(struct worker *w, struct slot *s)
{
	struct bench *b = w->b;

	if (w->stopped || w->issued >= w->quota ||
	    atomic_load_explicit(&b->stop, memory_order_relaxed))
		return false;
	w->issued++;
	s->key = rnd(&w->rng) % b->keys;
	s->put = b->mix == 100 || (b->mix && rnd(&w->rng) % 100 < b->mix);
	s->len = s->put ? pick_size(w) : 0;
	return true;
}

static void async_cb(zap_client *c, const struct zap_result *r, void *arg);

/* Starts the next request on slot s, if any is left. */
static void issue(struct worker *w, struct slot *s)
{
	char key[KEY_LEN];
	int klen, ret;

	if (!next_op(w, s))
		return;
	klen = key_name(key, s->key);
	s->t0 = now_ns();
	if (s->put)
		ret = zap_put_async(w->c, key, klen, value_at(w), s->len, async_cb, s);
	else
		ret = zap_get_async(w->c, key, klen, async_cb, s);
	if (ret) {
		/* Not even queued (the daemon is gone): count it and stop this client. */
		finish(w, s, ret, 0, NULL);
		w->stopped = true;
	}
}

static void async_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct slot *s = arg;

	(void)c;
	finish(s->w, s, r->err, r->vlen, r->message);
	free(r->val);
	issue(s->w, s);
}

static void run_async(struct worker *w)
{
	for (unsigned i = 0; i < w->b->depth; i++) {
		w->slots[i].w = w;
		issue(w, &w->slots[i]);
	}
	zap_wait_all(w->c);
}

static void run_sync(struct worker *w)
{
	struct slot *s = &w->slots[0];
	char key[KEY_LEN];
	void *val;
	size_t vlen;
	int klen, ret;

	s->w = w;
	while (next_op(w, s)) {
		klen = key_name(key, s->key);
		s->t0 = now_ns();
		vlen = 0;
		if (s->put) {
			ret = zap_put(w->c, key, klen, value_at(w), s->len, NULL);
		} else {
			ret = zap_get(w->c, key, klen, &val, &vlen);
			if (!ret)
				free(val);
		}
		finish(w, s, ret, vlen, NULL);
		if (ret == -ECONNREFUSED)
			break; /* the daemon is gone: no point hammering */
	}
}

/* --- preload: every key once, keys spread over the workers --- */

static void preload_next(struct worker *w);

static void preload_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct worker *w = arg;

	(void)c;
	w->preload_inflight--;
	if (r->err) {
		if (!atomic_fetch_add(&w->preload_errors, 1) &&
		    !atomic_flag_test_and_set(&w->b->first_error))
			fprintf(stderr, PROG ": bench: preload: put: %s\n", zap_strerror(r->err));
		return;
	}
	preload_next(w);
}

static void preload_next(struct worker *w)
{
	struct bench *b = w->b;
	char key[KEY_LEN];
	unsigned k;
	int ret;

	while (w->preload_inflight < PRELOAD_DEPTH && !atomic_load(&w->preload_errors)) {
		k = w->next_key;
		if (k >= b->keys)
			return;
		w->next_key += b->clients;
		ret = zap_put_async(w->c, key, key_name(key, k), value_at(w), pick_size(w),
				    preload_cb, w);
		if (ret) {
			if (!atomic_fetch_add(&w->preload_errors, 1) &&
			    !atomic_flag_test_and_set(&w->b->first_error))
				fprintf(stderr, PROG ": bench: preload: put: %s\n",
					zap_strerror(ret));
			return;
		}
		w->preload_inflight++;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;

	if (b->mix < 100) {
		w->next_key = w->id;
		preload_next(w);
		zap_wait_all(w->c);
	}
	pthread_barrier_wait(&b->preloaded);
	pthread_barrier_wait(&b->go); /* the main thread looked at the preload */
	if (!atomic_load(&b->abort)) {
		if (b->depth == 1)
			run_sync(w);
		else
			run_async(w);
	}
	w->t_end = now_ns();
	atomic_fetch_add(&b->finished, 1);
	return NULL;
}

/* --- options --- */

/* "4096", "4K", "1M", "2GiB": bytes. */
static int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (!shift && !strcmp(end, "B"))
		end++;
	if (*end || v > (SIZE_LIMIT >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_size(struct bench *b, const char *s)
{
	const char *dash = strchr(s, '-');
	char lo[64];

	if (!dash) {
		if (parse_bytes(s, &b->size_min))
			return -1;
		b->size_max = b->size_min;
		b->size_range = false;
		return 0;
	}
	if ((size_t)(dash - s) >= sizeof(lo))
		return -1;
	memcpy(lo, s, dash - s);
	lo[dash - s] = 0;
	if (parse_bytes(lo, &b->size_min) || parse_bytes(dash + 1, &b->size_max) ||
	    b->size_min > b->size_max)
		return -1;
	b->size_range = b->size_min != b->size_max;
	return 0;
}

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end || *out > max ? -1 : 0;
}

static int parse_mix(struct bench *b, const char *s)
{
	unsigned long long v;

	if (!strcmp(s, "put"))
		b->mix = 100;
	else if (!strcmp(s, "get"))
		b->mix = 0;
	else if (!parse_uint(s, 100, &v))
		b->mix = v;
	else
		return -1;
	return 0;
}

struct int_opt {
	const char *name;
	unsigned long long max;
	size_t off; /* of a uint64_t in struct bench */
};

static const struct int_opt int_opts[] = {
	{ "--clients", 1024, offsetof(struct bench, clients) },
	{ "--depth", 65536, offsetof(struct bench, depth) },
	{ "--keys", 100000000, offsetof(struct bench, keys) }, /* KEY_FMT's 8 digits */
	{ "--count", 1ull << 62, offsetof(struct bench, count) },
};

static const struct int_opt *int_option(const char *name)
{
	for (size_t i = 0; i < sizeof(int_opts) / sizeof(int_opts[0]); i++) {
		if (!strcmp(int_opts[i].name, name))
			return &int_opts[i];
	}
	return NULL;
}

/* 0, -1 (help shown: exit 0), or an exit status. */
static int parse_options(struct bench *b, int argc, char **argv)
{
	bool have_secs = false, have_count = false;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = NULL, *eq;
		const struct int_opt *lim;
		unsigned long long v;
		char name[32];

		if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
			fputs(bench_usage_text, stdout);
			return -1;
		}
		if (!strcmp(opt, "--json")) {
			b->json = true;
			continue;
		}
		if (!strcmp(opt, "--remove")) {
			b->remove = true;
			continue;
		}
		if (strncmp(opt, "--", 2))
			return usage("unexpected argument '%s'", opt);
		eq = strchr(opt, '=');
		if (eq && (size_t)(eq - opt) < sizeof(name)) {
			memcpy(name, opt, eq - opt);
			name[eq - opt] = 0;
			opt = name;
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		}
		if ((lim = int_option(opt))) {
			if (!val || parse_uint(val, lim->max, &v) || !v)
				return usage("%s: '%s' is not a number from 1 to %llu", opt,
					     val ? val : "", lim->max);
			*(uint64_t *)((char *)b + lim->off) = v;
			have_count |= !strcmp(opt, "--count");
		} else if (!strcmp(opt, "--size")) {
			if (!val || parse_size(b, val))
				return usage("--size: '%s' is not BYTES or MIN-MAX (with K, M, G; "
					     "at most 1G)",
					     val ? val : "");
		} else if (!strcmp(opt, "--seconds")) {
			char *end;

			b->seconds = val ? strtod(val, &end) : 0;
			if (!val || *end || !(b->seconds > 0) || b->seconds > 1e7)
				return usage("--seconds: '%s' is not a positive number",
					     val ? val : "");
			have_secs = true;
		} else if (!strcmp(opt, "--mix")) {
			if (!val || parse_mix(b, val))
				return usage("--mix: '%s' is not put, get or a percentage of puts",
					     val ? val : "");
		} else {
			return usage("unknown option '%s'", argv[eq ? i : i - (val ? 1 : 0)]);
		}
	}
	if (have_secs && have_count)
		return usage("--seconds and --count exclude each other");
	if (!have_secs && !have_count)
		b->seconds = DEFAULT_SECS;
	return 0;
}

/* --- output --- */

static void human_size(char *out, size_t cap, uint64_t v)
{
	if (v >= (1u << 20) && !(v % (1u << 20)))
		snprintf(out, cap, "%" PRIu64 " MiB", v >> 20);
	else if (v >= 1024 && !(v % 1024))
		snprintf(out, cap, "%" PRIu64 " KiB", v >> 10);
	else
		snprintf(out, cap, "%" PRIu64 " B", v);
}

static void totals(struct bench *b, uint64_t *done, uint64_t *errors, uint64_t *bytes)
{
	*done = *errors = *bytes = 0;
	for (unsigned i = 0; i < b->clients; i++) {
		*done += atomic_load_explicit(&b->w[i].done, memory_order_relaxed);
		*errors += atomic_load_explicit(&b->w[i].errors, memory_order_relaxed);
		*bytes += atomic_load_explicit(&b->w[i].bytes, memory_order_relaxed);
	}
}

static void progress(struct bench *b, double el, uint64_t *last_done, uint64_t *last_bytes,
		     double *last_t)
{
	uint64_t done, errors, bytes;
	double dt = el - *last_t;

	totals(b, &done, &errors, &bytes);
	fprintf(stderr,
		"\r\033[K%7.1f s %12" PRIu64 " ops %10.0f ops/s %9.1f MiB/s %8" PRIu64 " errors",
		el, done, dt > 0 ? (done - *last_done) / dt : 0.0,
		dt > 0 ? (bytes - *last_bytes) / dt / 1048576.0 : 0.0, errors);
	fflush(stderr);
	*last_done = done;
	*last_bytes = bytes;
	*last_t = el;
}

static void report(struct bench *b, const struct hist *h, double secs)
{
	uint64_t done, errors, bytes;
	double ops, mib;
	char size[64];

	totals(b, &done, &errors, &bytes);
	ops = secs > 0 ? done / secs : 0;
	mib = secs > 0 ? bytes / secs / 1048576.0 : 0;
	if (b->size_range)
		snprintf(size, sizeof(size), "\"%" PRIu64 "-%" PRIu64 "\"", b->size_min,
			 b->size_max);
	else
		snprintf(size, sizeof(size), "%" PRIu64, b->size_min);
	if (b->json) {
		printf("{\"count\": %" PRIu64 ", \"seconds\": %.3f, \"clients\": %" PRIu64
		       ", \"depth\": %" PRIu64 ", "
		       "\"size\": %s, \"size_min\": %" PRIu64 ", \"size_max\": %" PRIu64
		       ", \"keys\": %" PRIu64
		       ", \"mix\": %u, \"ops_per_s\": %.1f, \"mib_per_s\": %.2f, "
		       "\"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"max_us\": %.1f, "
		       "\"errors\": %" PRIu64 "}\n",
		       done, secs, b->clients, b->depth, size, b->size_min, b->size_max, b->keys,
		       b->mix, ops, mib, h_quantile(h, 0.5) / 1e3, h_quantile(h, 0.99) / 1e3,
		       h_quantile(h, 0.999) / 1e3, h->max / 1e3, errors);
		return;
	}
	if (b->size_range) {
		char lo[32], hi[32];

		human_size(lo, sizeof(lo), b->size_min);
		human_size(hi, sizeof(hi), b->size_max);
		snprintf(size, sizeof(size), "%s-%s", lo, hi);
	} else {
		human_size(size, sizeof(size), b->size_min);
	}
	printf("# %s, %u%% puts, %" PRIu64 " client%s x depth %" PRIu64 "%s, %" PRIu64 " keys\n",
	       size, b->mix, b->clients, b->clients == 1 ? "" : "s", b->depth,
	       b->depth == 1 ? " (synchronous API)" : "", b->keys);
	printf("count      %" PRIu64 "\n", done);
	printf("seconds    %.3f\n", secs);
	printf("ops_per_s  %.1f\n", ops);
	printf("mib_per_s  %.2f\n", mib);
	printf("p50_us     %.1f\n", h_quantile(h, 0.5) / 1e3);
	printf("p99_us     %.1f\n", h_quantile(h, 0.99) / 1e3);
	printf("p999_us    %.1f\n", h_quantile(h, 0.999) / 1e3);
	printf("max_us     %.1f\n", h->max / 1e3);
	printf("errors     %" PRIu64 "\n", errors);
}

static void on_sigint(int sig)
{
	(void)sig;
	atomic_store(&interrupted, true);
}

/* --- main --- */

static int setup(struct bench *b)
{
	uint64_t per, extra, st = 42;
	size_t blen = b->size_max + VAL_SLACK;
	int ret;

	b->buf = malloc(blen);
	b->w = calloc(b->clients, sizeof(*b->w));
	if (!b->buf || !b->w)
		return fail("out of memory");
	for (size_t i = 0; i < blen; i += 8) {
		uint64_t v = rnd(&st);

		memcpy(b->buf + i, &v, blen - i < 8 ? blen - i : 8);
	}
	per = b->count / b->clients;
	extra = b->count % b->clients;
	for (unsigned i = 0; i < b->clients; i++) {
		struct worker *w = &b->w[i];

		w->b = b;
		w->id = i;
		w->rng = 0x5eed0000u + i;
		w->quota = b->count ? per + (i < extra) : UINT64_MAX;
		w->slots = calloc(b->depth, sizeof(*w->slots));
		w->h = calloc(1, sizeof(*w->h));
		if (!w->slots || !w->h)
			return fail("out of memory");
		ret = zap_connect(b->socket, &w->c);
		if (ret)
			return fail("cannot connect to %s: %s", b->socket, zap_strerror(ret));
	}
	return 0;
}

static void count_failed_del(zap_client *c, const struct zap_result *r, void *arg)
{
	(void)c;
	if (r->err && r->err != -ENOENT)
		(*(uint64_t *)arg)++;
}

/* Deletes every key of the key space, pipelined; 0 or an exit status. */
static int remove_keys(struct bench *b)
{
	zap_client *c = b->w[0].c;
	uint64_t failed = 0;
	char key[KEY_LEN];
	int ret = 0;

	for (uint64_t i = 0; i < b->keys && !ret; i++) {
		int len = key_name(key, i);

		ret = zap_del_async(c, key, len, count_failed_del, &failed);
		if (!ret && zap_pending(c) >= PRELOAD_DEPTH)
			ret = zap_wait_all(c);
	}
	if (!ret)
		ret = zap_wait_all(c);
	if (ret)
		return fail("remove: %s", zap_strerror(ret));
	if (failed)
		return fail("remove: %" PRIu64 " deletes failed", failed);
	return 0;
}

static void cleanup(struct bench *b)
{
	for (unsigned i = 0; b->w && i < b->clients; i++) {
		zap_close(b->w[i].c);
		free(b->w[i].slots);
		free(b->w[i].h);
	}
	free(b->w);
	free(b->buf);
}

/* Waits for the workers, with a progress line on a terminal; stops them when time is up. */
static void supervise(struct bench *b, uint64_t t0, bool tty)
{
	uint64_t last_done = 0, last_bytes = 0, next_tick = t0 + 1000000000u;
	double last_t = 0;

	while (atomic_load(&b->finished) < b->clients) {
		struct timespec ts = { 0, 10000000 };
		uint64_t t = now_ns();
		double el = (t - t0) / 1e9;

		if ((b->seconds > 0 && el >= b->seconds) || atomic_load(&interrupted))
			atomic_store(&b->stop, true);
		if (tty && t >= next_tick) {
			progress(b, el, &last_done, &last_bytes, &last_t);
			next_tick += 1000000000u;
		}
		nanosleep(&ts, NULL);
	}
	if (tty && last_t > 0)
		fputs("\r\033[K", stderr);
}

int bench_main(const char *socket, int argc, char **argv)
{
	struct bench b = { .socket = socket,
			   .clients = 1,
			   .depth = 1,
			   .keys = 10000,
			   .mix = 100,
			   .size_min = 4096,
			   .size_max = 4096 };
	struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESETHAND };
	struct hist *h = NULL;
	uint64_t t0, t_end = 0, preload_errors = 0, errors = 0;
	bool tty = isatty(STDERR_FILENO);
	unsigned started = 0;
	int ret;

	atomic_init(&b.stop, false);
	atomic_init(&b.abort, false);
	atomic_init(&b.finished, 0);
	atomic_flag_clear(&b.first_error);
	ret = parse_options(&b, argc, argv);
	if (ret)
		return ret < 0 ? 0 : ret;
	ret = setup(&b);
	if (ret) {
		cleanup(&b);
		return ret;
	}
	if (b.mix < 100)
		fprintf(stderr, PROG ": bench: preloading %" PRIu64 " keys (not timed)\n", b.keys);
	pthread_barrier_init(&b.preloaded, NULL, b.clients + 1);
	pthread_barrier_init(&b.go, NULL, b.clients + 1);
	for (; started < b.clients; started++) {
		if (pthread_create(&b.w[started].thread, NULL, worker_main, &b.w[started]))
			break;
	}
	if (started < b.clients) {
		/* The barriers count on every worker: end the run the hard way. */
		fail("cannot start %" PRIu64 " client threads", b.clients);
		_exit(EXIT_FAIL);
	}
	pthread_barrier_wait(&b.preloaded);
	for (unsigned i = 0; i < b.clients; i++)
		preload_errors += atomic_load(&b.w[i].preload_errors);
	if (preload_errors)
		atomic_store(&b.abort, true);
	sigaction(SIGINT, &sa, NULL);
	t0 = now_ns();
	pthread_barrier_wait(&b.go);
	if (!preload_errors)
		supervise(&b, t0, tty);
	for (unsigned i = 0; i < b.clients; i++) {
		pthread_join(b.w[i].thread, NULL);
		if (b.w[i].t_end > t_end)
			t_end = b.w[i].t_end;
	}
	signal(SIGINT, SIG_DFL);
	pthread_barrier_destroy(&b.preloaded);
	pthread_barrier_destroy(&b.go);
	if (preload_errors) {
		cleanup(&b);
		return fail("preload: %" PRIu64 " puts failed; nothing measured", preload_errors);
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		cleanup(&b);
		return fail("out of memory");
	}
	for (unsigned i = 0; i < b.clients; i++) {
		h_add(h, b.w[i].h);
		errors += atomic_load(&b.w[i].errors);
	}
	report(&b, h, (t_end - t0) / 1e9);
	free(h);
	ret = b.remove ? remove_keys(&b) : 0;
	cleanup(&b);
	if (fflush(stdout) || ferror(stdout))
		return fail("writing to stdout: %s", strerror(errno ? errno : EIO));
	if (errors)
		return fail("%" PRIu64 " requests failed", errors);
	return ret;
}
