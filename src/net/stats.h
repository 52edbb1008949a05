/* Per-worker counters: written only by their worker, read by anyone (relaxed atomics, so a reader
 * on another thread sees a recent value without locks or lock-prefixed increments). Every drop and
 * forced close has one; /system/state shows their sums. */
#ifndef IMGATE_NET_STATS_H
#define IMGATE_NET_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define NET_COUNTERS(X)                                                                            \
    X(connectionsAccepted)                                                                         \
    X(connectionsRejected)                                                                         \
    X(handshakesFailed)                                                                            \
    X(handshakeTimeouts)                                                                           \
    X(protocolErrors)                                                                              \
    X(badUtf8)                                                                                     \
    X(messagesTooBig)                                                                              \
    X(slowConsumers)                                                                               \
    X(heartbeatTimeouts)                                                                           \
    X(loginTimeouts)                                                                               \
    X(authFailures)                                                                                \
    X(closeTimeouts)                                                                               \
    X(deferredTimeouts)                                                                            \
    X(outputBackpressure)                                                                          \
    X(httpRequests)                                                                                \
    X(httpErrors)                                                                                  \
    X(badRequests)                                                                                 \
    X(messagesIn)                                                                                  \
    X(messagesOut)                                                                                 \
    X(bytesIn)                                                                                     \
    X(bytesOut)                                                                                    \
    X(duplicatesDropped)                                                                           \
    X(connectionLimitHits)                                                                         \
    X(ipLimitHits)                                                                                 \
    X(upgradeRateHits)                                                                             \
    X(messageRateHits)                                                                             \
    X(loginRateHits)                                                                               \
    X(rateLimitCloses)                                                                             \
    X(originsRefused)                                                                              \
    X(apiAuthFailures)                                                                             \
    X(drainRefusals)

typedef struct {
#define X(name) _Atomic uint64_t name;
    NET_COUNTERS(X)
#undef X
} net_stats_t;

/* Increment by the owning thread only. */
#define STAT_ADD(stats, name, n)                                                                   \
    atomic_store_explicit(&(stats)->name,                                                          \
                          atomic_load_explicit(&(stats)->name, memory_order_relaxed) + (n),        \
                          memory_order_relaxed)
#define STAT_INC(stats, name) STAT_ADD(stats, name, 1)
#define STAT_GET(stats, name) atomic_load_explicit(&(stats)->name, memory_order_relaxed)

#endif
