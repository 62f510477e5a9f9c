/* Forms of the delta kernels' pointwise walk (primitives/delta_walk.py: dense layers and convs of
 * one output position), timed on one core over the same lists: what the walk's docstring records.
 *
 * The lists are delta_lists' pointwise form for one sign: per output channel, the taps (5% of K,
 * a ternary layer at 90% zeros has that many +1 taps) cut into 4 runs, entry i advancing running
 * sum i % 4 by a gap of 1-255 over a slotted input (a zero at every multiple of 255), padded with
 * zero entries so the runs end together. Each form returns the sum of its channels' sums, which
 * must equal the scalar walk's (printed, and checked: exit 1 otherwise).
 *   scalar    the walk delta_walk emits: a byte gap, an add, a byte load, an add per entry;
 *   word64    8 gaps read as one 64-bit load and taken apart by shifts;
 *   gather16  16 gaps widened to int32, prefix sums over the 4 runs in registers, vpgatherdd of
 *             the inputs stored as int32 (AVX-512);
 *   gather8   the same with 8 lanes (AVX2);
 *   table16   the 16 offsets decoded as in gather16, stored to a stack table, read back by scalar
 *             loads (AVX-512); table8 the same with 8 lanes (AVX2).
 * Build and run (AVX-512 host): gcc -O2 -march=native scripts/peak/delta_walk_forms.c -o /tmp/dwf
 * && /tmp/dwf 3200 512 && /tmp/dwf 9216 4096   (SVHN ConvNet's conv7, AlexNet's fc1 shapes). */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forms_timing.h"

#define DENSITY 0.05
#define RUNS 4

static int K, CO;
static uint8_t *stream;
static int *cnt, *off;
static int8_t *x8;
static int32_t *x32;

static void build(void) {
    int *taps = malloc(sizeof(int) * K), p = 0;
    stream = calloc((size_t)CO * K + 64, 1), cnt = malloc(sizeof(int) * CO), off = malloc(sizeof(int) * CO);
    srand(1);
    for (int c = 0; c < CO; c++) {
        int nt = 0, last[RUNS] = {0};
        for (int k = 1; k < K; k++)
            if ((k % 255) && rand() < DENSITY * RAND_MAX) taps[nt++] = k;
        int per = (nt + RUNS - 1) / RUNS;
        off[c] = p;
        for (int i = 0; i < per; i++)
            for (int r = 0; r < RUNS; r++) {
                int j = r * per + i, g = 0;
                if (j < nt) {  /* run r holds taps r*per .. r*per + per - 1 */
                    g = taps[j] - last[r];
                    last[r] = taps[j];
                    if (g > 255) g = 255; /* rare at 5%: a hop; the sums stay comparable */
                }
                stream[p++] = (uint8_t)g;
            }
        cnt[c] = p - off[c];
    }
    free(taps);
}

static long scalar(void) {
    long tot = 0;
    for (int c = 0; c < CO; c++) {
        const uint8_t *s = stream + off[c];
        int64_t k0 = 0, k1 = 0, k2 = 0, k3 = 0;
        int acc = 0;
        for (int e = 0; e < cnt[c]; e += 4) {
            k0 += s[e], k1 += s[e + 1], k2 += s[e + 2], k3 += s[e + 3];
            acc += x8[k0] + x8[k1] + x8[k2] + x8[k3];
        }
        tot += acc;
    }
    return tot;
}

static long word64(void) {
    long tot = 0;
    for (int c = 0; c < CO; c++) {
        const uint8_t *s = stream + off[c];
        uint64_t k0 = 0, k1 = 0, k2 = 0, k3 = 0;
        int acc = 0, n = cnt[c], e = 0;
        for (; e + 8 <= n; e += 8) {
            uint64_t w;
            memcpy(&w, s + e, 8);
            k0 += w & 255, k1 += (w >> 8) & 255, k2 += (w >> 16) & 255, k3 += (w >> 24) & 255;
            int a = x8[k0] + x8[k1] + x8[k2] + x8[k3];
            k0 += (w >> 32) & 255, k1 += (w >> 40) & 255, k2 += (w >> 48) & 255, k3 += w >> 56;
            acc += a + x8[k0] + x8[k1] + x8[k2] + x8[k3];
        }
        for (; e < n; e += 4) {
            k0 += s[e], k1 += s[e + 1], k2 += s[e + 2], k3 += s[e + 3];
            acc += x8[k0] + x8[k1] + x8[k2] + x8[k3];
        }
        tot += acc;
    }
    return tot;
}

#ifdef __AVX512F__
/* 16 gaps -> their offsets: prefix sums over lanes i, i+4, i+8, i+12 (the 4 runs), plus each
 * run's offset before them (`base`, which moves on to the last 4 lanes). */
