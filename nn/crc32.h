/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the checksum zlib's
 * crc32() and Python's zlib.crc32 compute. Internal to nn/ (checkpoints). */
#ifndef TG_NN_CRC32_H
#define TG_NN_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over n bytes, exactly as zlib's
 * crc32(crc, buf, n): tg__crc32(tg__crc32(0, a, na), b, nb) is the CRC of a
 * followed by b. "123456789" gives 0xcbf43926. */
uint32_t tg__crc32(uint32_t crc, const void *buf, size_t n);

#endif
