/* bench_gemm: float32 GEMM, tgrad (tg__gemm_f32) against OpenBLAS (cblas_sgemm,
 * a comparison only) on the shapes of ../shared/bench/shapes_gemm.txt, at the
 * same thread count (tg_set_num_threads, openblas_set_num_threads), measured
 * in the same run: the two alternate rep by rep, each rep enough calls to last
 * about --secs seconds (with more than one thread, a short pause before each
 * rep lets the other library's idle threads stop spinning). Prints, per shape,
 * the median GFLOP/s (2*M*N*K per call) of each, the ratio tgrad / OpenBLAS
 * and the largest difference between their results relative to the largest
 * |C|; then one line per figure for bench/compare.py:
 *   BENCH name=sgemm_<shape> impl=tgrad|openblas unit=GFLOP/s median=.. min=.. max=.. threads=T
 *
 * Usage: bench_gemm [shapes.txt] [--threads N] [--reps R] [--secs S]
 *                   [--only NAME[,NAME]] [--cpu]
 * --cpu times by process CPU time (steadier on a loaded machine; 1 thread only).
 * Default shapes file: ../shared/bench/shapes_gemm.txt (run from the repo root). */
#include "tgrad.h"
#include "ops/kernels/cpu.h"
#include "ops/kernels/gemm.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

typedef struct shape {
    bool ta, tb;
    int64_t M, N, K;
    const float *A, *B;
    float *C;
} shape;

static void run_tgrad(const shape *s)
{
    tg__gemm_f32(s->ta, s->tb, s->M, s->N, s->K, 1.0f, s->A, s->ta ? s->M : s->K, s->B,
                 s->tb ? s->K : s->N, 0.0f, s->C, s->N);
}

static void run_openblas(const shape *s)
{
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                (blasint)s->M, (blasint)s->N, (blasint)s->K, 1.0f, s->A,
                (blasint)(s->ta ? s->M : s->K), s->B, (blasint)(s->tb ? s->K : s->N), 0.0f, s->C,
                (blasint)s->N);
}

/* Calls per rep so that one rep lasts about secs (3 warm-up calls first). */
static long calibrate(void (*fn)(const shape *), const shape *s, double secs)
{
    for (int i = 0; i < 3; i++)
        fn(s);
    long n = 1;
    double t;
    for (;;) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            fn(s);
        t = now() - t0;
        if (t > 0.02)
            break;
        n *= 4;
    }
    n = (long)((double)n * secs / t);
    return n < 1 ? 1 : n;
}

/* Sleeps for secs: lets the other library's idle threads stop spinning
 * (OpenBLAS's wait about 0.1 s, libgomp's a few ms) before a rep starts. */
static void settle(double secs)
{
    struct timespec ts = {0, (long)(secs * 1e9)};
    nanosleep(&ts, NULL);
}

static double rep(void (*fn)(const shape *), const shape *s, long n)
{
    double t0 = now();
    for (long i = 0; i < n; i++)
        fn(s);
    return (now() - t0) / (double)n;
}

/* Sorts t[reps] (seconds per call) and returns the median. */
static double median(double *t, int reps)
{
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

/* True if only is empty or one of its comma-separated names is part of
 * "sgemm_<shape>". */
static bool selected(const char *shape_name, const char *only)
{
    if (!*only)
        return true;
    char name[96], item[96];
    snprintf(name, sizeof name, "sgemm_%s", shape_name);
    for (const char *p = only; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0 && n < sizeof item) {
            memcpy(item, p, n);
            item[n] = '\0';
            if (strstr(name, item))
                return true;
        }
        p += n + (p[n] == ',');
    }
    return false;
}

static float *random_floats(int64_t n, unsigned *seed)
{
    float *p = malloc((size_t)n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)((double)(*seed >> 8) / 16777216.0 * 2.0 - 1.0);
    }
    return p;
}

