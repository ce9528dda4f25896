/*
 * One line per event on stderr. Under systemd (JOURNAL_STREAM set) each line
 * starts with a <N> syslog priority prefix, which journald turns into the
 * entry's priority; on a terminal it starts with the level's name.
 */
#ifndef ZAPD_LOG_H
#define ZAPD_LOG_H

#include <stdbool.h>
#include <syslog.h>

struct zlog {
	int level; /* LOG_ERR .. LOG_DEBUG: lines above it are dropped */
	bool journal;
};

void zlog_init(struct zlog *l, int level);
__attribute__((format(printf, 3, 4))) void zlog(const struct zlog *l, int prio, const char *fmt,
						...);

#define log_err(l, ...)	   zlog(l, LOG_ERR, __VA_ARGS__)
#define log_warn(l, ...)   zlog(l, LOG_WARNING, __VA_ARGS__)
#define log_notice(l, ...) zlog(l, LOG_NOTICE, __VA_ARGS__)
#define log_info(l, ...)   zlog(l, LOG_INFO, __VA_ARGS__)
#define log_debug(l, ...)  zlog(l, LOG_DEBUG, __VA_ARGS__)

#endif
