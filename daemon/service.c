#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3

/* A decimal number that fills the whole string, or -1. */
static long long env_number(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long long n;

	if (!v || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end)
		return -1;
	return n;
}

void svc_init(struct svc *s, const struct zlog *log)
{
	const char *path = getenv("NOTIFY_SOCKET");
	long long usec, pid;
	size_t len;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->log = log;

	/*
	 * Like sd_watchdog_enabled(): $WATCHDOG_USEC, unless $WATCHDOG_PID says
	 * it is meant for another process (a parent that did not clear it).
	 */
	usec = env_number("WATCHDOG_USEC");
	pid = env_number("WATCHDOG_PID");
	if (usec > 0 && (!getenv("WATCHDOG_PID") || pid == (long long)getpid()))
		s->watchdog_usec = usec;

	if (!path || !*path)
		return;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(s->addr.sun_path)) {
		/* vsock: and other transports of newer managers: not spoken here. */
		log_warn(log,
			 "NOTIFY_SOCKET=%s: not a Unix socket path; not notifying the service "
			 "manager",
			 path);
		s->watchdog_usec = 0;
		return;
	}
	s->addr.sun_family = AF_UNIX;
	memcpy(s->addr.sun_path, path, len);
	if (path[0] == '@')
		s->addr.sun_path[0] = 0; /* abstract namespace */
	s->addrlen = offsetof(struct sockaddr_un, sun_path) + len;
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		log_warn(log, "cannot notify the service manager: socket: %s", strerror(errno));
		s->watchdog_usec = 0;
	}
}

void svc_done(struct svc *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

int svc_notify(struct svc *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (s->fd < 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	/* The manager sees our credentials through its SO_PASSCRED: nothing to attach. */
	if (sendto(s->fd, msg, n, MSG_NOSIGNAL, (struct sockaddr *)&s->addr, s->addrlen) < 0) {
		int err = errno;

		if (!s->send_failed)
			log_warn(s->log, "cannot notify the service manager on %s: %s",
				 getenv("NOTIFY_SOCKET") ? getenv("NOTIFY_SOCKET") : "?",
				 strerror(err));
		s->send_failed = true;
		return -err;
	}
	return 0;
}

static int check_listener(int fd, char *path, size_t pathlen, struct zerr *err)
{
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);
	int type = 0, listening = 0, flags;
	socklen_t olen = sizeof(int);
	size_t n;

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0)
		return zerr_set(err, -errno, "the socket passed by systemd (fd %d): %s", fd,
				strerror(errno));
	if (sa.sun_family != AF_UNIX || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &olen) < 0 ||
	    type != SOCK_STREAM)
		return zerr_set(err, -EINVAL,
				"the socket passed by systemd (fd %d) is not a Unix stream socket: "
				"use ListenStream=/path in zappendd.socket",
				fd);
	olen = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) < 0 || !listening)
		return zerr_set(err, -EINVAL,
				"the socket passed by systemd (fd %d) is not listening (Accept=yes "
				"is not supported)",
				fd);
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return zerr_set(err, -errno, "the socket passed by systemd (fd %d): %s", fd,
				strerror(errno));
	n = salen > offsetof(struct sockaddr_un, sun_path)
		? salen - offsetof(struct sockaddr_un, sun_path)
		: 0;
	if (n && sa.sun_path[0] == 0) {
		/* abstract: "@name", as ss(8) and systemd write it */
		snprintf(path, pathlen, "@%.*s", (int)(n - 1), sa.sun_path + 1);
	} else {
		snprintf(path, pathlen, "%.*s", (int)strnlen(sa.sun_path, n), sa.sun_path);
	}
	return 0;
}

int svc_listen_fd(int *fd, char *path, size_t pathlen, struct zerr *err)
{
	long long pid = env_number("LISTEN_PID");
	long long nfds = env_number("LISTEN_FDS");
	int ret;

	*fd = -1;
	if (pathlen)
		path[0] = 0;
	/* Not for another process (a parent that did not clear them), and never for children. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (pid != (long long)getpid() || nfds <= 0)
		return 0;
	for (long long i = 0; i < nfds && i < 1024; i++)
		fcntl(SD_LISTEN_FDS_START + (int)i, F_SETFD, FD_CLOEXEC);
	if (nfds != 1)
		return zerr_set(err, -EINVAL,
				"systemd passed %lld sockets; zappendd serves exactly one "
				"(one ListenStream= in zappendd.socket)",
				nfds);
	ret = check_listener(SD_LISTEN_FDS_START, path, pathlen, err);
	if (ret)
		return ret;
	*fd = SD_LISTEN_FDS_START;
	return 1;
}
