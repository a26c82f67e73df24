#include "onboard.h"

#include "tls/ca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct onboard_file {
    const char *path;         /* where the page links it */
    const char *content_type; /* what installers expect */
    char name[32];            /* the file name offered */
    char *data;
    size_t len;
};

struct onboard {
    struct onboard_file files[4]; /* indexed by enum ca_form */
    char *page;
    size_t page_len;
};

static const char page_template[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>mitmtun: install the CA</title>\n"
    "<style>body{font-family:sans-serif;max-width:42em;margin:1em auto;padding:0 1em;"
    "line-height:1.4}code{background:#eee;padding:0 .2em}h2{margin-top:1.4em}</style>\n"
    "</head><body>\n"
    "<h1>mitmtun</h1>\n"
    "<p>This network passes through <b>mitmtun</b>, an interception appliance: whoever runs it "
    "can read the HTTP and HTTPS traffic of this device. To let it read HTTPS, install its "
    "certificate authority (CA) below. Remove the CA again when you are done testing.</p>\n"
    "<p>Downloads: <a href=\"/cert/pem\">PEM (%s)</a> &middot; "
    "<a href=\"/cert/cer\">DER (%s)</a> &middot; <a href=\"/cert/p12\">PKCS#12 (%s)</a> "
    "&middot; <a href=\"/cert/android\">Android system store (%s)</a></p>\n"
    "<h2>Android</h2><ol><li>Download the <a href=\"/cert/cer\">DER certificate</a>.</li>"
    "<li>Settings &rarr; Security &rarr; Encryption &amp; credentials &rarr; Install a "
    "certificate &rarr; CA certificate, and pick the file.</li>"
    "<li>Apps trust user CAs only when they opt in (network security config). For every app, "
    "a rooted device needs <code>%s</code> in the system store: see the README of "
    "<code>mitmtun ca export</code>.</li></ol>\n"
    "<h2>iOS / iPadOS</h2><ol><li>Open this page in Safari and download the "
    "<a href=\"/cert/pem\">PEM certificate</a>; allow the profile download.</li>"
    "<li>Settings &rarr; General &rarr; VPN &amp; Device Management: install the profile.</li>"
    "<li>Settings &rarr; General &rarr; About &rarr; Certificate Trust Settings: turn on full "
    "trust for the mitmtun CA.</li></ol>\n"
    "<h2>Windows</h2><ol><li>Download the <a href=\"/cert/p12\">PKCS#12 file</a> and open "
    "it.</li><li>Store location: Current User; place it in <i>Trusted Root Certification "
    "Authorities</i>; confirm the warning.</li></ol>\n"
    "<h2>macOS</h2><ol><li>Download the <a href=\"/cert/pem\">PEM certificate</a> and open it "
    "(Keychain Access adds it to the login keychain).</li><li>Open the certificate in Keychain "
    "Access, Trust &rarr; When using this certificate: Always Trust.</li></ol>\n"
    "<h2>Linux</h2><p>Debian and Ubuntu: <code>sudo cp %s "
    "/usr/local/share/ca-certificates/mitmtun-ca.crt &amp;&amp; sudo "
    "update-ca-certificates</code>. Fedora: copy it to "
    "<code>/etc/pki/ca-trust/source/anchors/</code> and run <code>sudo update-ca-trust</code>."
    "</p>\n"
    "<h2>Firefox</h2><p>Firefox keeps its own store: Settings &rarr; Privacy &amp; Security "
    "&rarr; Certificates &rarr; View Certificates &rarr; Authorities &rarr; Import the "
    "<a href=\"/cert/pem\">PEM certificate</a>, and tick <i>Trust this CA to identify "
    "websites</i>.</p>\n"
    "</body></html>\n";

struct onboard *onboard_new(const struct ca *ca)
{
    static const char *const paths[] = {"/cert/pem", "/cert/cer", "/cert/p12", "/cert/android"};
    static const char *const types[] = {"application/x-pem-file", "application/pkix-cert",
                                        "application/x-pkcs12", "application/x-pem-file"};
    struct onboard *o = calloc(1, sizeof(*o));
    int n;

    if (!o)
        return NULL;
    for (int f = 0; f < 4; f++) {
        struct onboard_file *file = &o->files[f];
        file->path = paths[f];
        file->content_type = types[f];
        if (ca_blob(ca, (enum ca_form)f, &file->data, &file->len, file->name, sizeof(file->name)) <
            0)
            goto fail;
    }
    n = snprintf(NULL, 0, page_template, o->files[0].name, o->files[1].name, o->files[2].name,
                 o->files[3].name, o->files[3].name, o->files[0].name);
    o->page = malloc((size_t)n + 1);
    if (n < 0 || !o->page)
        goto fail;
    snprintf(o->page, (size_t)n + 1, page_template, o->files[0].name, o->files[1].name,
             o->files[2].name, o->files[3].name, o->files[3].name, o->files[0].name);
    o->page_len = (size_t)n;
    return o;

fail:
    onboard_free(o);
    return NULL;
}

void onboard_free(struct onboard *o)
{
    if (!o)
        return;
    for (int f = 0; f < 4; f++)
        free(o->files[f].data);
    free(o->page);
    free(o);
}

void onboard_get(const struct onboard *o, const char *path, struct onboard_reply *out)
{
    size_t plen = strcspn(path, "?#");

    memset(out, 0, sizeof(*out));
    out->status = 200;
    out->reason = "OK";
    if (plen == 1 && path[0] == '/') {
        out->content_type = "text/html; charset=utf-8";
        out->body = o->page;
        out->len = o->page_len;
        return;
    }
    for (int f = 0; f < 4; f++) {
        if (strlen(o->files[f].path) == plen && strncmp(path, o->files[f].path, plen) == 0) {
            out->content_type = o->files[f].content_type;
            out->filename = o->files[f].name;
            out->body = o->files[f].data;
            out->len = o->files[f].len;
            return;
        }
    }
    out->status = 404;
    out->reason = "Not Found";
    out->content_type = "text/plain; charset=utf-8";
    out->body = "mitmtun: no such page; the CA is at /\n";
    out->len = strlen(out->body);
}
