/*
 * The CA onboarding page: what a phone on the hotspot opens (http://<TUN address>/, or
 * [proxy] onboarding_host through the appliance) to get the CA without a cable. It serves a
 * small HTML page with install steps per platform, and the certificate in each form.
 */
#ifndef MITMTUN_ONBOARD_H
#define MITMTUN_ONBOARD_H

#include <stddef.h>

struct ca;
struct onboard;

struct onboard_reply {
    int status;         /* 200 or 404 */
    const char *reason; /* "OK", "Not Found" */
    const char *content_type;
    const char *filename; /* for Content-Disposition, or NULL */
    const char *body;
    size_t len;
};

/* Prepares the page and every form of ca's certificate. Returns NULL when out of memory. */
struct onboard *onboard_new(const struct ca *ca);
void onboard_free(struct onboard *o);

/* The reply for a GET of path (origin-form, query ignored). */
void onboard_get(const struct onboard *o, const char *path, struct onboard_reply *out);

#endif
