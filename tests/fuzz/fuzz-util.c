#include "fuzz-util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const uint8_t fz_uuid[16] = { 0x7a, 0x61, 0x70, 0x70, 0x66, 0x75, 0x7a, 0x7a,
			      0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint64_t fz_tag(void)
{
	return le64(fz_uuid) ^ le64(fz_uuid + 8);
}

static char tmpdir[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_tmpdir(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tmpdir(void)
{
	const char *base = getenv("FUZZ_TMPDIR");

	if (tmpdir[0])
		return tmpdir;
	if (!base || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/zappend-fuzz.XXXXXX", base);
	if (!mkdtemp(tmpdir))
		fz_die("mkdtemp %s: %s", tmpdir, strerror(errno));
	atexit(rm_tmpdir);
	return tmpdir;
}

void fz_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fz_die("write: %s", strerror(errno));
		p += w;
		len -= w;
	}
}

uint64_t fz_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fz_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
