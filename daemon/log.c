#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

/* $JOURNAL_STREAM names the journal's stream as device:inode; is stderr still it? */
static bool stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!v || sscanf(v, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void zlog_init(struct zlog *l, int level)
{
	l->level = level;
	l->journal = stderr_is_journal();
	l->file = false;
}

int zlog_open_file(struct zlog *l, const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

	if (fd < 0)
		return -errno;
	if (fd != STDERR_FILENO) {
		if (dup2(fd, STDERR_FILENO) < 0) {
			int err = errno;

			close(fd);
			return -err;
		}
		close(fd);
	}
	l->journal = false;
	l->file = true;
	return 0;
}

int zlog_parse_level(const char *name)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "err", LOG_ERR },	 { "error", LOG_ERR },	   { "warning", LOG_WARNING },
		{ "warn", LOG_WARNING }, { "notice", LOG_NOTICE }, { "info", LOG_INFO },
		{ "debug", LOG_DEBUG },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(name, names[i].name))
			return names[i].level;
	}
	return -1;
}

const char *zlog_level_name(int level)
{
	return level_names[level & 7];
}

void zlog(const struct zlog *l, int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n = 0;

	if (prio > l->level)
		return;
	if (l->journal) {
		n = snprintf(line, sizeof(line), "<%d>", prio);
	} else {
		if (l->file) {
			struct timespec ts;
			struct tm tm;

			clock_gettime(CLOCK_REALTIME, &ts);
			localtime_r(&ts.tv_sec, &tm);
			n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
			n += snprintf(line + n, sizeof(line) - n, ".%03ld", ts.tv_nsec / 1000000);
			n += strftime(line + n, sizeof(line) - n, "%z ", &tm);
		}
		n += snprintf(line + n, sizeof(line) - n, "zappendd: %s: ", level_names[prio & 7]);
	}
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* A message is one line, whatever it quotes. */
	for (int i = 0; i < n; i++) {
		if (line[i] == '\n')
			line[i] = ' ';
	}
	line[n++] = '\n';
	/* One write per line, so that lines never interleave. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to say it. */
	}
}