int main(int argc, char **argv)
{
    bench_opts o = {.threads = 1, .reps = 7, .secs = 0.2, .only = "",
                    .path = "../shared/bench/shapes_gemm.txt"};
    int rc = parse_opts(argc, argv, &o, "bench_gemm");
    if (rc)
        return rc;
    const char *path = o.path, *only = o.only;
    const int threads = o.threads, reps = o.reps;
    const double secs = o.secs;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_gemm: cannot open %s\n", path);
        return 1;
    }
    openblas_set_num_threads(threads);
    printf("# SGEMM GFLOP/s, tgrad (%s path) vs OpenBLAS %s, threads=%d, %d reps of ~%.2g s, "
           "shapes %s\n",
           tg__cpu_name(tg__cpu()), openblas_get_corename(), tg_num_threads(), reps, secs, path);
    printf("%-14s %2s %2s %6s %6s %6s %9s %9s %6s %9s\n", "shape", "tA", "tB", "M", "N", "K",
           "tgrad", "OpenBLAS", "ratio", "max diff");
    double *tt = malloc((size_t)reps * sizeof *tt), *to = malloc((size_t)reps * sizeof *to);
    char line[512], lines[64][256];
    int n_lines = 0;
    double worst = HUGE_VAL;
    unsigned seed = 12345u;
    while (fgets(line, sizeof line, f)) {
        char nm[64], ta, tb;
        long long M, N, K;
        if (line[0] == '#' ||
            sscanf(line, "%63s %c %c %lld %lld %lld", nm, &ta, &tb, &M, &N, &K) != 6 ||
            !selected(nm, only))
            continue;
        shape s = {ta == 'T', tb == 'T', M, N, K, NULL, NULL, NULL};
        float *A = random_floats(M * K, &seed), *B = random_floats(K * N, &seed);
        float *C1 = malloc((size_t)(M * N) * sizeof *C1),
              *C2 = malloc((size_t)(M * N) * sizeof *C2);
        s.A = A;
        s.B = B;
        /* Agreement of the two results (not a test, a sanity check). */
        s.C = C1;
        run_tgrad(&s);
        s.C = C2;
        run_openblas(&s);
        double diff = 0, big = 0;
        for (long long i = 0; i < M * N; i++) {
            diff = fmax(diff, fabs((double)C1[i] - (double)C2[i]));
            big = fmax(big, fabs((double)C2[i]));
        }
        s.C = C1;
        long nt_calls = calibrate(run_tgrad, &s, secs);
        s.C = C2;
        long no_calls = calibrate(run_openblas, &s, secs);
        for (int r = 0; r < reps; r++) {
            if (threads > 1)
                settle(0.15);
            s.C = C1;
            tt[r] = rep(run_tgrad, &s, nt_calls);
            if (threads > 1)
                settle(0.02);
            s.C = C2;
            to[r] = rep(run_openblas, &s, no_calls);
        }
        const double flop = 2.0 * (double)M * (double)N * (double)K;
        double mt = median(tt, reps), mo = median(to, reps);
        double gt = flop / mt * 1e-9, go = flop / mo * 1e-9;
        printf("%-14s %2c %2c %6lld %6lld %6lld %9.1f %9.1f %6.2f %9.2g\n", nm, ta, tb, M, N, K, gt,
               go, gt / go, big > 0 ? diff / big : diff);
        fflush(stdout);
        if (gt / go < worst)
            worst = gt / go;
        if (n_lines + 2 <= 64) {
            snprintf(lines[n_lines++], sizeof lines[0],
                     "BENCH name=sgemm_%s impl=tgrad unit=GFLOP/s median=%.4g min=%.4g "
                     "max=%.4g threads=%d",
                     nm, gt, flop / tt[reps - 1] * 1e-9, flop / tt[0] * 1e-9, threads);
            snprintf(lines[n_lines++], sizeof lines[0],
                     "BENCH name=sgemm_%s impl=openblas unit=GFLOP/s median=%.4g min=%.4g "
                     "max=%.4g threads=%d",
                     nm, go, flop / to[reps - 1] * 1e-9, flop / to[0] * 1e-9, threads);
        }
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
    fclose(f);
    if (worst < HUGE_VAL)
        printf("# lowest ratio tgrad / OpenBLAS: %.2f\n", worst);
    for (int i = 0; i < n_lines; i++)
        printf("%s\n", lines[i]);
    free(tt);
    free(to);
    return 0;
}
