/* Helpers shared by the fuzz targets and the seed generator. */
#ifndef ZAP_FUZZ_UTIL_H
#define ZAP_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * The uuid of the store every recovery input and record seed belongs to, so
 * that seeds made by a real daemon carry the tag the targets expect.
 */
extern const uint8_t fz_uuid[16];

/* The record tag of that store: zsuper_tag() of a superblock with fz_uuid. */
uint64_t fz_tag(void);

/*
 * A private temporary directory, made once per process and removed at exit:
 * under $FUZZ_TMPDIR, else /dev/shm (tmpfs: O_DIRECT and cheap fsync), else /tmp.
 */
const char *fz_tmpdir(void);

/* Writes all of buf or aborts. */
void fz_write_all(int fd, const void *buf, size_t len);

/* Monotonic milliseconds. */
uint64_t fz_now_ms(void);

/* Prints a message and aborts, so libFuzzer records the input as a crash. */
__attribute__((noreturn, format(printf, 1, 2))) void fz_die(const char *fmt, ...);

#endif
