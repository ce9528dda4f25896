/*
 * fuzz-dump: the dump reader (zappend-cli restore's parser) on an untrusted
 * file. Every input either reads to a sound end record or fails with a
 * negative errno and a message; nothing may leak, overread or hang, and a
 * value's memory never grows past what the input holds.
 */
#include <stdio.h>
#include <stdlib.h>

#include "dump.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dump_stats st;
	char why[256];
	struct dump_reader r = { .st = &st, .why = why, .whylen = sizeof(why) };
	struct dump_entry e;
	int ret;

	if (!size)
		return 0;
	r.in = fmemopen((void *)data, size, "r");
	if (!r.in)
		return 0;
	ret = dump_begin(&r);
	while (!ret && (ret = dump_next(&r, &e)) > 0) {
		if (e.klen == 0 || e.klen > ZAP_KEY_MAX_LEN)
			abort();
		free(e.val);
		ret = 0;
	}
	if (ret < 0 && !why[0])
		abort(); /* every failure says why */
	fclose(r.in);
	return 0;
}
