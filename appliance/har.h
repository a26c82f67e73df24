/*
 * `mitmtun har FLOWS.jsonl`: the "http" records of a flows file as one HAR 1.2 document, for
 * Chromium's DevTools and other HAR viewers. Other record types are skipped.
 */
#ifndef MITMTUN_HAR_H
#define MITMTUN_HAR_H

#include <stdio.h>

/*
 * Converts path into out. A line that is no record (cut short by a crash or a full disk) is
 * skipped with a message on stderr naming the file and line, and the rest still converted.
 * Returns 0, or -1 when a line was skipped or path could not be read or out written.
 */
int har_convert(const char *path, FILE *out);

#endif
