/* Register-only microbenchmarks of one core's peaks for one x86 ISA class: the rooflines that
 * scripts/bench.py compares every layer with.
 *
 * Built once per class with that class's -march (bench.py: haswell for x86-avx2,
 * skylake-avx512 for x86-avx512, znver4 for x86-avx512-vnni), so each measures the
 * instructions our kernels of that class run:
 *   dot     the int8 dot product of the class's int8 kernels: 512-bit vpdpbusd (VNNI, 64
 *           multiply-accumulates an instruction), else vpmaddwd on int16 pairs + vpaddd
 *           (16 a ymm, 32 a zmm; the kernels feed int16 codes so nothing saturates);
 *   narrow  the int8 dot product of layers whose weights fit in 7 bits (binary and ternary codes):
 *           vpdpbusd again with VNNI, else vpmaddubsw on uint8 codes, its int16 pair sums widened
 *           by vpmaddwd against ones, + vpaddd (32 multiply-accumulates a ymm, 64 a zmm);
 *   add16   int16 vector adds (vpaddw: the ternary kernels' accumulation), registers only;
 *   ldadd16 the same adds with one operand loaded from an L1-resident buffer at a moving
 *           unaligned offset, as the sparse kernels read their shifted input vectors;
 *   fma     fp32 fused multiply-adds (what an FP32 peer can do at best);
 *   gather  scalar gather-adds: a 16-bit index loaded, the byte it points at loaded and added
 *           (the sparse kernels' inner loop on 1x1 outputs and dense layers, where no vector of
 *           output positions shares a tap: one entry of an index row per add).
 * The loops are inline assembly: a C loop over an array of accumulators is left on the stack by
 * GCC (its stores then bound the loop), and C lets the compiler merge identical products. 12
 * independent chains hide every latency. Time is this thread's CPU time, so another process
 * sharing the core does not lower the figures. Prints one JSON object, per second on ONE core. */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define V "zmm"
#define VBYTES 64
#define XOR_SUFFIX "d"  /* EVEX forms of the bitwise ops and moves name their lane width */
#define MOV_SUFFIX "32"
#else
#define XOR_SUFFIX ""
#define MOV_SUFFIX ""
#define V "ymm"
#define VBYTES 32
#endif
#define R(n) "%%" V #n
#define EACH12(X) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define EACH6(X) X(2, 8) X(3, 9) X(4, 10) X(5, 11) X(6, 12) X(7, 13)
#define CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", \
                 "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory"
#define STEPS 50000000L

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int16_t buf[8192] __attribute__((aligned(64)));  /* 16 KB: L1-resident */

/* 12 instructions per step: ops per second of the instruction */
#define TIMED(body, extra_in)                                                                     \
    do {                                                                                          \
        long n = STEPS;                                                                           \
        double t0 = cpu_now();                                                                    \
        __asm__ volatile("1:\n\t" body "dec %0\n\tjnz 1b\n\t" : "+r"(n) : extra_in : CLOBBERS);  \
        return 12.0 * STEPS / (cpu_now() - t0);                                                   \
    } while (0)

static double add16_instr(void) {
#define ADD(k) "vpaddw " R(0) ", " R(k) ", " R(k) "\n\t"
    TIMED(EACH12(ADD), "r"(buf));
}

static double ldadd16_instr(void) {
/* offsets 2*(37k+1): unaligned, spread over the buffer as the taps of a sparse row are */
#define LDADD(k) "vpaddw " #k "*74+2(%1), " R(k) ", " R(k) "\n\t"
    TIMED(EACH12(LDADD), "r"(buf));
}

static double fma_instr(void) {
#define FMA(k) "vfmadd231ps " R(0) ", " R(1) ", " R(k) "\n\t"
    TIMED(EACH12(FMA), "r"(buf));
}

