/* Walks of one sign's lists of a ternary dense layer over inputs of which a share is zero (a
 * ReLU's output), timed on one core: what primitives/column_lists.py's docstring records.
 *
 * Weights: +1 with probability 5% (a layer at 90% zeros has that many of one sign), else 0.
 * Inputs: 8-bit codes, `zeros` of them 0, the rest 1-255. Each form returns the sum of its
 * channels' sums, which must equal the gather walk's (checked: exit 1 otherwise).
 *   gather      the delta walk (delta_walk.py, pointwise): per channel, 4 running sums over a
 *               slotted input, a byte gap, a byte load and an add a tap, zero inputs included;
 *   scatter1    by input (column lists), a zero input skipped, one running sum over the channels;
 *   scatter4    the column walk (column_walk.py): 4 running sums taking the entries in turn over
 *               slotted channels (hops onto spare accumulators), the last count % 4 one each;
 *   scatter4all the same with no zero test (every input walked).
 * Build and run: gcc -O2 -march=native scripts/peak/zero_skip_forms.c -o /tmp/zsf &&
 * /tmp/zsf 3200 512 0.5   (SVHN ConvNet's conv7 shape; 0.51 of its inputs are zero on the
 * bench's input) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forms_timing.h"

#define DENSITY 0.05
#define SLOT 255

static int K, CO;
static uint8_t *x, *xs;                       /* the inputs; slotted (a zero every SLOT places) */
static uint8_t *gs, *cs1, *cs4;               /* the streams: by channel; by input, 1 and 4 sums */
static int *goff, *gcnt, *ccnt1, *ccnt4, (*gstart)[4];
static int32_t *y, *ys;                       /* accumulators; slotted */

static int slot(int i) { return i + i / (SLOT - 1) + 1; }

/* entries reaching sorted slotted `targets` from `from` (a multiple of SLOT) with `sums` running
 * sums taking the entries in turn (a gap above 255 hops to the next multiple of SLOT first);
 * returns the count */
static int entries(const int *targets, int n, int sums, int from, uint8_t *out) {
    int at[4] = {from, from, from, from}, e = 0;
    for (int i = 0; i < n; e++) {
        int r = e % sums, gap = targets[i] - at[r];
        if (gap > 255) gap = (at[r] / SLOT + 1) * SLOT - at[r];
        else i++;
        out[e] = (uint8_t)gap, at[r] += gap;
    }
    return e;
}

static void build(double zeros) {
    uint8_t *w = calloc((size_t)CO * K, 1);
    srand(1);
    for (size_t i = 0; i < (size_t)CO * K; i++) w[i] = rand() < DENSITY * RAND_MAX;
    x = malloc(K), xs = calloc(slot(K) + 64, 1);
    for (int k = 0; k < K; k++) x[k] = rand() < zeros * RAND_MAX ? 0 : 1 + rand() % 255, xs[slot(k)] = x[k];
    int *t = malloc(sizeof(int) * (K > CO ? K : CO)), p = 0, q1 = 0, q4 = 0;
    gs = malloc((size_t)CO * K + 64), goff = malloc(sizeof(int) * CO), gcnt = malloc(sizeof(int) * CO);
    gstart = malloc(sizeof(int[4]) * CO);
    for (int c = 0; c < CO; c++) { /* by channel: the delta walk's 4 sums, each over a run of the taps
                                       from the zero slot below its first (delta_lists), led by zero entries */
        int n = 0;
        for (int k = 0; k < K; k++)
            if (w[(size_t)c * K + k]) t[n++] = slot(k);
        int len[4], m = 0;
        uint8_t run[4][4096];
        for (int r = 0; r < 4; r++) {
            int lo = r * n / 4, hi = (r + 1) * n / 4;
            gstart[c][r] = hi > lo ? t[lo] / SLOT * SLOT : 0;
            len[r] = entries(t + lo, hi - lo, 1, gstart[c][r], run[r]);
            if (len[r] > m) m = len[r];
        }
        goff[c] = p;
        for (int i = 0; i < m; i++)
            for (int r = 0; r < 4; r++) gs[p++] = i < m - len[r] ? 0 : run[r][i - (m - len[r])]; /* a lead 0 reads the start slot's zero */
        gcnt[c] = p - goff[c];
    }
    cs1 = malloc((size_t)CO * K + 64), cs4 = malloc((size_t)CO * K + 64);
    ccnt1 = malloc(sizeof(int) * K), ccnt4 = malloc(sizeof(int) * K);
    for (int k = 0; k < K; k++) { /* by input */
        int n = 0;
        for (int c = 0; c < CO; c++)
            if (w[(size_t)c * K + k]) t[n++] = slot(c);
        q1 += ccnt1[k] = entries(t, n, 1, 0, cs1 + q1);
        q4 += ccnt4[k] = entries(t, n, 4, 0, cs4 + q4);
    }
    y = calloc(slot(CO) + 64, sizeof(int32_t)), ys = y;
    printf("K %d, %d channels, %.2f of the inputs zero: entries by channel %d (runs led by zeros), by input %d / %d (1 / 4 sums)\n",
           K, CO, zeros, p, q1, q4);
    free(w), free(t);
}

