#ifndef AFTERSALES_CCRC32C_H
#define AFTERSALES_CCRC32C_H

// CRC-32C with the CPU's own instruction (SSE 4.2 `crc32` on x86-64), for
// daemon/Sources/AfterSalesDaemon/Storage/CRC32C.swift: start-up checks every byte of a
// snapshot, and the table-driven loop costs a tenth of a second per 240 MB where the
// instruction costs a hundredth. Swift cannot emit the instruction itself, hence C.

#include <stddef.h>
#include <stdint.h>

/// 1 when `ccrc32c_hardware_update` may be called on this CPU, else 0.
int ccrc32c_hardware_available(void);

/// Continues a CRC-32C over `count` bytes from the register value `state` (no
/// pre- or post-inversion: the caller passes ~crc and inverts the result).
uint32_t ccrc32c_hardware_update(uint32_t state, const void *bytes, size_t count);

#endif