static inline __m512i offsets16(const uint8_t *s, __m512i *base) {
    const __m512i z = _mm512_setzero_si512();
    __m512i g = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)s));
    g = _mm512_add_epi32(g, _mm512_alignr_epi32(g, z, 12));
    g = _mm512_add_epi32(g, _mm512_alignr_epi32(g, z, 8));
    g = _mm512_add_epi32(g, *base);
    *base = _mm512_shuffle_i32x4(g, g, 0xFF);
    return g;
}

static long gather16(void) {
    long tot = 0;
    for (int c = 0; c < CO; c++) {
        const uint8_t *s = stream + off[c];
        int n = cnt[c], e = 0;
        __m512i base = _mm512_setzero_si512(), acc = _mm512_setzero_si512();
        for (; e + 16 <= n; e += 16) acc = _mm512_add_epi32(acc, _mm512_i32gather_epi32(offsets16(s + e, &base), x32, 4));
        if (e < n) {
            __mmask16 m = (__mmask16)((1u << (n - e)) - 1);
            acc = _mm512_add_epi32(acc, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets16(s + e, &base), x32, 4));
        }
        tot += _mm512_reduce_add_epi32(acc);
    }
    return tot;
}

static long table16(void) {
    long tot = 0;
    int32_t idx[16] __attribute__((aligned(64)));
    for (int c = 0; c < CO; c++) {
        const uint8_t *s = stream + off[c];
        int n = cnt[c], e = 0, acc = 0;
        __m512i base = _mm512_setzero_si512();
        for (; e + 16 <= n; e += 16) {
            _mm512_store_si512(idx, offsets16(s + e, &base));
            int a = 0;
            for (int i = 0; i < 16; i++) a += x8[idx[i]];
            acc += a;
        }
        if (e < n) {
            _mm512_store_si512(idx, offsets16(s + e, &base));
            for (int i = 0; i < n - e; i++) acc += x8[idx[i]];
        }
        tot += acc;
    }
    return tot;
}
#endif

#ifdef __AVX2__
static inline __m256i offsets8(const uint8_t *s, __m256i *base) {
    __m256i g = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)s));
    g = _mm256_add_epi32(g, _mm256_permute2x128_si256(g, g, 0x08));
    g = _mm256_add_epi32(g, *base);
    *base = _mm256_permute2x128_si256(g, g, 0x11);
    return g;
}

static long gather8(void) {
    long tot = 0;
    int32_t idx[8] __attribute__((aligned(32)));
    for (int c = 0; c < CO; c++) {
        const uint8_t *s = stream + off[c];
        int n = cnt[c], e = 0, t = 0;
        __m256i base = _mm256_setzero_si256(), acc = _mm256_setzero_si256();
        for (; e + 8 <= n; e += 8) acc = _mm256_add_epi32(acc, _mm256_i32gather_epi32(x32, offsets8(s + e, &base), 4));
        if (e < n) {
            _mm256_store_si256((__m256i *)idx, offsets8(s + e, &base));
            for (int i = 0; i < n - e; i++) t += x32[idx[i]];
        }
        _mm256_store_si256((__m256i *)idx, acc);
        for (int i = 0; i < 8; i++) t += idx[i];
        tot += t;
    }
    return tot;
}

static long table8(void) {
    long tot = 0;
    int32_t idx[8] __attribute__((aligned(32)));
    for (int c = 0; c < CO; c++) {
        const uint8_t *s = stream + off[c];
        int n = cnt[c], e = 0, acc = 0;
        __m256i base = _mm256_setzero_si256();
        for (; e + 8 <= n; e += 8) {
            _mm256_store_si256((__m256i *)idx, offsets8(s + e, &base));
            acc += (x8[idx[0]] + x8[idx[1]] + x8[idx[2]] + x8[idx[3]]) + (x8[idx[4]] + x8[idx[5]] + x8[idx[6]] + x8[idx[7]]);
        }
        if (e < n) {
            _mm256_store_si256((__m256i *)idx, offsets8(s + e, &base));
            for (int i = 0; i < n - e; i++) acc += x8[idx[i]];
        }
        tot += acc;
    }
    return tot;
}
#endif

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s K CO   (inputs, output channels)\n", argv[0]);
        return 2;
    }
    K = atoi(argv[1]), CO = atoi(argv[2]);
    int slotted = K + K / 255 + 300;
    x8 = malloc(slotted + 64), x32 = malloc(sizeof(int32_t) * (slotted + 64));
    for (int i = 0; i < slotted + 64; i++) x8[i] = (i % 255) ? (int8_t)(rand() % 256 - 128) : 0, x32[i] = x8[i];
    build();
    Form forms[] = {
        {"scalar", scalar}, {"word64", word64},
#ifdef __AVX512F__
        {"gather16", gather16}, {"table16", table16},
#endif
#ifdef __AVX2__
        {"gather8", gather8}, {"table8", table8},
#endif
    };
    printf("K %d, %d channels, %.1f entries a list\n", K, CO, (double)off[CO - 1] / (CO - 1));
    return time_forms(forms, sizeof(forms) / sizeof(forms[0]), 50);
}
