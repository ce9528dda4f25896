#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int zerr_set(struct zerr *e, int err, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return err;
}

int zerr_about(struct zerr *e, int err, const char *what)
{
	char msg[sizeof(e->msg)];

	if (!strncmp(e->msg, what, strlen(what)))
		return err;
	snprintf(msg, sizeof(msg), "%s", e->msg[0] ? e->msg : strerror(-err));
	return zerr_set(e, err, "%s: %s", what, msg);
}

int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTP";
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		const char *u = NULL;

		for (const char *c = units; *c; c++) {
			if (toupper((unsigned char)*end) == *c)
				u = c;
		}
		if (!u)
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		if (*end == 'i' && end[1] == 'B')
			end += 2;
		else if (*end == 'B')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

const char *format_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	int u = -1;

	while (v && !(v & 1023) && u < 4) {
		v >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%llu", (unsigned long long)v);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
	return buf;
}
