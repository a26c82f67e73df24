#include "intercept.h"

#include "forge.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAW_WRITE_HIGH  (128 * 1024) /* ciphertext queued for the client before the filter waits */
#define UPSTREAM_IO_MAX (256 * 1024) /* bytes one upstream socket write may move */
/* One TLS record's plaintext at most: SSL_read returns no more, and libevent reserves this
 * much for each read (at 128 KiB, malloc returned memory with brk about once per request). */
#define TLS_READ_MAX (16 * 1024)
#define TLS_TAKE_MAX (64 * 1024) /* tls_take_pending moves this much at a time */
#define SESSIONS     256         /* upstream TLS sessions kept for resumption */
#define SEND_NOW_MAX (16 * 1024) /* tls_send writes at once up to this much (one record) */

/* An upstream session to resume, by the server name it was made for. */
struct upstream_session {
    char host[256];
    SSL_SESSION *session;
};

struct tls_engine {
    SSL_CTX *upstream_ctx; /* we are the client */
    SSL_CTX *client_ctx;   /* we are the server */
    FILE *keylog;          /* both legs' secrets, NSS key log format; NULL for none */
    struct upstream_session sessions[SESSIONS]; /* so a repeat visit costs no full handshake */
    unsigned next_session;                      /* round-robin replacement */
    struct forge *forge;
    int verify;
};

struct tls_session {
    struct tls_engine *e;
    struct bufferevent *craw, *uraw; /* the caller's */
    struct bufferevent *cf, *uf;     /* our filters while handshaking */
    struct tls_info *info;
    tls_ready_cb cb;     /* tls_intercept's */
    tls_upstream_cb ucb; /* tls_reconnect's */
    void *arg;
    char sni[256];
    unsigned char alpn[256]; /* what upstream selected */
    unsigned alpn_len;
};

static int session_index = -1; /* SSL ex_data slot of the server leg's session */

static void set_error(struct tls_session *s, const char *what, const char *detail)
{
    unsigned long e = ERR_get_error();
    char ssl[160] = "";

    if (e)
        ERR_error_string_n(e, ssl, sizeof(ssl));
    snprintf(s->info->error, sizeof(s->info->error), "%s%s%s", what, detail ? detail : "",
             *ssl && !detail ? ssl : "");
    ERR_clear_error();
}

void tls_filter_free(struct bufferevent *filter)
{
    SSL *ssl = bufferevent_openssl_get_ssl(filter);

    bufferevent_free(filter); /* the raw bufferevent or socket under it stays */
    /* Freed without close_notify, OpenSSL would drop the session (its resumption ticket) as
     * bad; a fatal alert already did that for a connection that failed. */
    SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
    SSL_free(ssl);
}

void tls_close_notify(struct bufferevent *filter)
{
    SSL_shutdown(bufferevent_openssl_get_ssl(filter));
}

static void session_free(struct tls_session *s)
{
    if (s->cf)
        tls_filter_free(s->cf);
    if (s->uf)
        tls_filter_free(s->uf);
    free(s);
}

void tls_cancel(struct tls_session *s)
{
    session_free(s);
}

static void session_fail(struct tls_session *s)
{
    tls_ready_cb cb = s->cb;
    tls_upstream_cb ucb = s->ucb;
    void *arg = s->arg;
    const char *error = s->info->error;

    session_free(s);
    if (ucb)
        ucb(arg, NULL, error);
    else
        cb(arg, NULL, NULL, error);
}

/* A fatal handshake_failure alert, in a TLS 1.2 record: all a client gets when upstream's
 * certificate does not verify. */
static void send_alert(struct bufferevent *raw)
{
    static const unsigned char alert[] = {21, 3, 3, 0, 2, 2, 40};

    evbuffer_add(bufferevent_get_output(raw), alert, sizeof(alert));
}