/* 12 gather-adds a step into 4 chains; the indices (set in main) point across the buffer */
static double gather_instr(void) {
#define GATHER(k, a) "movzwl " #k "*2(%1), %%eax\n\tmovzbl (%1,%%rax), %%eax\n\taddl %%eax, %%" a "\n\t"
#define GATHER4(k) GATHER(k, "r8d") GATHER(k##1, "r9d") GATHER(k##2, "r10d")
    long n = STEPS;
    double t0 = cpu_now();
    __asm__ volatile("1:\n\t" GATHER4(1) GATHER4(2) GATHER4(3) GATHER4(4) "dec %0\n\tjnz 1b\n\t"
                     : "+r"(n) : "r"(buf) : "rax", "r8", "r9", "r10", "cc", "memory");
    return 12.0 * STEPS / (cpu_now() - t0);
}

static double dot_instr(void) {
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
#define DOT(k) "vpdpbusd " R(0) ", " R(1) ", " R(k) "\n\t"
    TIMED(EACH12(DOT), "r"(buf));
#else
/* 6 products into 6 accumulators, twice: 12 vpmaddwd (each followed by its vpaddd) a step */
#define MADD(k, a) "vpmaddwd " R(0) ", " R(1) ", " R(k) "\n\t"
#define ACC(k, a) "vpaddd " R(k) ", " R(a) ", " R(a) "\n\t"
    TIMED(EACH6(MADD) EACH6(ACC) EACH6(MADD) EACH6(ACC), "r"(buf));
#endif
}

static double narrow_dot_instr(void) {
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
    return dot_instr();
#else
/* 6 chains, twice: vpmaddubsw into a temporary (8-13), vpmaddwd against ones (14), vpaddd into
 * the accumulator (2-7): 12 vpmaddubsw a step */
#define UBSW(k, a) "vpmaddubsw " R(0) ", " R(1) ", " R(a) "\n\t"
#define WIDEN(k, a) "vpmaddwd " R(14) ", " R(a) ", " R(a) "\n\t"
#define ACCW(k, a) "vpaddd " R(a) ", " R(k) ", " R(k) "\n\t"
    TIMED(EACH6(UBSW) EACH6(WIDEN) EACH6(ACCW) EACH6(UBSW) EACH6(WIDEN) EACH6(ACCW), "r"(buf));
#endif
}

/* Binary and ternary weights (tvm_deepchip/primitives/pair_sums): vpmaddubsw's int16 pair sums
 * added straight into int16 accumulators (vpaddw), 6 chains twice: 12 vpmaddubsw a step */
static double pair_dot_instr(void) {
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
    return dot_instr();
#else
#define PAIRADD(k, a) "vpaddw " R(a) ", " R(k) ", " R(k) "\n\t"
    TIMED(EACH6(UBSW) EACH6(PAIRADD) EACH6(UBSW) EACH6(PAIRADD), "r"(buf));
#endif
}

/* The XNOR-popcount step of the binary kernels: XOR with a loaded (L1) weight vector, popcount,
 * accumulate. With AVX-512 VPOPCNTDQ: vpxord + vpopcntd + vpaddd on 32-bit lanes. Without it (AVX2,
 * AVX-512 before Ice Lake): the nibble lookup (vpshufb on the low and high nibbles of each byte)
 * into byte counters, the cheapest form (the 32-bit sums they feed are amortized: vpsadbw once
 * every 31 steps, left out). Returns vectors per second. */
static const uint8_t nibble_counts[64] __attribute__((aligned(64))) = {
    0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};
static const uint8_t low_nibbles[64] __attribute__((aligned(64))) = {
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15};

