/* Register-only microbenchmark of this CPU's 8-bit multiply-accumulate peak (one core).
 * Uses 512-bit VNNI vpdpbusd where the CPU has AVX512-VNNI (what the int8 kernels use), else
 * 256-bit vpdpbusd (AVX-VNNI), else AVX2's
 * vpmaddubsw + vpmaddwd + vpaddd (the int8 dot product x86 CPUs without VNNI run).
 * Independent accumulator chains hide latency; prints multiply-accumulates per second. */
#include <immintrin.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#define CHAINS 8
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    const long iters = 200000000L / CHAINS;
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
    __m512i acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_setzero_si512();
    const char *kind = "vpdpbusd (VNNI, 512-bit)";
    const double macs_per_op = 64.0;
    double t0 = now();
    for (long n = 0; n < iters; n++) {
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
        __asm__ volatile("" : "+v"(a));  /* keep the loop from being folded */
    }
    double dt = now() - t0;
    int32_t sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += _mm_cvtsi128_si32(_mm512_castsi512_si128(acc[i]));
#else
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(5);
    __m256i acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_setzero_si256();
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
    const char *kind = "vpdpbusd (VNNI, 256-bit)";
    const double macs_per_op = 32.0;
#else
    const char *kind = "vpmaddubsw+vpmaddwd (AVX2, no VNNI)";
    const double macs_per_op = 32.0;
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    double t0 = now();
    for (long n = 0; n < iters; n++) {
        for (int i = 0; i < CHAINS; i++) {
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
            acc[i] = _mm256_dpbusd_avx_epi32(acc[i], a, b);
#else
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones));
#endif
        }
        __asm__ volatile("" : "+x"(a));  /* keep the loop from being folded */
    }
    double dt = now() - t0;
    int32_t sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += _mm256_extract_epi32(acc[i], 0);
#endif
    printf("{\"kind\": \"%s\", \"macs_per_s\": %.4g, \"sink\": %d}\n", kind,
           macs_per_op * CHAINS * (double)iters / dt, sink);
    return 0;
}
