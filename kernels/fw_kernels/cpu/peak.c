/* The int8 dot-product peak of this CPU: a loop of nothing but vpdpbusd (512-bit, 64
 * unsigned x signed byte products summed into 16 int32 lanes: 128 operations).
 *
 * The instruction's latency (~3.5 cycles on Zen 5) is longer than its issue interval, so a
 * loop over one or two accumulators measures the latency and shows about half the peak;
 * with 12 independent accumulators the loop is bound by throughput. The GEMM kernels are
 * judged against this figure (benchmarks/int8_peak.py, `fw bench`), so it must be the real
 * peak: `accumulators` lets the probe show both.
 */
#include "fw_cpu.h"

#include <omp.h>
#include <time.h>

#if defined(__AVX512VNNI__)
/* One round: vpdpbusd into accumulators zmm0.. from the same two sources (their values do
 * not matter: integer dot products take the same time for any bytes). Written in assembly
 * so that the compiler neither spills the accumulators nor adds copies between rounds. */
#define DP(n) "vpdpbusd %%zmm17, %%zmm16, %%zmm" #n "\n\t"
#define ROUND_1 DP(0)
#define ROUND_2 ROUND_1 DP(1)
#define ROUND_4 ROUND_2 DP(2) DP(3)
#define ROUND_8 ROUND_4 DP(4) DP(5) DP(6) DP(7)
#define ROUND_12 ROUND_8 DP(8) DP(9) DP(10) DP(11)
#define ROUND_16 ROUND_12 DP(12) DP(13) DP(14) DP(15)
#define DEFINE_LOOP(ACC)                                                                           \
static void peak_loop_##ACC(int64_t iterations) {                                                  \
    __asm__ volatile("vpxord %%zmm16, %%zmm16, %%zmm16\n\t"                                        \
                     "vpternlogd $0xff, %%zmm17, %%zmm17, %%zmm17\n\t"                             \
                     "1:\n\t" ROUND_##ACC "dec %0\n\t" "jnz 1b"                                    \
                     : "+r"(iterations) :                                                          \
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",     \
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16",      \
                       "xmm17", "cc");                                                             \
}
DEFINE_LOOP(1)
DEFINE_LOOP(2)
DEFINE_LOOP(4)
DEFINE_LOOP(8)
DEFINE_LOOP(12)
DEFINE_LOOP(16)

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Runs the loop on `threads` OpenMP threads at once; returns the operations done (each
 * vpdpbusd is 128, on each thread that ran), or 0 for an accumulator count not built (1,
 * 2, 4, 8, 12, 16 are). seconds[i] (room for `threads`) receives the CPU time thread i ran
 * its loop: on a shared machine wall time also counts the time a thread waited for a
 * core, CPU time only what the core did. */
int64_t fw_int8_peak(int64_t iterations, int64_t accumulators, int64_t threads, double *seconds) {
    if (iterations < 1 || threads < 1) return 0;
    if (accumulators != 1 && accumulators != 2 && accumulators != 4 && accumulators != 8 &&
        accumulators != 12 && accumulators != 16)
        return 0;
    int64_t team = 0;  /* the threads that ran (OpenMP may give fewer than asked) */
    _Pragma("omp parallel num_threads(threads) reduction(+ : team)")
    {
        team += 1;
        const double start = thread_seconds();
        switch (accumulators) {
        case 1: peak_loop_1(iterations); break;
        case 2: peak_loop_2(iterations); break;
        case 4: peak_loop_4(iterations); break;
        case 8: peak_loop_8(iterations); break;
        case 12: peak_loop_12(iterations); break;
        default: peak_loop_16(iterations); break;
        }
        seconds[omp_get_thread_num()] = thread_seconds() - start;
    }
    return iterations * accumulators * team * 128;
}

int fw_int8_peak_available(void) { return 1; }
#else
int64_t fw_int8_peak(int64_t iterations, int64_t accumulators, int64_t threads, double *seconds) {
    (void)iterations; (void)accumulators; (void)threads; (void)seconds;
    return 0;
}

int fw_int8_peak_available(void) { return 0; }
#endif
