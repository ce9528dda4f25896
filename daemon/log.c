#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

void zlog_init(struct zlog *l, int level)
{
	l->level = level;
	l->journal = getenv("JOURNAL_STREAM") != NULL;
}

void zlog(const struct zlog *l, int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (prio > l->level)
		return;
	if (l->journal)
		n = snprintf(line, sizeof(line), "<%d>", prio);
	else
		n = snprintf(line, sizeof(line), "zappendd: %s: ", level_names[prio & 7]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line, so that lines never interleave. */
	fwrite(line, 1, n, stderr);
}
