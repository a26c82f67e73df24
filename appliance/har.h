/*
 * `mitmtun har FLOWS.jsonl`: the "http" records of a flows file as one HAR 1.2 document, for
 * Chromium's DevTools and other HAR viewers. Other record types are skipped.
 */
#ifndef MITMTUN_HAR_H
#define MITMTUN_HAR_H

#include <stdio.h>

/* Converts path into out. Returns 0, or -1 after a message on stderr naming the file and line. */
int har_convert(const char *path, FILE *out);

#endif
