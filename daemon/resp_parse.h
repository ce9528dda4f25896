/*
 * The lexical pieces of RESP2 requests, apart from the connection: what
 * resp.c reads untrusted bytes with, and what the unit tests take apart.
 */
#ifndef ZAPD_RESP_PARSE_H
#define ZAPD_RESP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest "*N\r\n" or "$N\r\n" line read. */
#define RESP_NUM_LINE_MAX 32

/*
 * A "<type><integer>\r\n" line at *pos of buf (len bytes): 1 with *v and
 * *pos past the line, 0 if it has not all come, -1 if it cannot be one
 * (another type, no digits, overflow, no CRLF, or longer than
 * RESP_NUM_LINE_MAX).
 */
int resp_int_line(const uint8_t *buf, size_t len, size_t *pos, char type, int64_t *v);

/*
 * The words of an inline request line (len bytes, its '\n' left out),
 * split at spaces, tabs and '\r': up to max of them into argv/argl; returns
 * how many there are, which may be more than max.
 */
size_t resp_words(const uint8_t *line, size_t len, const uint8_t **argv, size_t *argl, size_t max);

/* A decimal number of 1 to 20 digits that fits in 64 bits. */
bool resp_u64(const uint8_t *p, size_t n, uint64_t *v);

/*
 * SCAN MATCH's pattern as a prefix: "abc*" gives 3 and !*exact, "abc" gives
 * 3 and *exact; false for any other glob ('*' elsewhere, '?', '[', '\\').
 */
bool resp_match_prefix(const uint8_t *p, size_t n, size_t *plen, bool *exact);

#endif
