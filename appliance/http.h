/*
 * The HTTP/1.x layer on one client stream (plain, or decrypted by the TLS layer): requests are
 * read with httpmsg, sent upstream with hop-by-hop headers handled, and answered in order; each
 * exchange becomes an "http" flow record. On an explicit-proxy stream it is also the front end:
 * absolute-form requests to any host (one upstream connection at a time, redialled when the
 * host changes), CONNECT, and Basic proxy authentication.
 *
 * Bodies are streamed as framed on the wire, never held: at most CONN_BUFFER_LIMIT bytes wait
 * towards either side before the other stops being read.
 */
#ifndef MITMTUN_HTTP_H
#define MITMTUN_HTTP_H

struct conn;
struct http;

/* Takes over c's streams (c->ubev may be NULL: dialled per request). scheme is "http" or
 * "https". Returns 0, or -1 when out of memory. */
int http_start(struct conn *c, const char *scheme);
/* Stops the layer (the stream closes, or turns into a raw relay); safe inside its callbacks. */
void http_stop(struct http *h);
/* Frees a stopped layer; only from the reaper. */
void http_free(struct http *h);

#endif
