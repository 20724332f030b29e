/*
 * SHA-256 (FIPS 180-4), used to fingerprint source models (qt_graph.sha256)
 * so reports and .qmod files can name exactly which bytes they came from.
 * Not constant-time and not meant for secrets.
 */
#ifndef QT_CORE_SHA256_H
#define QT_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct qt_sha256 {
	uint32_t h[8];
	uint64_t nbytes; /* total bytes fed so far */
	uint8_t block[64];
	size_t nblock; /* bytes waiting in block */
};

void qt_sha256_init(struct qt_sha256 *s);
/* Feed n bytes (borrowed). */
void qt_sha256_update(struct qt_sha256 *s, const void *data, size_t n);
/* Write the 32-byte digest; s must be re-initialised before reuse. */
void qt_sha256_final(struct qt_sha256 *s, uint8_t digest_out[32]);
/* One-shot digest of n bytes. */
void qt_sha256(const void *data, size_t n, uint8_t digest_out[32]);
/* Lower-case hex of a digest into hex_out (65 bytes with the NUL); returns hex_out. */
char *qt_sha256_hex(const uint8_t digest[32], char hex_out[65]);

#endif
