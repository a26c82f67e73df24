/* Running the system's own tools (ip) for the few settings that have no simpler interface. */
#ifndef MITMTUN_COMMAND_H
#define MITMTUN_COMMAND_H

/*
 * Runs argv (argv[0] looked up in PATH) and waits for it. quiet: its output is discarded (for
 * clean-up steps that are expected to fail). Returns its exit status, or -1 if it could not run.
 */
int command_run(const char *const argv[], int quiet);

/* argv joined by spaces into buf, for messages. */
const char *command_str(const char *const argv[], char *buf, unsigned len);

#endif
