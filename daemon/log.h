/*
 * One line per event on stderr, written with one write(2) so that lines never
 * interleave. When stderr is the journal (systemd sets $JOURNAL_STREAM to its
 * device:inode) each line starts with a <N> syslog priority prefix, which
 * journald turns into the entry's priority; otherwise it starts with
 * "zappendd: LEVEL: ", and, in a --log-file, with a timestamp before that.
 */
#ifndef ZAPD_LOG_H
#define ZAPD_LOG_H

#include <stdbool.h>
#include <syslog.h>

struct zlog {
	int level;    /* LOG_ERR .. LOG_DEBUG: lines above it are dropped */
	bool journal; /* stderr is the journal: <N> prefixes */
	bool file;    /* stderr is a --log-file: timestamps */
};

void zlog_init(struct zlog *l, int level);
/*
 * Points stderr at path (appending, created 0640 if absent), at start and
 * again on SIGHUP after the file was rotated. 0 or -errno; stderr is
 * unchanged on failure.
 */
int zlog_open_file(struct zlog *l, const char *path);
/* "err", "warning", "notice", "info", "debug" (and "error", "warn"): the level, or -1. */
int zlog_parse_level(const char *name);
const char *zlog_level_name(int level);

__attribute__((format(printf, 3, 4))) void zlog(const struct zlog *l, int prio, const char *fmt,
						...);

#define log_err(l, ...)	   zlog(l, LOG_ERR, __VA_ARGS__)
#define log_warn(l, ...)   zlog(l, LOG_WARNING, __VA_ARGS__)
#define log_notice(l, ...) zlog(l, LOG_NOTICE, __VA_ARGS__)
#define log_info(l, ...)   zlog(l, LOG_INFO, __VA_ARGS__)
#define log_debug(l, ...)  zlog(l, LOG_DEBUG, __VA_ARGS__)

#endif
