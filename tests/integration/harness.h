/*
 * Integration test harness: every test program starts its own zappendd on a
 * temporary directory (device image and socket inside it) and talks to it
 * with the real client library, as memcached's suite does.
 *
 * Tests exit 0 on pass, 1 on failure, 77 when they cannot run here.
 *
 * A real zoned device instead of the image file (the VM tier, tests/vm/):
 *   ZT_DEVICE=/dev/ng0n1        the daemon's --device; the first start after
 *                               zt_init adds --format (each test wants a new store)
 *   ZT_DEVICE_ARGS="--backend zbd"  more daemon arguments, split at spaces,
 *                               added to every start
 *   ZT_DEVICE_SIZE=512M ZT_DEVICE_ZONE_SIZE=8M  the device's geometry: the values
 *                               of the --size and --zone-size a test passes to
 *                               zt_init are replaced by these (a device's geometry
 *                               is its own; the argument positions stay as they were)
 *
 * Faults: zt_use_fault(d, spec) runs d's next starts as $ZAPPENDD_FAULT, the
 * daemon built with the fault-injecting device (daemon/dev_fault.h), with
 * ZAPPEND_FAULT=spec in its environment; "seed=N,delay=PCT:MAXUS,
 * flush_delay=PCT:MAXUS,append_fail=PCT,append_lie=PCT,append_short=PCT,
 * read_fail=PCT,read_fail_at=ADDR:LEN,unwritten_read_fail=1,max_append=BYTES,
 * bad_addr_at=N,append_faults_for=N" (README.md, "Tests", says what each does).
 */
#ifndef ZAP_HARNESS_H
#define ZAP_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zappend/client.h>

#define ZT_SKIP 77

struct zt_daemon {
	char dir[256];
	char dev[300];
	char sock[300];
	char log[300];
	pid_t pid;
	const char *args[32]; /* extra daemon arguments, NULL-terminated */
	bool format_next;     /* ZT_DEVICE: the next start formats the device */
	const char *fault;    /* ZAPPEND_FAULT for the next starts, NULL for none */
};

/* A fresh temporary directory for d; args: extra zappendd arguments (NULL-terminated). */
void zt_init(struct zt_daemon *d, const char *const *args);
/* Starts zappendd and waits until it answers a stat. Fails the test if it cannot. */
void zt_start(struct zt_daemon *d);
/* Starts zappendd expecting it to refuse: returns its exit status. */
int zt_start_fails(struct zt_daemon *d, const char *const *more_args);
/* SIGTERM and wait: the daemon's exit status. */
int zt_stop(struct zt_daemon *d);
/* SIGKILL and wait: a crash. */
void zt_kill(struct zt_daemon *d);
/* Stops a running daemon if any and removes the directory. */
void zt_cleanup(struct zt_daemon *d);
/*
 * The next starts of d run under faults (spec NULL: without). The test exits
 * 77 (skip) when $ZAPPENDD_FAULT does not name the fault-injecting daemon.
 */
void zt_use_fault(struct zt_daemon *d, const char *spec);
/* The size of d's log now: zt_log_since(d, at) is what came after. */
long zt_log_size(const struct zt_daemon *d);
/* The log from byte `at` on, malloc()ed and NUL-terminated: free() it. */
char *zt_log_since(const struct zt_daemon *d, long at);

zap_client *zt_connect(const struct zt_daemon *d);
/* One numeric stat of the running daemon. */
uint64_t zt_stat(zap_client *c, const char *name);

/* A bare connection to the daemon's socket, for tests that speak raw frames. */
int zt_raw_connect(const struct zt_daemon *d);
/* Sends all of buf or fails the test. */
void zt_send_all(int fd, const void *buf, size_t len);
/* A "Vm...:" field of the daemon's /proc/PID/status, in KiB. */
long zt_proc_kib(const struct zt_daemon *d, const char *field);

double zt_now(void); /* seconds, monotonic */
void zt_sleep_ms(long ms);

/*
 * A test that hangs fails instead: after `seconds` (re-armed by each call)
 * SIGALRM prints "FAIL ... what", kills the running daemon and exits 1.
 */
void zt_watchdog(unsigned seconds, const char *what);
/*
 * A put through the asynchronous API that gives up after `seconds`: its
 * answer, or -ETIMEDOUT. After -ETIMEDOUT the put is still pending: close c
 * before val is freed or changed.
 */
int zt_put_timed(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen,
		 double seconds);
/* The same for a delete. */
int zt_del_timed(zap_client *c, const void *key, size_t klen, double seconds);

/* Deterministic bytes: the value a test wrote can be re-derived instead of kept. */
uint64_t zt_rand(uint64_t *state);
void zt_fill(void *buf, size_t len, uint64_t seed);

#define zt_fail(...) zt_fail_at(__FILE__, __LINE__, __VA_ARGS__)
__attribute__((noreturn, format(printf, 3, 4))) void zt_fail_at(const char *file, int line,
								const char *fmt, ...);

#define zt_check(cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond))                                                                       \
			zt_fail(__VA_ARGS__);                                                      \
	} while (0)

/* zt_ok(expr): expr returned 0, or the test fails with the error. */
#define zt_ok(expr)                                                                                \
	do {                                                                                       \
		int zt_ret_ = (expr);                                                              \
		if (zt_ret_)                                                                       \
			zt_fail("%s: %s", #expr, zap_strerror(zt_ret_));                           \
	} while (0)

#endif