static void client_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct tls_session *s = arg;
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    const unsigned char *alpn;
    unsigned alpn_len;
    tls_ready_cb cb;
    void *cbarg;
    struct bufferevent *cf, *uf;

    if (!(what & BEV_EVENT_CONNECTED)) {
        /* An alert against our certificate, or a close right after it: the app pins its
         * certificates or does not trust our CA. */
        unsigned long e = bufferevent_get_openssl_error(bev);
        int reason = ERR_GET_REASON(e);
        char detail[160] = "the client closed the connection";

        if (e)
            ERR_error_string_n(e, detail, sizeof(detail));
        s->info->refused_cert = (what & BEV_EVENT_EOF) || reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
                                reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
                                reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN;
        set_error(s, "client handshake: ", detail);
        session_fail(s);
        return;
    }
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    snprintf(s->info->version, sizeof(s->info->version), "%s", SSL_get_version(ssl));
    snprintf(s->info->alpn, sizeof(s->info->alpn), "%.*s", (int)alpn_len,
             alpn_len ? (const char *)alpn : "");
    s->info->intercepted = 1;
    SSL_set_ex_data(ssl, session_index, NULL);
    cb = s->cb;
    cbarg = s->arg;
    cf = s->cf;
    uf = s->uf;
    bufferevent_setcb(cf, NULL, NULL, NULL, NULL);
    bufferevent_setcb(uf, NULL, NULL, NULL, NULL);
    free(s);
    cb(cbarg, cf, uf, NULL);
}

/* The server leg's ALPN: the protocol upstream chose, if the client offered it. */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    struct tls_session *s = SSL_get_ex_data(ssl, session_index);

    (void)arg;
    if (!s || s->alpn_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    for (unsigned i = 0; i < inlen; i += 1u + in[i])
        if (in[i] == s->alpn_len && i + 1u + in[i] <= inlen &&
            memcmp(in + i + 1, s->alpn, s->alpn_len) == 0) {
            *out = s->alpn;
            *outlen = (unsigned char)s->alpn_len;
            return SSL_TLSEXT_ERR_OK;
        }
    return SSL_TLSEXT_ERR_NOACK;
}

/* The upstream handshake ended: whether it succeeded with a certificate we accept. */
static int upstream_ok(struct tls_session *s, struct bufferevent *bev, short what)
{
    SSL *ussl = bufferevent_openssl_get_ssl(bev);
    long verdict;

    if (!(what & BEV_EVENT_CONNECTED)) {
        set_error(s, "upstream handshake: ",
                  what & BEV_EVENT_EOF ? "the server closed the connection" : NULL);
        return 0;
    }
    s->info->upstream_resumed = SSL_session_reused(ussl);
    verdict = SSL_get_verify_result(ussl);
    if (verdict != X509_V_OK && s->e->verify) {
        set_error(s, "upstream certificate: ", X509_verify_cert_error_string(verdict));
        return -1;
    }
    return 1;
}

/* The upstream leg is up (s->uf): forge its certificate and answer the client. Returns 0, or
 * -1 with the error set (the caller fails s). */
