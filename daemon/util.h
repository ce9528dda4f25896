/* Small helpers every daemon module may use. */
#ifndef ZAPD_UTIL_H
#define ZAPD_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ARRAY_SIZE(a)			((sizeof(a) / sizeof((a)[0])))
#define ALIGN_UP(x, a)			(((x) + (a)-1) / (a) * (a))
#define DIV_UP(x, a)			(((x) + (a)-1) / (a))
#define MIN(a, b)			((a) < (b) ? (a) : (b))
#define MAX(a, b)			((a) > (b) ? (a) : (b))

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, v);
	put_le16(p + 2, v >> 16);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, v);
	put_le32(p + 4, v >> 32);
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return p[0] | (uint16_t)p[1] << 8;
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/*
 * A one-line reason for a failure the user must read, next to the -errno
 * the function returns. Library code fills it; only main and server log it.
 */
struct zerr {
	char msg[256];
};

__attribute__((format(printf, 3, 4))) int zerr_set(struct zerr *e, int err, const char *fmt, ...);
/* "what: " before e's reason, unless it names what already; returns err. */
int zerr_about(struct zerr *e, int err, const char *what);

/* "64M", "1G", "4096": bytes, or -EINVAL. */
int parse_size(const char *s, uint64_t *out);
/* Formats bytes as the shortest exact "64M" / "1G" / "4096" into buf. */
const char *format_size(uint64_t v, char *buf, size_t len);

#endif
