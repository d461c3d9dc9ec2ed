#ifndef AFTERSALES_CSODIUM_SHIM_H
#define AFTERSALES_CSODIUM_SHIM_H

// libsodium (already a dependency of libzmq's CURVE): the daemon uses its BLAKE2b to
// fingerprint requests for idempotency keys.
#include <sodium.h>

#endif