static long total(void) {
    long tot = 0;
    for (int c = 0; c < CO; c++) tot += ys[slot(c)];
    return tot;
}

static long gather(void) {
    long tot = 0;
    for (int c = 0; c < CO; c++) {
        const uint8_t *s = gs + goff[c];
        int64_t k0 = gstart[c][0], k1 = gstart[c][1], k2 = gstart[c][2], k3 = gstart[c][3];
        int acc = 0;
        for (int e = 0; e < gcnt[c]; e += 4) {
            k0 += s[e], k1 += s[e + 1], k2 += s[e + 2], k3 += s[e + 3];
            acc += xs[k0] + xs[k1] + xs[k2] + xs[k3];
        }
        tot += acc;
    }
    return tot;
}

static long scatter1(void) {
    memset(ys, 0, sizeof(int32_t) * (slot(CO) + 1));
    const uint8_t *s = cs1;
    for (int k = 0; k < K; k++) {
        int v = x[k], n = ccnt1[k];
        if (v) {
            int64_t at = 0;
            for (int e = 0; e < n; e++) at += s[e], ys[at] += v;
        }
        s += n;
    }
    return total();
}

static inline void walk4(const uint8_t *s, int n, int v) {
    int64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    int e = 0;
    for (; e + 4 <= n; e += 4) {
        c0 += s[e], c1 += s[e + 1], c2 += s[e + 2], c3 += s[e + 3];
        ys[c0] += v, ys[c1] += v, ys[c2] += v, ys[c3] += v;
    }
    switch (n - e) {
    case 3: c2 += s[e + 2], ys[c2] += v; /* fallthrough */
    case 2: c1 += s[e + 1], ys[c1] += v; /* fallthrough */
    case 1: c0 += s[e], ys[c0] += v;
    }
}

static long scatter4(void) {
    memset(ys, 0, sizeof(int32_t) * (slot(CO) + 1));
    const uint8_t *s = cs4;
    for (int k = 0; k < K; k++) {
        if (x[k]) walk4(s, ccnt4[k], x[k]);
        s += ccnt4[k];
    }
    return total();
}

static long scatter4all(void) {
    memset(ys, 0, sizeof(int32_t) * (slot(CO) + 1));
    const uint8_t *s = cs4;
    for (int k = 0; k < K; k++) walk4(s, ccnt4[k], x[k]), s += ccnt4[k];
    return total();
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s K CO ZEROS   (inputs, output channels, share of the inputs that are zero)\n", argv[0]);
        return 2;
    }
    K = atoi(argv[1]), CO = atoi(argv[2]);
    build(atof(argv[3]));
    Form forms[] = {{"gather", gather}, {"scatter1", scatter1}, {"scatter4", scatter4}, {"scatter4all", scatter4all}};
    return time_forms(forms, 4, 300);
}
