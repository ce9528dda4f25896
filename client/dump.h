/*
 * zappend-cli dump and restore: keys and values as a stream of checksummed
 * entries (README, "Dump and restore", documents the format).
 */
#ifndef ZAPPEND_DUMP_H
#define ZAPPEND_DUMP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "zappend/client.h"

struct dump_stats {
	uint64_t keys, bytes;
	/*
	 * The sequence number the dump is a snapshot of; a dump of version 1 made
	 * by an earlier zappend-cli gives where it began and ended instead.
	 */
	uint64_t seq_start, seq_end;
};

/*
 * Writes every key starting with prefix, and its value, to out: 0, or
 * -errno with the reason in why.
 */
int dump_write(zap_client *c, const void *prefix, size_t plen, FILE *out, struct dump_stats *st,
	       char *why, size_t whylen);

/* Reading a dump, entry by entry: restore, and the fuzz target, go through it. */
struct dump_reader {
	FILE *in;
	struct dump_stats *st;
	char *why;
	size_t whylen;
	uint64_t n; /* entries read */
};

struct dump_entry {
	uint8_t key[ZAP_KEY_MAX_LEN];
	size_t klen;
	void *val; /* malloc()ed: the caller's to free */
	size_t vlen;
	uint64_t seq;
};

/* The header: 0, or -errno with the reason in r->why. */
int dump_begin(struct dump_reader *r);
/* 1 and the next entry in e; 0 at a sound end record with nothing after it; -errno and why. */
int dump_next(struct dump_reader *r, struct dump_entry *e);

/* Puts every entry of the dump read from in: 0, or -errno with the reason in why. */
int dump_restore(zap_client *c, FILE *in, struct dump_stats *st, char *why, size_t whylen);

#endif
