/*
 * The service manager's side of zappendd: readiness, status and watchdog
 * notifications ($NOTIFY_SOCKET) and the listening socket systemd passes
 * ($LISTEN_PID, $LISTEN_FDS, fd 3).
 *
 * Both are small, stable protocols (sd_notify(3), sd_listen_fds(3)) spoken
 * here by hand, so that every build has them, with or without libsystemd.
 * Outside systemd every call is a no-op.
 */
#ifndef ZAPD_SERVICE_H
#define ZAPD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"
#include "util.h"

struct svc {
	int fd; /* datagram socket towards $NOTIFY_SOCKET, -1: not under a service manager */
	struct sockaddr_un addr;
	socklen_t addrlen;
	uint64_t watchdog_usec; /* $WATCHDOG_USEC when it is meant for this process, else 0 */
	bool send_failed;	/* a failure to notify is logged once */
	const struct zlog *log;
};

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. */
void svc_init(struct svc *s, const struct zlog *log);
void svc_done(struct svc *s);

/*
 * Sends one notification, newline-separated "KEY=value" assignments such as
 * "READY=1\nSTATUS=serving". 0 when sent or when there is nobody to send it
 * to, else -errno (and a warning, the first time).
 */
__attribute__((format(printf, 2, 3))) int svc_notify(struct svc *s, const char *fmt, ...);

/*
 * The listening socket systemd passed to this process, if any: 0 and *fd -1
 * when none was passed; 1 with *fd the socket (made non-blocking and
 * close-on-exec) and its path in path (empty when it has none; "@name" for
 * an abstract one); or -errno with err set when what was passed is not one
 * listening Unix stream socket. Clears $LISTEN_PID, $LISTEN_FDS and
 * $LISTEN_FDNAMES either way.
 */
int svc_listen_fd(int *fd, char *path, size_t pathlen, struct zerr *err);

#endif
