/* Mounting a device: superblock, format, and rebuilding the index from the zones. */
#ifndef ZAPD_RECOVERY_H
#define ZAPD_RECOVERY_H

#include "store.h"

#endif
