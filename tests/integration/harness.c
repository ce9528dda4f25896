#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The one daemon a failing test must not leave behind. */
static struct zt_daemon *running;

void zt_fail_at(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (running) {
		char cmd[400];

		fprintf(stderr, "--- daemon log (%s) ---\n", running->log);
		snprintf(cmd, sizeof(cmd), "tail -n 40 '%s' >&2", running->log);
		if (system(cmd) < 0)
			perror("system");
		kill(running->pid, SIGKILL);
		waitpid(running->pid, NULL, 0);
	}
	exit(1);
}

static const char *daemon_path(const struct zt_daemon *d)
{
	const char *p = getenv(d->fault ? "ZAPPENDD_FAULT" : "ZAPPENDD");

	return p ? p : d->fault ? "./zappendd-fault" : "./zappendd";
}

/*
 * The environment with ZAPPEND_FAULT=spec in place of any it had, built
 * before the fork: a child of a threaded test must not allocate.
 */
static char **fault_env(const char *spec, char **var)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	*var = malloc(strlen(spec) + sizeof("ZAPPEND_FAULT="));
	zt_check(env && *var, "out of memory");
	sprintf(*var, "ZAPPEND_FAULT=%s", spec);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], "ZAPPEND_FAULT=", 14))
			env[k++] = environ[i];
	}
	env[k++] = *var;
	env[k] = NULL;
	return env;
}

void zt_use_fault(struct zt_daemon *d, const char *spec)
{
	const char *bin = getenv("ZAPPENDD_FAULT");

	if (spec && (!bin || !*bin)) {
		fprintf(stderr, "SKIP: $ZAPPENDD_FAULT does not name zappendd-fault\n");
		zt_cleanup(d);
		exit(ZT_SKIP);
	}
	d->fault = spec;
}

long zt_log_size(const struct zt_daemon *d)
{
	struct stat st;

	return stat(d->log, &st) < 0 ? 0 : (long)st.st_size;
}

char *zt_log_since(const struct zt_daemon *d, long at)
{
	FILE *f = fopen(d->log, "r");
	long end;
	char *buf;
	size_t n = 0;

	zt_check(f, "%s: %s", d->log, strerror(errno));
	fseek(f, 0, SEEK_END);
	end = ftell(f);
	at = at < end ? at : end;
	buf = malloc(end - at + 1);
	zt_check(buf, "out of memory");
	fseek(f, at, SEEK_SET);
	n = fread(buf, 1, end - at, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

void zt_init(struct zt_daemon *d, const char *const *args)
{
	const char *tmp = getenv("TMPDIR");
	size_t n = 0;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s/zappend-test.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(d->dir))
		zt_fail("mkdtemp %s: %s", d->dir, strerror(errno));
	snprintf(d->dev, sizeof(d->dev), "%s/zones.img", d->dir);
	if (getenv("ZT_DEVICE") && *getenv("ZT_DEVICE")) {
		snprintf(d->dev, sizeof(d->dev), "%s", getenv("ZT_DEVICE"));
		d->format_next = true;
	}
	snprintf(d->sock, sizeof(d->sock), "%s/zappend.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/zappendd.log", d->dir);
	for (; args && args[n] && n + 1 < sizeof(d->args) / sizeof(d->args[0]); n++) {
		d->args[n] = args[n];
		if (n && !strcmp(args[n - 1], "--size") && getenv("ZT_DEVICE_SIZE"))
			d->args[n] = getenv("ZT_DEVICE_SIZE");
		if (n && !strcmp(args[n - 1], "--zone-size") && getenv("ZT_DEVICE_ZONE_SIZE"))
			d->args[n] = getenv("ZT_DEVICE_ZONE_SIZE");
	}
	d->args[n] = NULL;
}

static pid_t spawn(struct zt_daemon *d, const char *const *more)
{
	const char *argv[64] = { daemon_path(d), "--config", "/dev/null", "--device",
				 d->dev,	 "--socket", d->sock };
	char **envp = environ, *var = NULL;
	static char devargs[256];
	const char *env = getenv("ZT_DEVICE_ARGS");
	size_t n = 7;
	pid_t pid;
	int fd;

	for (size_t i = 0; d->args[i]; i++)
		argv[n++] = d->args[i];
	if (env && *env) {
		snprintf(devargs, sizeof(devargs), "%s", env);
		for (char *w = strtok(devargs, " "); w && n < 48; w = strtok(NULL, " "))
			argv[n++] = w;
	}
	if (d->format_next) {
		argv[n++] = "--format";
		d->format_next = false;
	}
	for (size_t i = 0; more && more[i]; i++)
		argv[n++] = more[i];
	argv[n] = NULL;
	if (d->fault)
		envp = fault_env(d->fault, &var);
	pid = fork();
	if (pid < 0)
		zt_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execve(argv[0], (char *const *)argv, envp);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (envp != environ) {
		free(envp);
		free(var);
	}
	return pid;
}

void zt_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void zt_start(struct zt_daemon *d)
{
	int status;

	d->pid = spawn(d, NULL);
	running = d;
	/* Ready once a stat succeeds, as DESIGN.md promises. Sanitizer builds start slowly. */
	for (int i = 0; i < 6000; i++) {
		zap_client *c;

		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			running = NULL;
			zt_fail("zappendd exited during start-up (status %d); log: %s", status,
				d->log);
		}
		if (zap_connect(d->sock, &c) == 0) {
			struct zap_stat_item *it;
			size_t n;
			int ret = zap_stat(c, &it, &n);

			zap_close(c);
			if (ret == 0) {
				zap_stat_free(it, n);
				return;
			}
		}
		zt_sleep_ms(10);
	}
	zt_fail("zappendd did not become ready within 60 s");
}

