#ifndef AFTERSALES_CZEROMQ_SHIM_H
#define AFTERSALES_CZEROMQ_SHIM_H

// The C side of our ZeroMQ binding: libzmq's own header plus a few tiny helpers.
// Everything with a lifetime or an error code is handled in Swift (Sources/ZeroMQ),
// the same split as swift-nio's CNIOLinux / NIO.

#include <errno.h>
#include <zmq.h>

// errno values the Swift layer tests for. Exposed as functions because some of them
// are macros Swift cannot import (zmq.h defines ETERM, EFSM, ... as expressions), and
// so that the ZeroMQ module need not import Glibc/Darwin just for these constants.
static inline int CZeroMQ_EINTR(void) { return EINTR; }
static inline int CZeroMQ_EAGAIN(void) { return EAGAIN; }
static inline int CZeroMQ_ETERM(void) { return ETERM; }
static inline int CZeroMQ_EFSM(void) { return EFSM; }
static inline int CZeroMQ_ENOTSOCK(void) { return ENOTSOCK; }
static inline int CZeroMQ_EHOSTUNREACH(void) { return EHOSTUNREACH; }
static inline int CZeroMQ_EADDRINUSE(void) { return EADDRINUSE; }
static inline int CZeroMQ_EINVAL(void) { return EINVAL; }

#endif
