#ifndef AFTERSALES_CLIBPQ_SHIM_H
#define AFTERSALES_CLIBPQ_SHIM_H

// The C side of our PostgreSQL binding: libpq's own header (Debian's libpq-dev; its
// include directory comes from pkg-config libpq). Everything with a lifetime or an error
// is handled in Swift (Sources/Postgres), the same split as CZeroMQ / ZeroMQ.

#include <libpq-fe.h>

// The diagnostic field codes are character-constant macros ('C', 'M', ...); exposed as
// functions so the Swift side does not depend on how such macros are imported.
static inline int CLibPQ_DIAG_SQLSTATE(void) { return PG_DIAG_SQLSTATE; }
static inline int CLibPQ_DIAG_MESSAGE_PRIMARY(void) { return PG_DIAG_MESSAGE_PRIMARY; }
static inline int CLibPQ_DIAG_MESSAGE_DETAIL(void) { return PG_DIAG_MESSAGE_DETAIL; }
static inline int CLibPQ_DIAG_MESSAGE_HINT(void) { return PG_DIAG_MESSAGE_HINT; }
static inline int CLibPQ_DIAG_SEVERITY_NONLOCALIZED(void) { return PG_DIAG_SEVERITY_NONLOCALIZED; }

#endif
