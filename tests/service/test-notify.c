/*
 * zappendd and the service manager's notification socket, with this test
 * playing systemd: it binds a datagram socket, passes it as $NOTIFY_SOCKET
 * and reads what the daemon says.
 *
 *   - READY=1 comes after STATUS= lines, and once it has come the index is
 *     rebuilt: a stat right then shows every key written before the restart;
 *   - with $WATCHDOG_USEC and $WATCHDOG_PID set to the daemon's pid, WATCHDOG=1
 *     keep-alives arrive about every WATCHDOG_USEC/2; with $WATCHDOG_PID naming
 *     another process none do;
 *   - SIGHUP: RELOADING=1, then READY=1 again;
 *   - SIGTERM: STOPPING=1, then exit status 0;
 *   - a start that fails says STATUS= and ERRNO= and never READY=1.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define NKEYS 3000

static pid_t child;

static void kill_child(void)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int bind_notify(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	zt_check(fd >= 0, "socket: %s", strerror(errno));
	zt_check(strlen(path) < sizeof(sa.sun_path), "path too long: %s", path);
	strcpy(sa.sun_path, path);
	unlink(path);
	zt_check(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", path,
		 strerror(errno));
	return fd;
}

/*
 * zappendd with the test's notify socket. watchdog_pid: "self" for the
 * daemon's own pid (set by a shell wrapper, as systemd would), a number, or
 * NULL for no watchdog.
 */
static pid_t spawn(const struct zt_daemon *d, const char *notify, const char *watchdog_pid,
		   const char *extra)
{
	const char *daemon = getenv("ZAPPENDD") ? getenv("ZAPPENDD") : "./zappendd";
	char cmd[2048];
	pid_t pid;

	snprintf(cmd, sizeof(cmd),
		 "%s exec '%s' --config /dev/null --device '%s' --socket '%s' %s 2>>'%s'",
		 !watchdog_pid			 ? ""
		 : !strcmp(watchdog_pid, "self") ? "WATCHDOG_PID=$$; export WATCHDOG_PID;"
						 : "",
		 daemon, d->dev, d->sock, extra ? extra : "", d->log);
	pid = fork();
	zt_check(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		setenv("NOTIFY_SOCKET", notify, 1);
		unsetenv("WATCHDOG_PID");
		unsetenv("WATCHDOG_USEC");
		if (watchdog_pid) {
			setenv("WATCHDOG_USEC", "200000", 1);
			if (strcmp(watchdog_pid, "self"))
				setenv("WATCHDOG_PID", watchdog_pid, 1);
		}
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	child = pid;
	return pid;
}

/* The next notification within timeout_s, as a string in buf; 0 on timeout. */
static int next_msg(int fd, char *buf, size_t len, double timeout_s)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, (int)(timeout_s * 1000)) <= 0)
		return 0;
	n = recv(fd, buf, len - 1, 0);
	zt_check(n >= 0, "recv: %s", strerror(errno));
	buf[n] = 0;
	return 1;
}

static bool has_line(const char *msg, const char *line)
{
	size_t l = strlen(line);

	for (const char *p = msg; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, line, l) && (p[l] == '\n' || p[l] == 0))
			return true;
	}
	return false;
}

/* Reads until a message with the line want comes; counts WATCHDOG=1 and STATUS= meanwhile. */
static void wait_for(int fd, const char *want, double timeout_s, int *statuses, int *pings,
		     char *last, size_t lastlen)
{
	double end = now() + timeout_s;
	char msg[4096];

	for (;;) {
		double left = end - now();

		zt_check(left > 0 && next_msg(fd, msg, sizeof(msg), left),
			 "no %s within %.0f s (last message: '%s')", want, timeout_s, last);
		snprintf(last, lastlen, "%s", msg);
		zt_check(!strstr(msg, "READY=1") || !strcmp(want, "READY=1"),
			 "READY=1 while waiting for %s", want);
		if (statuses && strstr(msg, "STATUS="))
			(*statuses)++;
		if (pings && has_line(msg, "WATCHDOG=1"))
			(*pings)++;
		if (has_line(msg, want))
			return;
	}
}

