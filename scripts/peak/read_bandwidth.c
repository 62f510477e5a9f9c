/* One core's read bandwidth from a buffer of each size given on the command line: the memory
 * roof of scripts/bench.py's rooflines (a layer whose weights must stream from L2 or L3 cannot
 * run faster than its bytes at this rate, whatever its arithmetic).
 *
 * Built with the ISA class's -march like peaks.c, so the loads are that class's vectors. The
 * buffer is written once (its pages faulted in and its lines in the caches), then read whole
 * again and again by vector loads XORed into ACCS independent accumulators (no chain bounds the
 * loop; the result is printed, so the loads are not optimized away), for at least MIN_BYTES.
 * Time is this thread's CPU time, as in peaks.c. Usage: read_bandwidth SIZE... (bytes); prints
 * one JSON object: {"read_bytes_per_s": {"SIZE": bytes per second, ...}, "check": n}. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif
typedef long long vec __attribute__((vector_size(VBYTES)));

#define MIN_BYTES (4L << 30) /* read this much a size: ~0.1-0.5 s */
#define ACCS 8

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double read_rate(long bytes, long long *check) {
    long n = bytes / (VBYTES * ACCS) * ACCS; /* vectors, a multiple of the accumulators */
    vec *buf = aligned_alloc(64, (size_t)n * VBYTES);
    if (buf == NULL) return 0.0;
    memset(buf, 0x5a, (size_t)n * VBYTES);
    /* named accumulators: an array of them GCC leaves on the stack (peaks.c says the same) */
    vec a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    long passes = MIN_BYTES / (n * VBYTES) + 1;
    double t0 = cpu_now();
    for (long p = 0; p < passes; ++p) {
        for (long i = 0; i < n; i += ACCS) {
            a0 ^= buf[i]; a1 ^= buf[i + 1]; a2 ^= buf[i + 2]; a3 ^= buf[i + 3];
            a4 ^= buf[i + 4]; a5 ^= buf[i + 5]; a6 ^= buf[i + 6]; a7 ^= buf[i + 7];
        }
        __asm__ volatile("" : : "r"(buf) : "memory"); /* every pass reads the buffer again */
    }
    double seconds = cpu_now() - t0;
    vec all = a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
    for (int l = 0; l < VBYTES / 8; ++l) *check += all[l];
    free(buf);
    return (double)passes * n * VBYTES / seconds;
}

int main(int argc, char **argv) {
    long long check = 0;
    printf("{\"read_bytes_per_s\": {");
    for (int i = 1; i < argc; ++i) {
        long bytes = atol(argv[i]);
        printf("%s\"%ld\": %.4g", i > 1 ? ", " : "", bytes, read_rate(bytes, &check));
    }
    printf("}, \"vector_bytes\": %d, \"check\": %lld}\n", VBYTES, check);
    return 0;
}