int zt_start_fails(struct zt_daemon *d, const char *const *more_args)
{
	int status;
	pid_t pid = spawn(d, more_args);

	if (waitpid(pid, &status, 0) != pid)
		zt_fail("waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int zt_stop(struct zt_daemon *d)
{
	int status;

	if (!d->pid)
		return 0;
	kill(d->pid, SIGTERM);
	if (waitpid(d->pid, &status, 0) != d->pid)
		zt_fail("waitpid: %s", strerror(errno));
	d->pid = 0;
	running = NULL;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void zt_kill(struct zt_daemon *d)
{
	if (!d->pid)
		return;
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
	running = NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void zt_cleanup(struct zt_daemon *d)
{
	zt_kill(d);
	if (d->dir[0] && !getenv("ZT_KEEP"))
		nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

zap_client *zt_connect(const struct zt_daemon *d)
{
	zap_client *c;

	zt_ok(zap_connect(d->sock, &c));
	return c;
}

uint64_t zt_stat(zap_client *c, const char *name)
{
	struct zap_stat_item *it;
	size_t n;
	uint64_t v = 0;
	bool found = false;

	zt_ok(zap_stat(c, &it, &n));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(it[i].name, name))
			continue;
		found = true;
		v = it[i].type == ZAP_STAT_DOUBLE ? (uint64_t)it[i].d : it[i].u;
	}
	zap_stat_free(it, n);
	zt_check(found, "stat %s missing", name);
	return v;
}

uint64_t zt_rand(uint64_t *state)
{
	/* splitmix64 */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void zt_fill(void *buf, size_t len, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t st = seed, v = 0;

	for (size_t i = 0; i < len; i++) {
		if (!(i & 7))
			v = zt_rand(&st);
		p[i] = v >> (8 * (i & 7));
	}
}

double zt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int zt_raw_connect(const struct zt_daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	zt_check(strlen(d->sock) < sizeof(sa.sun_path), "socket path too long: %s", d->sock);
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		zt_fail("connect %s: %s", d->sock, strerror(errno));
	return fd;
}

void zt_send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			zt_fail("send: %s", strerror(errno));
		p += w;
		len -= w;
	}
}

long zt_proc_kib(const struct zt_daemon *d, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
	f = fopen(path, "r");
	zt_check(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, strlen(field)))
			v = atol(line + strlen(field) + 1);
	}
	fclose(f);
	return v;
}

static char watchdog_what[256];

/* Async-signal-safe: the main thread may be stuck anywhere, even in malloc. */
static void watchdog_fired(int sig)
{
	char buf[4096];
	const char *msg = "FAIL: watchdog: no progress within the time allowed: ";
	ssize_t n;
	int fd;

	(void)sig;
	if (write(2, msg, strlen(msg)) < 0 || write(2, watchdog_what, strlen(watchdog_what)) < 0 ||
	    write(2, "\n", 1) < 0)
		_exit(1);
	if (running) {
		kill(running->pid, SIGKILL);
		fd = open(running->log, O_RDONLY);
		if (fd >= 0) {
			if (lseek(fd, -(off_t)sizeof(buf), SEEK_END) < 0)
				lseek(fd, 0, SEEK_SET);
			n = read(fd, buf, sizeof(buf));
			msg = "--- the daemon log, its last 4 KiB ---\n";
			if (n > 0 && write(2, msg, strlen(msg)) >= 0 && write(2, buf, n) < 0)
				_exit(1);
			close(fd);
		}
	}
	_exit(1);
}

void zt_watchdog(unsigned seconds, const char *what)
{
	/* A copy: the caller's may be gone when the alarm comes. */
	snprintf(watchdog_what, sizeof(watchdog_what), "%s", what);
	signal(SIGALRM, watchdog_fired);
	alarm(seconds);
}

struct timed_op {
	bool done, abandoned;
	int err;
};

static void timed_cb(zap_client *c, const struct zap_result *r, void *arg)
{
	struct timed_op *t = arg;

	(void)c;
	if (t->abandoned) {
		free(t);
		return;
	}
	t->done = true;
	t->err = r->err;
}

/* Drives c until t's request is answered or the time is up. */
static int wait_timed(zap_client *c, struct timed_op *t, double seconds)
{
	double until = zt_now() + seconds;
	int ret;

	while (!t->done) {
		struct pollfd pfd = { .fd = zap_fd(c), .events = POLLIN };

		if (zt_now() > until) {
			/* The callback frees it, when the request ends or the client closes. */
			t->abandoned = true;
			return -ETIMEDOUT;
		}
		if (zap_want_write(c))
			pfd.events |= POLLOUT;
		if (pfd.fd >= 0 && poll(&pfd, 1, 50) < 0 && errno != EINTR)
			zt_fail("poll: %s", strerror(errno));
		zap_process(c);
	}
	ret = t->err;
	free(t);
	return ret;
}

int zt_put_timed(zap_client *c, const void *key, size_t klen, const void *val, size_t vlen,
		 double seconds)
{
	struct timed_op *t = calloc(1, sizeof(*t));
	int ret;

	zt_check(t, "out of memory");
	ret = zap_put_async(c, key, klen, val, vlen, timed_cb, t);
	if (ret) {
		free(t);
		return ret;
	}
	return wait_timed(c, t, seconds);
}

int zt_del_timed(zap_client *c, const void *key, size_t klen, double seconds)
{
	struct timed_op *t = calloc(1, sizeof(*t));
	int ret;

	zt_check(t, "out of memory");
	ret = zap_del_async(c, key, klen, timed_cb, t);
	if (ret) {
		free(t);
		return ret;
	}
	return wait_timed(c, t, seconds);
}
