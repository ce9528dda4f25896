/* Mounting a device: superblock, format, and rebuilding the index from the zones. */
#ifndef ZAPD_RECOVERY_H
#define ZAPD_RECOVERY_H

#include <stdbool.h>

#include "store.h"
#include "util.h"

/*
 * Mounts the device under s: reads its superblock (or formats it: asked to,
 * or a new device) and rebuilds the index from the zones. 0, or -errno with
 * the reason in err.
 */
int store_mount(struct store *s, bool format, struct zerr *err);

#endif