static int wait_exit(pid_t pid)
{
	int status;

	zt_check(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	child = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void fill(struct zt_daemon *d)
{
	char key[32], val[600];
	zap_client *c;

	zt_start(d);
	c = zt_connect(d);
	for (int i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "key-%06d", i);
		zt_fill(val, sizeof(val), i);
		zt_ok(zap_put(c, key, strlen(key), val, 1 + i % sizeof(val), NULL));
	}
	zap_close(c);
	zt_check(zt_stop(d) == 0, "first daemon did not stop cleanly");
}

int main(void)
{
	static const char *const args[] = { "--size", "512M", "--zone-size", "16M", NULL };
	struct zt_daemon d;
	char path[400], last[4096] = "", msg[4096];
	int fd, statuses = 0, pings = 0;
	double t0;
	pid_t pid;
	zap_client *c;

	atexit(kill_child);
	zt_init(&d, args);
	fill(&d);
	snprintf(path, sizeof(path), "%s/notify", d.dir);
	fd = bind_notify(path);

	/* 1. Readiness after recovery, watchdog, reload, stop. */
	pid = spawn(&d, path, "self", NULL);
	wait_for(fd, "READY=1", 60, &statuses, &pings, last, sizeof(last));
	zt_check(statuses >= 2, "READY=1 after %d STATUS= messages, expected opening + recovering",
		 statuses);
	zt_check(strstr(last, "STATUS=serving 3000 keys"), "READY=1 without the key count: '%s'",
		 last);
	/* Ready means ready: no retry, the socket serves and the index is complete. */
	zt_ok(zap_connect(d.sock, &c));
	zt_check(zt_stat(c, "keys") == NKEYS, "stat right after READY=1: %llu keys, expected %d",
		 (unsigned long long)zt_stat(c, "keys"), NKEYS);
	zap_close(c);

	pings = 0;
	t0 = now();
	while (now() - t0 < 1.0) {
		if (next_msg(fd, msg, sizeof(msg), 0.05) && has_line(msg, "WATCHDOG=1"))
			pings++;
	}
	/* Every 100 ms for 1 s: 10; leave room for a loaded machine. */
	zt_check(pings >= 4 && pings <= 13, "%d WATCHDOG=1 in 1 s with WATCHDOG_USEC=200000",
		 pings);

	kill(pid, SIGHUP);
	wait_for(fd, "RELOADING=1", 10, NULL, NULL, last, sizeof(last));
	zt_check(strstr(last, "MONOTONIC_USEC="), "RELOADING=1 without MONOTONIC_USEC: '%s'", last);
	wait_for(fd, "READY=1", 10, NULL, NULL, last, sizeof(last));

	kill(pid, SIGTERM);
	wait_for(fd, "STOPPING=1", 10, NULL, NULL, last, sizeof(last));
	zt_check(wait_exit(pid) == 0, "zappendd did not exit 0 after SIGTERM");

	/* 2. WATCHDOG_PID of another process: the watchdog is not ours, no pings. */
	pid = spawn(&d, path, "1", NULL);
	pings = 0;
	wait_for(fd, "READY=1", 60, NULL, &pings, last, sizeof(last));
	t0 = now();
	while (now() - t0 < 0.6) {
		if (next_msg(fd, msg, sizeof(msg), 0.05) && has_line(msg, "WATCHDOG=1"))
			pings++;
	}
	zt_check(pings == 0, "%d WATCHDOG=1 although WATCHDOG_PID named another process", pings);
	kill(pid, SIGTERM);
	wait_for(fd, "STOPPING=1", 10, NULL, NULL, last, sizeof(last));
	zt_check(wait_exit(pid) == 0, "zappendd did not exit 0 after SIGTERM");

	/* 3. A start that fails: STATUS= with the reason and ERRNO=, never READY=1. */
	pid = spawn(&d, path, NULL, "--zone-size 32M");
	zt_check(wait_exit(pid) == 3, "a geometry mismatch did not exit 3 (refused for good)");
	zt_check(next_msg(fd, msg, sizeof(msg), 1), "no notification from a failed start");
	do {
		zt_check(!has_line(msg, "READY=1"), "READY=1 from a start that failed");
		snprintf(last, sizeof(last), "%s", msg);
	} while (next_msg(fd, msg, sizeof(msg), 0.2));
	zt_check(strstr(last, "STATUS=failed: ") && strstr(last, "ERRNO="),
		 "last message of a failed start: '%s'", last);

	close(fd);
	zt_cleanup(&d);
	return 0;
}