static int client_leg_start(struct tls_session *s)
{
    SSL *ussl = bufferevent_openssl_get_ssl(s->uf), *cssl;
    const unsigned char *alpn;
    X509 *peer, *leaf;

    SSL_get0_alpn_selected(ussl, &alpn, &s->alpn_len);
    if (s->alpn_len > 0)
        memcpy(s->alpn, alpn, s->alpn_len);
    peer = SSL_get1_peer_certificate(ussl);
    leaf = peer ? forge_leaf(s->e->forge, peer, s->sni) : NULL;
    X509_free(peer);
    cssl = leaf ? SSL_new(s->e->client_ctx) : NULL;
    if (!cssl || SSL_use_certificate(cssl, leaf) != 1 ||
        SSL_use_PrivateKey(cssl, forge_key(s->e->forge)) != 1) {
        X509_free(leaf);
        SSL_free(cssl);
        set_error(s, "forging the certificate: ", NULL);
        return -1;
    }
    X509_free(leaf);
    SSL_set_ex_data(cssl, session_index, s);
    s->cf = bufferevent_openssl_filter_new(bufferevent_get_base(s->craw), s->craw, cssl,
                                           BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_DEFER_CALLBACKS);
    if (!s->cf) {
        SSL_free(cssl);
        set_error(s, "client leg: cannot start", "");
        return -1;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(s->cf, 1);
    bufferevent_set_max_single_read(s->cf, TLS_READ_MAX);
    bufferevent_setcb(s->cf, NULL, NULL, client_eventcb, s);
    /* The ClientHello already waits in the raw input: have the filter read it. */
    bufferevent_trigger(s->craw, EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
    return 0;
}

/* Upstream answered: check it, then the client leg. */
static void upstream_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct tls_session *s = arg;
    int ok = upstream_ok(s, bev, what);

    if (ok < 0)
        send_alert(s->craw);
    if (ok <= 0 || client_leg_start(s) < 0)
        session_fail(s);
}

static struct upstream_session *session_slot(struct tls_engine *e, const char *host)
{
    for (int i = 0; i < SESSIONS; i++)
        if (e->sessions[i].session && strcmp(e->sessions[i].host, host) == 0)
            return &e->sessions[i];
    return NULL;
}

/* OpenSSL hands us each new upstream session (TLS 1.3 tickets arrive after the handshake). */
static int keep_session(SSL *ssl, SSL_SESSION *session)
{
    struct tls_engine *e = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    struct upstream_session *slot;

    if (!e || !host || !SSL_SESSION_is_resumable(session))
        return 0;
    slot = session_slot(e, host);
    if (!slot)
        slot = &e->sessions[e->next_session++ % SESSIONS];
    SSL_SESSION_free(slot->session);
    snprintf(slot->host, sizeof(slot->host), "%s", host);
    slot->session = session;
    return 1; /* ours now */
}

/*
 * The upstream leg's TLS runs straight on raw's socket (OpenSSL reads and writes it): no
 * ciphertext buffer in between. raw is disabled and keeps the socket, to reset and close it.
 */
static struct bufferevent *upstream_bev(struct bufferevent *raw, SSL *ssl)
{
    struct bufferevent *bev;

    bufferevent_disable(raw, EV_READ | EV_WRITE);
    bufferevent_setcb(raw, NULL, NULL, NULL, NULL);
    bev = bufferevent_openssl_socket_new(bufferevent_get_base(raw), bufferevent_getfd(raw), ssl,
                                         BUFFEREVENT_SSL_CONNECTING, BEV_OPT_DEFER_CALLBACKS);
    if (!bev)
        return NULL;
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    bufferevent_set_max_single_read(bev, TLS_READ_MAX);
    bufferevent_set_max_single_write(bev, UPSTREAM_IO_MAX);
    return bev;
}

/*
 * libevent writes a socket bufferevent's output only once epoll says the socket is writable:
 * an epoll_ctl each way and a loop round for every request. On a filter, its write path costs
 * about a thousand instructions a request (ERR_clear_error among them). Small pieces go out at
 * once here instead. When OpenSSL cannot finish (the socket, or the raw output under a filter,
 * is full), the bytes go to the output whole, as one chain, so that libevent's retry passes them
 * again from the start, as OpenSSL needs.
 */
void tls_send(struct bufferevent *bev, struct evbuffer *b)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    size_t n = evbuffer_get_length(b);

    if (n > 0 && n <= SEND_NOW_MAX && evbuffer_get_length(out) == 0 && ssl &&
        SSL_is_init_finished(ssl)) {
        int r = SSL_write(ssl, evbuffer_pullup(b, -1), (int)n);

        if (r > 0)
            evbuffer_drain(b, (size_t)r);
        else
            ERR_clear_error(); /* libevent's retry meets the same condition and reports it */
    }
    evbuffer_add_buffer(out, b);
}

/*
 * Upstream legs read ahead: one read() takes all that has come, where OpenSSL would read each
 * record's header and then its body. But libevent 2.1 stops asking OpenSSL for records once
 * SSL_pending() is 0, so whole records can be left inside OpenSSL while the socket is quiet.
 * Every reader of an upstream leg takes them first; whoever gives one a new reader, or lets it
 * read again, kicks it.
 */
void tls_take_pending(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    struct evbuffer *in = bufferevent_get_input(bev);

    if (!ssl || !SSL_get_read_ahead(ssl) || !(bufferevent_get_enabled(bev) & EV_READ))
        return;
    for (size_t took = 0; SSL_has_pending(ssl);) {
        struct evbuffer_iovec v;
        int r;

        if (took >= TLS_TAKE_MAX) { /* a record half in may keep it reading: the rest later */
            bufferevent_trigger(bev, EV_READ, 0);
            return;
        }
        if (evbuffer_reserve_space(in, TLS_READ_MAX, &v, 1) < 1)
            return;
        r = SSL_read(ssl, v.iov_base, (int)v.iov_len);
        if (r <= 0) {
            /* The rest of a record is on its way, or the stream ended or broke: libevent's
             * next read (the socket is readable then) sees the same and reports it. */
            ERR_clear_error();
            return;
        }
        v.iov_len = (size_t)r;
        evbuffer_commit_space(in, &v, 1);
        took += (size_t)r;
    }
}

void tls_kick(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    if (ssl && SSL_get_read_ahead(ssl) && SSL_has_pending(ssl) &&
        (bufferevent_get_enabled(bev) & EV_READ))
        bufferevent_trigger(bev, EV_READ, 0); /* its read callback takes them */
}

