#include "har.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define HAR_LINE_MAX (64 * 1024 * 1024) /* a record longer than this is refused */

/* [[name, value], ...] as HAR's [{"name":..., "value":...}, ...]. */
static json_t *har_headers(json_t *pairs)
{
    json_t *out = json_array(), *pair;
    size_t i;

    json_array_foreach(pairs, i, pair)
    {
        json_array_append_new(out, json_pack("{s:O,s:O}", "name", json_array_get(pair, 0), "value",
                                             json_array_get(pair, 1)));
    }
    return out;
}

static const char *har_header_value(json_t *pairs, const char *name)
{
    json_t *pair;
    size_t i;

    json_array_foreach(pairs, i, pair)
    {
        const char *n = json_string_value(json_array_get(pair, 0));
        if (n && strcasecmp(n, name) == 0)
            return json_string_value(json_array_get(pair, 1));
    }
    return NULL;
}

/* The query string of url as HAR's [{"name":..., "value":...}] (not percent-decoded). */
static json_t *har_query(const char *url)
{
    json_t *out = json_array();
    const char *q = strchr(url, '?');

    if (!q)
        return out;
    q++;
    while (*q && *q != '#') {
        size_t len = strcspn(q, "&#");
        const char *eq = memchr(q, '=', len);
        size_t nlen = eq ? (size_t)(eq - q) : len;
        json_array_append_new(out, json_pack("{s:s%,s:s%}", "name", q, nlen, "value",
                                             eq ? eq + 1 : "", eq ? len - nlen - 1 : 0));
        q += len;
        if (*q == '&')
            q++;
    }
    return out;
}

static double har_ms(json_t *timings, const char *key)
{
    json_t *v = json_object_get(timings, key);

    return json_is_number(v) ? json_number_value(v) : -1;
}

/* One http record as a HAR entry. */
static json_t *har_entry(json_t *r)
{
    json_t *req_h = json_object_get(r, "request_headers");
    json_t *resp_h = json_object_get(r, "response_headers");
    json_t *timings = json_object_get(r, "timings");
    const char *url = json_string_value(json_object_get(r, "url"));
    const char *version = json_string_value(json_object_get(r, "http_version"));
    const char *ctype = har_header_value(resp_h, "Content-Type");
    const char *server = json_string_value(json_object_get(r, "server"));
    double connect = har_ms(timings, "connect_ms"), ssl = har_ms(timings, "tls_ms");
    double ttfb = har_ms(timings, "ttfb_ms"), total = har_ms(timings, "total_ms");
    double wait = ttfb < 0 ? 0 : ttfb;
    double receive = total - wait - (connect < 0 ? 0 : connect) - (ssl < 0 ? 0 : ssl);
    json_t *content, *entry, *request_body = json_object_get(r, "request_body");
    json_t *response_body = json_object_get(r, "response_body");
    char ip[64] = "";

    if (!url || !version)
        return NULL;
    if (server) { /* "1.2.3.4:80" or "[::1]:80" */
        const char *colon = strrchr(server, ':');
        size_t len = colon ? (size_t)(colon - server) : strlen(server);
        if (server[0] == '[' && len >= 2)
            snprintf(ip, sizeof(ip), "%.*s", (int)len - 2, server + 1);
        else
            snprintf(ip, sizeof(ip), "%.*s", (int)len, server);
    }
    content =
        json_pack("{s:I,s:s}", "size", json_integer_value(json_object_get(r, "response_bytes")),
                  "mimeType", ctype ? ctype : "");
    if (json_is_string(response_body)) {
        json_object_set(content, "text", response_body);
        if (json_is_string(json_object_get(r, "response_body_encoding")))
            json_object_set_new(content, "encoding", json_string("base64"));
    }
    entry = json_pack(
        "{s:O,s:f,s:{s:O,s:s,s:s,s:[],s:o,s:o,s:i,s:I},"
        "s:{s:O,s:O,s:s,s:[],s:o,s:o,s:s,s:i,s:I},s:{},"
        "s:{s:i,s:i,s:f,s:f,s:f,s:f,s:f},s:s,s:s%}",
        "startedDateTime", json_object_get(r, "ts"), "time", total < 0 ? 0 : total, "request",
        "method", json_object_get(r, "method"), "url", url, "httpVersion", version, "cookies",
        "headers", har_headers(req_h), "queryString", har_query(url), "headersSize", -1, "bodySize",
        json_integer_value(json_object_get(r, "request_bytes")), "response", "status",
        json_object_get(r, "status"), "statusText", json_object_get(r, "reason"), "httpVersion",
        version, "cookies", "headers", har_headers(resp_h), "content", content, "redirectURL",
        har_header_value(resp_h, "Location") ? har_header_value(resp_h, "Location") : "",
        "headersSize", -1, "bodySize", json_integer_value(json_object_get(r, "response_bytes")),
        "cache", "timings", "blocked", -1, "dns", -1, "connect", connect, "ssl", ssl, "send", 0.0,
        "wait", wait, "receive", receive < 0 ? 0 : receive, "serverIPAddress", ip, "connection",
        server ? server : "", (size_t)0);
    if (entry && json_is_string(request_body)) {
        const char *rtype = har_header_value(req_h, "Content-Type");
        json_object_set_new(
            json_object_get(entry, "request"), "postData",
            json_pack("{s:s,s:O}", "mimeType", rtype ? rtype : "", "text", request_body));
    }
    /* HAR wants connect to include ssl; ours are apart. */
    if (entry && connect >= 0 && ssl >= 0)
        json_object_set_new(json_object_get(entry, "timings"), "connect", json_real(connect + ssl));
    return entry;
}

