#include "pool.h"

#include "tls/intercept.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pooled {
    struct pooled *prev, *next; /* newest first */
    struct pool *p;
    struct pool_key key;
    struct bufferevent *tls, *raw; /* the parked connection */
    struct event *deadline;
};

struct pool {
    struct event_base *base;
    struct pooled *head, *tail;
    int count, max;
};

static int pool_addr_eq(const struct netstack_endpoint *a, const struct netstack_endpoint *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

static int pool_server_eq(const struct netstack_endpoint *a, const struct netstack_endpoint *b)
{
    return pool_addr_eq(a, b) && a->port == b->port;
}

static int pool_key_eq(const struct pool_key *a, const struct pool_key *b)
{
    return pool_addr_eq(&a->client, &b->client) && pool_server_eq(&a->server, &b->server) &&
           strcmp(a->sni, b->sni) == 0 && a->alpn_len == b->alpn_len &&
           memcmp(a->alpn, b->alpn, a->alpn_len) == 0 && a->min_version == b->min_version &&
           a->max_version == b->max_version && a->tls == b->tls;
}

static void pool_unlink(struct pooled *e)
{
    struct pool *p = e->p;

    if (e->prev)
        e->prev->next = e->next;
    else
        p->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->tail = e->prev;
    p->count--;
    event_free(e->deadline);
}

/*
 * Closes a connection: close_notify (over TLS), then FIN. The socket closes now, not when libevent
 * finalizes the bufferevent in a later loop pass: pool_shed frees its descriptor for the
 * socket() that follows.
 */
static void pool_close_connection(struct bufferevent *tls, struct bufferevent *raw)
{
    evutil_socket_t fd = bufferevent_getfd(raw);

    if (tls != raw) {
        tls_close_notify(tls);
        tls_filter_free(tls);
    }
    bufferevent_setfd(raw, -1);
    bufferevent_free(raw);
    close(fd);
}

static void pool_close(struct pooled *e)
{
    pool_unlink(e);
    pool_close_connection(e->tls, e->raw);
    free(e);
}

/* The server spoke, closed or failed: the connection is of no further use. */
static void pool_readcb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pool_close(arg);
}

static void pool_eventcb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    pool_close(arg);
}

static void pool_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pool_close(arg);
}

struct pool *pool_new(struct event_base *base, int max)
{
    struct pool *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->base = base;
    p->max = max;
    return p;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    while (p->head)
        pool_close(p->head);
    free(p);
}

int pool_put(struct pool *p, const struct pool_key *k, struct bufferevent *tls,
             struct bufferevent *raw, int idle_s)
{
    struct timeval tv = {idle_s, 0};
    struct pooled *e = NULL;

    if (p->max < 1 || idle_s < 1 || evbuffer_get_length(bufferevent_get_input(tls)) > 0)
        goto fail;
    e = calloc(1, sizeof(*e));
    if (!e || !(e->deadline = evtimer_new(p->base, pool_expire, e)) ||
        evtimer_add(e->deadline, &tv) < 0)
        goto fail;
    if (p->count >= p->max)
        pool_close(p->tail);
    e->p = p;
    e->key = *k;
    e->tls = tls;
    e->raw = raw;
    e->next = p->head;
    if (p->head)
        p->head->prev = e;
    p->head = e;
    if (!p->tail)
        p->tail = e;
    p->count++;
    bufferevent_setcb(tls, pool_readcb, NULL, pool_eventcb, e);
    bufferevent_setwatermark(tls, EV_READ | EV_WRITE, 0, 0);
    bufferevent_set_timeouts(tls, NULL, NULL);
    bufferevent_enable(tls, EV_READ);
    tls_kick(tls);
    return 0;

fail:
    if (e && e->deadline)
        event_free(e->deadline);
    free(e);
    pool_close_connection(tls, raw);
    return -1;
}

int pool_has(const struct pool *p, const struct netstack_endpoint *client,
             const struct netstack_endpoint *server)
{
    for (const struct pooled *e = p->head; e; e = e->next)
        if (pool_addr_eq(&e->key.client, client) && pool_server_eq(&e->key.server, server))
            return 1;
    return 0;
}

int pool_take(struct pool *p, const struct pool_key *k, struct bufferevent **tls,
              struct bufferevent **raw)
{
    for (struct pooled *e = p->head; e; e = e->next) {
        if (!pool_key_eq(&e->key, k))
            continue;
        pool_unlink(e);
        *tls = e->tls;
        *raw = e->raw;
        free(e);
        bufferevent_disable(*tls, EV_READ);
        bufferevent_setcb(*tls, NULL, NULL, NULL, NULL);
        return 1;
    }
    return 0;
}

int pool_shed(struct pool *p)
{
    if (!p->tail)
        return 0;
    pool_close(p->tail);
    return 1;
}

int pool_count(const struct pool *p)
{
    return p->count;
}
