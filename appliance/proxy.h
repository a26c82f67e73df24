/*
 * The explicit proxy's listening sockets on the host stack ([proxy] listen), and who may use
 * them: clients on the TUN's and the listening interfaces' networks, and the host itself
 * (a wildcard address in [proxy] listen admits everyone: the user said so). Accepted streams go
 * to conn_explicit(); refused ones get a 403 saying why.
 */
#ifndef MITMTUN_PROXY_H
#define MITMTUN_PROXY_H

#include <stddef.h>

struct proxy;
struct worker;

/* Opens every listener. Returns NULL with err naming the address and the problem. */
struct proxy *proxy_new(struct worker *w, char *err, size_t errlen);
void proxy_free(struct proxy *p);

#endif