int har_convert(const char *path, FILE *out)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    json_t *entries, *har;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, skipped = 0;
    int rc = 0;

    if (!in) {
        fprintf(stderr, "mitmtun har: %s: %s\n", path, strerror(errno));
        return -1;
    }
    entries = json_array();
    while ((len = getline(&line, &cap, in)) > 0) {
        json_error_t jerr;
        json_t *r, *entry;

        /* A bad line (cut short by a crash or a full disk) costs only itself. */
        lineno++;
        if (len > HAR_LINE_MAX) {
            fprintf(stderr, "mitmtun har: %s:%ld: record longer than %d bytes, skipped\n", path,
                    lineno, HAR_LINE_MAX);
            skipped++;
            continue;
        }
        r = json_loadb(line, (size_t)len, 0, &jerr);
        if (!r) {
            fprintf(stderr, "mitmtun har: %s:%ld: not JSON (%s), skipped\n", path, lineno,
                    jerr.text);
            skipped++;
            continue;
        }
        if (json_is_object(r) &&
            strcmp(json_string_value(json_object_get(r, "type")) ?: "", "http") == 0) {
            entry = har_entry(r);
            if (entry) {
                json_array_append_new(entries, entry);
            } else {
                fprintf(stderr, "mitmtun har: %s:%ld: http record with fields missing, skipped\n",
                        path, lineno);
                skipped++;
            }
        }
        json_decref(r);
    }
    if (skipped) {
        fprintf(stderr, "mitmtun har: %s: %ld of %ld lines skipped\n", path, skipped, lineno);
        rc = -1;
    }
    free(line);
    if (in != stdin)
        fclose(in);
    har = json_pack("{s:{s:s,s:{s:s,s:s},s:[],s:o}}", "log", "version", "1.2", "creator", "name",
                    "mitmtun", "version", MITMTUN_VERSION, "pages", "entries", entries);
    if (!har || json_dumpf(har, out, JSON_INDENT(1)) < 0 || fputc('\n', out) == EOF) {
        fprintf(stderr, "mitmtun har: cannot write the HAR document\n");
        rc = -1;
    }
    json_decref(har);
    return rc;
}