static double xnor_instr(void) {
    long n = STEPS;
    double t0;
#if defined(__AVX512VPOPCNTDQ__)
#define XNOR(k) "vpxord " #k "*64(%1), " R(0) ", " R(14) "\n\t" "vpopcntd " R(14) ", " R(15) "\n\t" \
                "vpaddd " R(15) ", " R(k) ", " R(k) "\n\t"
    t0 = cpu_now();
    __asm__ volatile("1:\n\t" EACH12(XNOR) "dec %0\n\tjnz 1b\n\t" : "+r"(n) : "r"(buf) : CLOBBERS);
#else
/* zmm/ymm 0: nibble counts, 1: low-nibble mask; 14, 15: the two nibbles of one vector */
#define XNOR(k) "vpxor" XOR_SUFFIX " " #k "*64(%1), " R(0) ", " R(14) "\n\t" "vpsrlw $4, " R(14) ", " R(15) "\n\t" \
                "vpand" XOR_SUFFIX " " R(1) ", " R(14) ", " R(14) "\n\t" "vpand" XOR_SUFFIX " " R(1) ", " R(15) ", " R(15) "\n\t" \
                "vpshufb " R(14) ", " R(0) ", " R(14) "\n\t" "vpshufb " R(15) ", " R(0) ", " R(15) "\n\t" \
                "vpaddb " R(14) ", " R(k) ", " R(k) "\n\t" "vpaddb " R(15) ", " R(k) ", " R(k) "\n\t"
    __asm__ volatile("vmovdqu" MOV_SUFFIX " (%0), " R(0) "\n\tvmovdqu" MOV_SUFFIX " (%1), " R(1)
                     :: "r"(nibble_counts), "r"(low_nibbles) : CLOBBERS);
    t0 = cpu_now();
    __asm__ volatile("1:\n\t" EACH12(XNOR) "dec %0\n\tjnz 1b\n\t" : "+r"(n) : "r"(buf) : CLOBBERS);
#endif
    return 12.0 * STEPS / (cpu_now() - t0);
}

int main(void) {
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
    const char *kind = "vpdpbusd zmm (VNNI)";
    const double macs = 64;
    const char *narrow_kind = kind;
    const double narrow_macs = macs;
    const char *pair_kind = kind;
#else
    const char *kind = VBYTES == 64 ? "vpmaddwd+vpaddd zmm (int16 pairs)" : "vpmaddwd+vpaddd ymm (int16 pairs)";
    const double macs = VBYTES / 2;
    const char *narrow_kind = VBYTES == 64 ? "vpmaddubsw+vpmaddwd+vpaddd zmm (7-bit weights)"
                                           : "vpmaddubsw+vpmaddwd+vpaddd ymm (7-bit weights)";
    const double narrow_macs = VBYTES;
    const char *pair_kind = VBYTES == 64 ? "vpmaddubsw+vpaddw zmm (weights of 1, int16 pair sums)"
                                         : "vpmaddubsw+vpaddw ymm (weights of 1, int16 pair sums)";
#endif
    for (int i = 0; i < 8192; i++) buf[i] = (int16_t)((i * 2654435761u >> 7) & 16383);  /* byte offsets < 16 KB */
    /* best of 3 */
    double dot = 0, narrow = 0, pair = 0, add = 0, ldadd = 0, fma = 0, gather = 0, xnor = 0, v;
    for (int r = 0; r < 3; r++) {
        if ((v = dot_instr()) > dot) dot = v;
        if ((v = narrow_dot_instr()) > narrow) narrow = v;
        if ((v = pair_dot_instr()) > pair) pair = v;
        if ((v = add16_instr()) > add) add = v;
        if ((v = ldadd16_instr()) > ldadd) ldadd = v;
        if ((v = fma_instr()) > fma) fma = v;
        if ((v = gather_instr()) > gather) gather = v;
        if ((v = xnor_instr()) > xnor) xnor = v;
    }
    printf("{\"dot_kind\": \"%s\", \"vector_bytes\": %d, \"dot_macs_per_s\": %.4g, \"narrow_dot_kind\": \"%s\", "
           "\"narrow_dot_macs_per_s\": %.4g, \"pair_dot_kind\": \"%s\", \"pair_dot_macs_per_s\": %.4g, \"add16_per_s\": %.4g, "
           "\"ldadd16_per_s\": %.4g, \"fma_per_s\": %.4g, \"gather_per_s\": %.4g, \"xnor_bits_per_s\": %.4g}\n",
           kind, VBYTES, dot * macs, narrow_kind, narrow * narrow_macs, pair_kind, pair * narrow_macs, add * VBYTES / 2, ldadd * VBYTES / 2, fma * VBYTES / 4,
           gather, xnor * VBYTES * 8);
    return 0;
}