/* An upstream SSL asking for sni (none for ""), verifying it, resuming an earlier session. */
static SSL *upstream_ssl(struct tls_engine *e, const char *sni, const unsigned char *alpn,
                         size_t alpn_len)
{
    SSL *ssl = SSL_new(e->upstream_ctx);

    if (!ssl)
        return NULL;
    SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER); /* a retry from libevent's output */
    SSL_set_read_ahead(ssl, 1);                             /* tls_take_pending says why */
    if (*sni && (!SSL_set_tlsext_host_name(ssl, sni) || !SSL_set1_host(ssl, sni)))
        goto fail;
    if (*sni) {
        struct upstream_session *known = session_slot(e, sni);
        if (known)
            SSL_set_session(ssl, known->session);
    }
    if (alpn_len && SSL_set_alpn_protos(ssl, alpn, (unsigned)alpn_len) != 0)
        goto fail;
    return ssl;

fail:
    SSL_free(ssl);
    return NULL;
}

/* A session reporting to arg, for sni. NULL when out of memory. */
static struct tls_session *session_new(struct tls_engine *e, struct tls_info *info, const char *sni,
                                       void *arg)
{
    struct tls_session *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->e = e;
    s->info = info;
    s->arg = arg;
    snprintf(s->sni, sizeof(s->sni), "%s", sni);
    return s;
}

/* s is to answer the ClientHello waiting in client_raw; cb hears how that ended. */
static void session_client(struct tls_session *s, struct bufferevent *client_raw, tls_ready_cb cb)
{
    snprintf(s->info->sni, sizeof(s->info->sni), "%s", s->sni);
    s->craw = client_raw;
    s->cb = cb;
    bufferevent_setwatermark(client_raw, EV_WRITE, 0, RAW_WRITE_HIGH);
}

/*
 * Starts an upstream handshake on upstream_raw's socket, asking for sni and alpn (within the
 * version range, where one is given); eventcb hears how it ended. Returns its state (the caller
 * sets the callback it reports to), or NULL when it could not start.
 */
static struct tls_session *session_start(struct tls_engine *e, struct bufferevent *upstream_raw,
                                         struct tls_info *info, const char *sni,
                                         const unsigned char *alpn, size_t alpn_len,
                                         int min_version, int max_version,
                                         bufferevent_event_cb eventcb, void *arg)
{
    struct tls_session *s = session_new(e, info, sni, arg);
    SSL *ussl = upstream_ssl(e, sni, alpn, alpn_len);

    if (!s || !ussl)
        goto fail;
    s->uraw = upstream_raw;
    if (min_version)
        SSL_set_min_proto_version(ussl, min_version);
    if (max_version)
        SSL_set_max_proto_version(ussl, max_version);
    s->uf = upstream_bev(upstream_raw, ussl);
    if (!s->uf)
        goto fail;
    bufferevent_setcb(s->uf, NULL, NULL, eventcb, s);
    bufferevent_enable(s->uf, EV_READ | EV_WRITE);
    return s;

fail:
    SSL_free(ussl);
    free(s);
    ERR_clear_error();
    return NULL;
}

struct tls_session *tls_intercept(struct tls_engine *e, struct bufferevent *client_raw,
                                  struct bufferevent *upstream_raw, const struct clienthello *ch,
                                  struct tls_info *info, tls_ready_cb cb, void *arg)
{
    /* The client's version range holds on the upstream leg too. */
    struct tls_session *s = session_start(e, upstream_raw, info, ch->sni, ch->alpn, ch->alpn_len,
                                          ch->min_version, ch->max_version, upstream_eventcb, arg);

    if (s)
        session_client(s, client_raw, cb);
    return s;
}

struct tls_session *tls_intercept_reuse(struct tls_engine *e, struct bufferevent *client_raw,
                                        struct bufferevent *upstream, const struct clienthello *ch,
                                        struct tls_info *info, tls_ready_cb cb, void *arg)
{
    struct tls_session *s = session_new(e, info, ch->sni, arg);

    if (!s) {
        tls_filter_free(upstream);
        return NULL;
    }
    info->upstream_resumed = 0;
    s->uf = upstream;
    session_client(s, client_raw, cb);
    if (client_leg_start(s) < 0) {
        session_free(s); /* upstream with it */
        return NULL;
    }
    return s;
}

