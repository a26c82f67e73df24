/* Fuzz target: configuration files. Whatever the bytes, config_load answers 0 or -1 with a
 * message, and never crashes. */
#include "appliance/config.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    struct config cfg;
    char path[64], err[512];
    int rc;

    if (fd < 0)
        fd = memfd_create("fuzz-config", 0);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    err[0] = '\0';
    rc = config_load(&cfg, path, NULL, 0, err, sizeof(err));
    CHECK(rc == 0 || (rc == -1 && err[0] != '\0'));
    return 0;
}
