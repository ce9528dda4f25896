/* What zappend-cli's parts share. */
#ifndef ZAPPEND_CLI_H
#define ZAPPEND_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "zappend/client.h"

#define PROG "zappend-cli"

/* Bytes outside printable ASCII, and the backslash, C-escaped. */
void put_escaped(FILE *f, const uint8_t *p, size_t n);
void put_json_string(FILE *f, const char *s);

enum stat_format { STAT_HUMAN, STAT_JSON, STAT_PROMETHEUS };

void stat_print(FILE *f, const struct zap_stat_item *items, size_t n, enum stat_format fmt);

#endif