static void reconnect_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct tls_session *s = arg;
    tls_upstream_cb ucb = s->ucb;
    void *cbarg = s->arg;

    if (upstream_ok(s, bev, what) <= 0) {
        session_fail(s);
        return;
    }
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    free(s);
    ucb(cbarg, bev, NULL);
}

struct tls_session *tls_reconnect(struct tls_engine *e, struct bufferevent *upstream_raw,
                                  struct tls_info *info, tls_upstream_cb cb, void *arg)
{
    unsigned char alpn[sizeof(info->alpn) + 1];
    size_t alpn_len = strlen(info->alpn);
    struct tls_session *s;

    /* Offer only what the client leg agreed on: the stream carries that protocol. */
    alpn[0] = (unsigned char)alpn_len;
    memcpy(alpn + 1, info->alpn, alpn_len);
    s = session_start(e, upstream_raw, info, info->sni, alpn, alpn_len ? alpn_len + 1 : 0, 0, 0,
                      reconnect_eventcb, arg);
    if (s)
        s->ucb = cb;
    return s;
}

/* Appends one NSS key log line: Wireshark decrypts a capture of both legs with the file. */
static void keylog_line(const SSL *ssl, const char *line)
{
    struct tls_engine *e = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

    if (e && e->keylog) {
        fputs(line, e->keylog);
        fputc('\n', e->keylog);
        fflush(e->keylog);
    }
}

struct tls_engine *tls_engine_new(const struct ca *ca, const char *upstream_ca_file, int verify,
                                  int cache_size, const char *keylog, char *err, size_t errlen)
{
    struct tls_engine *e = calloc(1, sizeof(*e));

    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    err[0] = '\0';
    if (session_index < 0)
        session_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    e->verify = verify;
    e->upstream_ctx = SSL_CTX_new(TLS_client_method());
    e->client_ctx = SSL_CTX_new(TLS_server_method());
    e->forge = forge_new(ca, cache_size, err, errlen);
    if (!e->upstream_ctx || !e->client_ctx || !e->forge)
        goto fail;
    SSL_CTX_set_verify(e->upstream_ctx, SSL_VERIFY_NONE, NULL); /* judged after the handshake */
    /* A server that closes without close_notify has ended the stream (OpenSSL 3 calls it an
     * error); the HTTP layer knows where its messages end. */
    SSL_CTX_set_options(e->upstream_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_app_data(e->upstream_ctx, e);
    SSL_CTX_set_app_data(e->client_ctx, e);
    SSL_CTX_set_session_cache_mode(e->upstream_ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(e->upstream_ctx, keep_session);
    if (SSL_CTX_set_default_verify_paths(e->upstream_ctx) != 1)
        goto fail;
    if (upstream_ca_file && *upstream_ca_file &&
        SSL_CTX_load_verify_locations(e->upstream_ctx, upstream_ca_file, NULL) != 1) {
        snprintf(err, errlen, "[tls] upstream_ca_file: cannot load '%s'", upstream_ca_file);
        ERR_clear_error();
        tls_engine_free(e);
        return NULL;
    }
    if (keylog && *keylog) {
        /* The secrets decrypt every captured stream: a new file is for its owner only. */
        int fd = open(keylog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        e->keylog = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (!e->keylog) {
            snprintf(err, errlen, "[tls] keylog: cannot open '%s' for appending: %s", keylog,
                     strerror(errno));
            if (fd >= 0)
                close(fd);
            tls_engine_free(e);
            return NULL;
        }
        SSL_CTX_set_keylog_callback(e->upstream_ctx, keylog_line);
        SSL_CTX_set_keylog_callback(e->client_ctx, keylog_line);
    }
    SSL_CTX_set_min_proto_version(e->client_ctx, TLS1_2_VERSION);
    SSL_CTX_set_alpn_select_cb(e->client_ctx, select_alpn, NULL);
    return e;

fail:
    if (!*err)
        snprintf(err, errlen, "cannot set up OpenSSL");
    ERR_clear_error();
    tls_engine_free(e);
    return NULL;
}

void tls_engine_free(struct tls_engine *e)
{
    if (!e)
        return;
    SSL_CTX_free(e->upstream_ctx);
    SSL_CTX_free(e->client_ctx);
    forge_free(e->forge);
    for (int i = 0; i < SESSIONS; i++)
        SSL_SESSION_free(e->sessions[i].session);
    if (e->keylog)
        fclose(e->keylog);
    free(e);
}
