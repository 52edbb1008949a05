/* Connections per client address (app.maxConnectionsPerIp), counted across all workers: a table
 * of address → count in stripes, each with its own lock, so that accepts on different workers
 * rarely meet. An address is in the table only while it has connections. */
#ifndef IMGATE_NET_IP_LIMIT_H
#define IMGATE_NET_IP_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address: IPv6, or IPv4 as ::ffff:a.b.c.d (so a v4-mapped IPv6 peer is the same). */
typedef struct {
    uint8_t b[16];
} ip_key_t;

/* Before the workers start. Returns 0 or -ENOMEM. */
int ip_limit_init(void);
void ip_limit_free(void);

/* sa's address as a key; false for a family without one. */
bool ip_limit_key(const struct sockaddr *sa, ip_key_t *out);

/* Counts one more connection from the address. Returns the count with it, or 0 if it could not
 * be counted (out of memory): then it must not be released. Any thread. */
uint32_t ip_limit_acquire(const ip_key_t *key);

/* One connection from the address is gone. */
void ip_limit_release(const ip_key_t *key);

/* Addresses with connections now (any thread). */
uint32_t ip_limit_addresses(void);

#endif
