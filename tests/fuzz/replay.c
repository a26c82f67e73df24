/*
 * Runs a libFuzzer target without libFuzzer: every file of a seed corpus, then truncations and
 * bit flips of each seed, then random inputs from a fixed seed. A crash or sanitizer report fails
 * the test; the targets assert their own invariants.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 4096

static uint32_t rng = 0x6d74756e;

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t load(const char *dir, const char *name, uint8_t *buf)
{
    char path[1024];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        return 0;
    n = fread(buf, 1, FUZZ_MAX_INPUT, f);
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    static uint8_t seed[FUZZ_MAX_INPUT], work[FUZZ_MAX_INPUT];
    unsigned long runs = 0, seeds = 0;
    struct dirent *de;
    DIR *d;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 2;
    }
    while ((de = readdir(d)) != NULL) {
        size_t n;
        if (de->d_name[0] == '.')
            continue;
        n = load(argv[1], de->d_name, seed);
        seeds++;
        LLVMFuzzerTestOneInput(seed, n);
        runs++;
        for (size_t cut = 0; cut < n; cut++, runs++)
            LLVMFuzzerTestOneInput(seed, cut);
        for (int i = 0; i < 2000 && n > 0; i++, runs++) {
            memcpy(work, seed, n);
            for (int flips = 1 + (int)(next_random() % 4); flips > 0; flips--)
                work[next_random() % n] ^= (uint8_t)(1u << (next_random() % 8));
            LLVMFuzzerTestOneInput(work, n);
        }
    }
    closedir(d);
    for (int i = 0; i < 20000; i++, runs++) {
        size_t n = next_random() % 200;
        for (size_t j = 0; j < n; j++)
            work[j] = (uint8_t)next_random();
        if (n > 0)
            work[0] = (uint8_t)((i & 1 ? 0x40 : 0x60) | (work[0] & 0x0f));
        LLVMFuzzerTestOneInput(work, n);
    }
    if (seeds == 0) {
        fprintf(stderr, "%s: no seeds in the corpus\n", argv[1]);
        return 1;
    }
    printf("%lu seeds, %lu runs, no crash\n", seeds, runs);
    return 0;
}
