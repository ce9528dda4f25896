/*
 * A fault-injecting device for tests: it wraps another device (in practice
 * the file backend) behind the same vtable and delays, reorders, fails, tears
 * or misplaces what passes through, as ZAPPEND_FAULT says. Only the test
 * binary zappendd-fault (built with -DZAPD_FAULT) has it; README.md, "Tests",
 * lists the keys.
 */
#ifndef ZAPD_DEV_FAULT_H
#define ZAPD_DEV_FAULT_H

#include "dev.h"

/*
 * Parses spec ("key=value,..."), then puts *d behind a wrapper that owns it
 * from then on. o is what *d was opened with (the image's path). On failure
 * *d is left as it was, and err says why in one line.
 */
int zdev_fault_wrap(const char *spec, const struct zdev_opts *o, struct zdev **d, struct zerr *err);

#endif
