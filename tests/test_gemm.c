/* The GEMM kernels (ops/kernels/gemm.h) on every CPU path this machine has
 * (generic, AVX2, AVX-512, forced through tg__cpu_force), both dtypes, against
 * a float64 reference: all four transpose combinations, edge sizes around the
 * micro-tile (1, mr-1, mr, mr+1, odd sizes), K = 1, K over several kc blocks,
 * M and N over several mc / nc blocks, the small-product and the packed paths,
 * alpha / beta values including beta == 0 over a NaN-filled C, padded leading
 * dimensions and unaligned pointers; results bitwise identical for 1, 2 and 3
 * threads; the strided batch; the CPU level hooks. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/kernels/cpu.h"
#include "ops/kernels/gemm.h"
#include "ops/kernels/gemm_impl.h"
#include "ops/kernels/threads.h"

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state;

static double urand(void) /* uniform in [-1, 1), a multiple of 2^-12 (exact in float) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(int)((rng_state >> 40) % 8192) / 4096.0 - 1.0;
}

/* Value in a leading-dimension gap: never read into a result, never written. */
#define GAP 1234.5

typedef struct gcase {
    bool ta, tb;
    int64_t M, N, K;
    double alpha, beta;
    bool nan_c; /* C starts NaN (only with beta == 0) */
    int pad;    /* extra columns in each of A, B, C (leading dimension > width) */
} gcase;

/* One product in dtype T on the current CPU path, checked against float64:
 * |got - want| <= (K + 2) * eps * (|alpha| sum |a||b| + |beta c|), gaps kept.
 * Returns false and describes the worst element in msg. */
#define RUN_CASE(T, SFX, EPS)                                                                      \
    static bool run_case_##SFX(const gcase *g, char *msg, size_t msg_size)                         \
    {                                                                                              \
        const int64_t ar = g->ta ? g->K : g->M, ac = g->ta ? g->M : g->K;                          \
        const int64_t br = g->tb ? g->N : g->K, bc = g->tb ? g->K : g->N;                          \
        const int64_t lda = ac + g->pad, ldb = bc + g->pad, ldc = g->N + g->pad;                   \
        /* One element past malloc's alignment: no operand is 16-byte aligned. */                  \
        T *Abuf = malloc((size_t)(ar * lda + 1) * sizeof(T));                                      \
        T *Bbuf = malloc((size_t)(br * ldb + 1) * sizeof(T));                                      \
        T *Cbuf = malloc((size_t)(g->M * ldc + 1) * sizeof(T));                                    \
        double *want = malloc((size_t)(g->M * g->N) * sizeof(double));                             \
        double *mag = malloc((size_t)(g->M * g->N) * sizeof(double));                              \
        cr_assert(Abuf &&Bbuf &&Cbuf &&want &&mag);                                                \
        T *A = Abuf + 1, *B = Bbuf + 1, *C = Cbuf + 1;                                             \
        for (int64_t i = 0; i < ar * lda; i++)                                                     \
            A[i] = (T)(i % lda < ac ? urand() : GAP);                                              \
        for (int64_t i = 0; i < br * ldb; i++)                                                     \
            B[i] = (T)(i % ldb < bc ? urand() : GAP);                                              \
        for (int64_t i = 0; i < g->M * ldc; i++)                                                   \
            C[i] = (T)(i % ldc >= g->N ? GAP : g->nan_c ? (double)NAN : urand());                  \
        for (int64_t i = 0; i < g->M; i++)                                                         \
            for (int64_t j = 0; j < g->N; j++) {                                                   \
                double s = 0, m = 0;                                                               \
                for (int64_t k = 0; k < g->K; k++) {                                               \
                    double a = (double)(g->ta ? A[k * lda + i] : A[i * lda + k]);                  \
                    double b = (double)(g->tb ? B[j * ldb + k] : B[k * ldb + j]);                  \
                    s += a * b;                                                                    \
                    m += fabs(a * b);                                                              \
                }                                                                                  \
                double c = (double)C[i * ldc + j];                                                 \
                want[i * g->N + j] = g->alpha * s + (g->beta == 0 ? 0 : g->beta * c);              \
                mag[i * g->N + j] = fabs(g->alpha) * m + (g->beta == 0 ? 0 : fabs(g->beta * c));   \
            }                                                                                      \
        tg__gemm_##SFX(g->ta, g->tb, g->M, g->N, g->K, (T)g->alpha, A, lda, B, ldb, (T)g->beta, C, \
                       ldc);                                                                       \
        double worst = 0;                                                                          \
        int64_t wi = -1;                                                                           \
        bool gaps = true;                                                                          \
        for (int64_t i = 0; i < g->M; i++)                                                         \
            for (int64_t j = 0; j < ldc; j++) {                                                    \
                double got = (double)C[i * ldc + j];                                               \
                if (j >= g->N) {                                                                   \
                    gaps = gaps && got == GAP;                                                     \
                    continue;                                                                      \
                }                                                                                  \
                double w = want[i * g->N + j];                                                     \
                double tol = (double)(g->K + 2) * (EPS)*mag[i * g->N + j] + 1e-300;                \
                double r = fabs(got - w) / tol;                                                    \
                if (!(r <= 1.0) && !(r <= worst)) { /* NaN counts as worst */                      \
                    worst = isnan(r) ? HUGE_VAL : r;                                               \
                    wi = i * g->N + j;                                                             \
                }                                                                                  \
            }                                                                                      \
        bool ok = wi < 0 && gaps;                                                                  \
        if (!ok)                                                                                   \
            snprintf(msg, msg_size,                                                                \
                     "%s %s%s M=%lld N=%lld K=%lld alpha=%g beta=%g%s pad=%d: %s%s "               \
                     "(element %lld: got %.9g want %.9g, %.3g x tolerance)",                       \
                     #SFX, g->ta ? "T" : "N", g->tb ? "T" : "N", (long long)g->M, (long long)g->N, \
                     (long long)g->K, g->alpha, g->beta, g->nan_c ? " (C NaN)" : "", g->pad,       \
                     gaps ? "" : "gap written; ", wi < 0 ? "" : "wrong value", (long long)wi,      \
                     wi < 0 ? 0.0 : (double)C[wi / g->N * ldc + wi % g->N],                        \
                     wi < 0 ? 0.0 : want[wi], worst);                                              \
        free(Abuf);                                                                                \
        free(Bbuf);                                                                                \
        free(Cbuf);                                                                                \
        free(want);                                                                                \
        free(mag);                                                                                 \
        return ok;                                                                                 \
    }

RUN_CASE(float, f32, 0x1p-24)
RUN_CASE(double, f64, 0x1p-53)

static bool run_case(const gcase *g, bool f64, char *msg, size_t n)
{
    return f64 ? run_case_f64(g, msg, n) : run_case_f32(g, msg, n);
}

/* alpha / beta pairs rotated over the cases: beta == 0 over NaN, beta == 1,
 * general values, negative alpha. */
static const struct {
    double alpha, beta;
    bool nan_c;
} scalars[] = {{1, 0, true}, {1, 1, false}, {0.5, -2, false}, {-1.5, 0, true}, {2, 0.25, false}};
#define N_SCALARS (int)(sizeof scalars / sizeof scalars[0])

/* Runs every case of the edge-size grid on the current path: M, N from the
 * edge lists, K from k_list, all four transpose pairs; counts failures and
 * reports the first few. */
static int run_grid(bool f64, const int64_t *ms, int nm, const int64_t *ns, int nn,
                    const int64_t *ks, int nk, int *counter)
{
    int failures = 0;
    char msg[512];
    for (int t = 0; t < 4; t++)
        for (int a = 0; a < nm; a++)
            for (int b = 0; b < nn; b++)
                for (int c = 0; c < nk; c++) {
                    int s = (*counter)++ % N_SCALARS;
                    gcase g = {t & 1,
                               (t >> 1) & 1,
                               ms[a],
                               ns[b],
                               ks[c],
                               scalars[s].alpha,
                               scalars[s].beta,
                               scalars[s].nan_c,
                               (*counter % 3) * 3};
                    if (!run_case(&g, f64, msg, sizeof msg)) {
                        if (failures < 5)
                            cr_log_error("%s [path %s]", msg, tg__cpu_name(tg__cpu()));
                        failures++;
                    }
                }
    return failures;
}

/* The edge grid of one path and dtype: sizes around the micro-tile, K = 1, a
 * short K, K over two kc blocks, and products past the small-product limit so
 * the packed path sees every edge too. */
static void edge_sizes(tg__cpu_level level, bool f64)
{
    cr_assert(tg__cpu_force(level) >= TG_CPU_GENERIC);
    cr_assert_eq(tg__cpu(), level);
    tg__gemm_blocking bk = tg__gemm_blocking_of((int)level, f64);
    const int64_t mr = bk.mr, nr = bk.nr;
    const int64_t ms[] = {1, mr - 1, mr, mr + 1, 2 * mr + 5};
    const int64_t ns[] = {1, nr - 1, nr, nr + 1, 2 * nr + 3};
    const int64_t ks[] = {1, 5, bk.kc + 3};
    int counter = 0;
    int failures = run_grid(f64, ms, 5, ns, 5, ks, 3, &counter);
    /* Past the small path: K large enough that M*N*K exceeds its limit. */
    if (bk.small_mnk > 0) {
        const int64_t ms2[] = {mr - 1, mr + 1, 2 * mr + 5}, ns2[] = {nr - 1, nr + 1, 2 * nr + 3};
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                const int64_t k2[] = {(int64_t)(bk.small_mnk / (double)(ms2[a] * ns2[b])) + 1};
                failures += run_grid(f64, &ms2[a], 1, &ns2[b], 1, k2, 1, &counter);
            }
    }
    cr_expect_eq(failures, 0, "%d of %d cases failed on the %s path (%s)", failures, counter,
                 tg__cpu_name(level), f64 ? "f64" : "f32");
}

/* Several blocks in every direction: M over 2 mc blocks, N over an nc block,
 * K over 3 kc blocks (one at a time, the others small), and one product with
 * every dimension past one block. */
static void big_blocks(tg__cpu_level level, bool f64)
{
    tg__cpu_force(level);
    tg__gemm_blocking bk = tg__gemm_blocking_of((int)level, f64);
    const gcase cases[] = {
        {false, false, 2 * bk.mc + bk.mr + 1, bk.nr + 1, 7, 1, 0, true, 1},
        {true, true, 2 * bk.mc + 3, 2 * bk.nr - 1, 5, 0.5, 1, false, 0},
        {false, true, bk.mr + 1, bk.nc + bk.nr + 3, 3, 1, 0, true, 2},
        {true, false, 3, bk.nc + 5, 4, 1, 2, false, 0},
        {false, false, bk.mr + 1, bk.nr + 1, 3 * bk.kc + 7, 1, 0, true, 0},
        {true, true, bk.mr, bk.nr - 1, 3 * bk.kc + 1, -1, 0.5, false, 1},
        {false, true, bk.mc + 3, 2 * bk.nr + 1, 2 * bk.kc + 1, 1, 1, false, 0},
        {true, false, bk.mc + bk.mr - 1, 3 * bk.nr + 5, bk.kc + 9, 1, 0, true, 3},
    };
    char msg[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_expect(run_case(&cases[i], f64, msg, sizeof msg), "%s [path %s]", msg,
                  tg__cpu_name(level));
        /* A product the small path would take runs again with K past its
         * limit, so the packed blocking is checked with every transpose. */
        gcase g = cases[i];
        const double mn = (double)(g.M * g.N);
        if (!g.tb && bk.small_mnk > 0 && mn * (double)g.K <= bk.small_mnk) {
            g.K = (int64_t)(bk.small_mnk / mn) + 1;
            cr_expect(run_case(&g, f64, msg, sizeof msg), "%s [path %s]", msg,
                      tg__cpu_name(level));
        }
    }
}

/* Runs fn for every level this CPU supports; the others are logged. */
static void each_level(void (*fn)(tg__cpu_level, bool), bool f64)
{
    for (int l = TG_CPU_GENERIC; l <= TG_CPU_AVX512; l++) {
        if ((tg__cpu_level)l > tg__cpu_max()) {
            cr_log_warn("path %s not supported by this CPU: not tested",
                        tg__cpu_name((tg__cpu_level)l));
            continue;
        }
        fn((tg__cpu_level)l, f64);
    }
}

/* ------------------------------------------------------------- reference */

Test(gemm, edge_sizes_match_f64_reference_f32_every_path) { each_level(edge_sizes, false); }

Test(gemm, edge_sizes_match_f64_reference_f64_every_path) { each_level(edge_sizes, true); }

Test(gemm, several_cache_blocks_match_reference_f32_every_path) { each_level(big_blocks, false); }

Test(gemm, several_cache_blocks_match_reference_f64_every_path) { each_level(big_blocks, true); }

/* Hand-computed: [1 2; 3 4] @ [5 6; 7 8] = [19 22; 43 50], then
 * alpha = 2, beta = -1 over C = [1 1; 1 1] gives [37 43; 85 99]. */
Test(gemm, two_by_two_by_hand_every_path)
{
    for (int l = TG_CPU_GENERIC; l <= (int)tg__cpu_max(); l++) {
        tg__cpu_force((tg__cpu_level)l);
        const float A[] = {1, 2, 3, 4}, B[] = {5, 6, 7, 8};
        float C[] = {1, 1, 1, 1};
        tg__gemm_f32(false, false, 2, 2, 2, 2.0f, A, 2, B, 2, -1.0f, C, 2);
        const float want[] = {37, 43, 85, 99};
        for (int i = 0; i < 4; i++)
            cr_expect_eq(C[i], want[i], "path %s: C[%d] = %g, want %g",
                         tg__cpu_name((tg__cpu_level)l), i, (double)C[i], (double)want[i]);
        /* A^T B^T with the same storage: [1 3; 2 4] @ [5 7; 6 8] = [23 31; 34 46]. */
        double Ad[] = {1, 2, 3, 4}, Bd[] = {5, 6, 7, 8},
               Cd[] = {(double)NAN, (double)NAN, (double)NAN, (double)NAN};
        tg__gemm_f64(true, true, 2, 2, 2, 1.0, Ad, 2, Bd, 2, 0.0, Cd, 2);
        const double wd[] = {23, 31, 34, 46};
        for (int i = 0; i < 4; i++)
            cr_expect_eq(Cd[i], wd[i], "path %s: f64 C[%d] = %g, want %g",
                         tg__cpu_name((tg__cpu_level)l), i, Cd[i], wd[i]);
    }
}

/* ------------------------------------------------------- special values */

/* K == 0 or alpha == 0: C = beta * C (zeros over NaN when beta == 0); M or
 * N == 0: nothing is touched. */
Test(gemm, degenerate_sizes_and_alpha_zero)
{
    for (int l = TG_CPU_GENERIC; l <= (int)tg__cpu_max(); l++) {
        tg__cpu_force((tg__cpu_level)l);
        float A[6] = {NAN, 1, 2, 3, 4, 5}, B[6] = {1, 2, 3, 4, 5, NAN};
        float C[6] = {1, 2, 3, 4, 5, 6};
        tg__gemm_f32(false, false, 2, 3, 0, 1.0f, A, 1, B, 3, 2.0f, C, 3);
        for (int i = 0; i < 6; i++)
            cr_expect_eq(C[i], (float)(2 * (i + 1)), "K = 0: C[%d] = %g", i, (double)C[i]);
        tg__gemm_f32(false, false, 2, 3, 2, 0.0f, A, 2, B, 3, 0.5f, C, 3);
        for (int i = 0; i < 6; i++)
            cr_expect_eq(C[i], (float)(i + 1), "alpha = 0: C[%d] = %g", i, (double)C[i]);
        float Cn[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
        tg__gemm_f32(false, false, 2, 3, 2, 0.0f, A, 2, B, 3, 0.0f, Cn, 3);
        for (int i = 0; i < 6; i++)
            cr_expect_eq(Cn[i], 0.0f, "alpha = beta = 0 over NaN: C[%d] = %g", i, (double)Cn[i]);
        double Cd[2] = {7, 8};
        tg__gemm_f64(false, false, 0, 2, 3, 1.0, NULL, 3, NULL, 2, 0.0, Cd, 2);
        tg__gemm_f64(false, false, 1, 0, 3, 1.0, NULL, 3, NULL, 2, 0.0, Cd, 2);
        cr_expect(Cd[0] == 7 && Cd[1] == 8, "M or N = 0 wrote C");
    }
}

/* A NaN in A reaches exactly its row of C, also through packed and padded
 * tiles (zero padding must not hide it nor spread it). */
Test(gemm, nan_in_a_reaches_only_its_row)
{
    for (int l = TG_CPU_GENERIC; l <= (int)tg__cpu_max(); l++) {
        tg__cpu_force((tg__cpu_level)l);
        for (int big = 0; big < 2; big++) {
            const int64_t M = 11, N = 37, K = big ? 3000 : 9;
            float *A = malloc((size_t)(M * K) * sizeof *A),
                  *B = malloc((size_t)(K * N) * sizeof *B);
            float *C = malloc((size_t)(M * N) * sizeof *C);
            cr_assert(A && B && C);
            rng_state = 7;
            for (int64_t i = 0; i < M * K; i++)
                A[i] = (float)urand();
            for (int64_t i = 0; i < K * N; i++)
                B[i] = (float)urand();
            A[5 * K + K / 2] = NAN;
            tg__gemm_f32(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                    cr_expect(i == 5 ? isnan(C[i * N + j]) : isfinite(C[i * N + j]),
                              "path %s K=%lld: C[%lld][%lld] = %g", tg__cpu_name(tg__cpu()),
                              (long long)K, (long long)i, (long long)j, (double)C[i * N + j]);
            free(A);
            free(B);
            free(C);
        }
    }
}

/* ------------------------------------------------------------ threading */

/* C for one product at a thread count, into out (M x N, ldc = N). */
#define PRODUCT(T, SFX)                                                                            \
    static void product_##SFX(int threads, bool ta, bool tb, int64_t M, int64_t N, int64_t K,      \
                              T beta, T *out)                                                      \
    {                                                                                              \
        T *A = malloc((size_t)(M * K + 1) * sizeof(T)),                                            \
          *B = malloc((size_t)(K * N + 1) * sizeof(T));                                            \
        cr_assert(A &&B);                                                                          \
        rng_state = (uint64_t)(M * 131 + N * 7 + K);                                               \
        for (int64_t i = 0; i < M * K; i++)                                                        \
            A[i + 1] = (T)(urand() * 3.3);                                                         \
        for (int64_t i = 0; i < K * N; i++)                                                        \
            B[i + 1] = (T)(urand() * 0.7);                                                         \
        for (int64_t i = 0; i < M * N; i++)                                                        \
            out[i] = (T)urand();                                                                   \
        tg_set_num_threads(threads);                                                               \
        tg__gemm_backoff_reset(); /* a busy machine must not make this run on one thread */        \
        tg__gemm_##SFX(ta, tb, M, N, K, (T)1.25, A + 1, ta ? M : K, B + 1, tb ? K : N, beta, out,  \
                       N);                                                                         \
        free(A);                                                                                   \
        free(B);                                                                                   \
    }
PRODUCT(float, f32)
PRODUCT(double, f64)

/* Shapes that split by rows, by columns, over several K, M and N blocks, with
 * edge tiles, for every transpose pair and path: 2 and 3 threads must give
 * the bits of 1 thread. */
static void threads_bitwise(tg__cpu_level level, bool f64)
{
    tg__cpu_force(level);
    tg__gemm_blocking bk = tg__gemm_blocking_of((int)level, f64);
    enum { N_SHAPES = 6, N_CASES = 4 * N_SHAPES };
    const int64_t shapes[N_SHAPES][3] = {
        {67, 301, 450},                      /* rows and columns split, 2 K blocks */
        {2 * bk.mc + 9, 3 * bk.nr + 1, 250}, /* several mc blocks */
        {5, bk.nc + 2 * bk.nr + 3, 900},     /* few rows: columns split, 2 nc blocks */
        {301, 7, 4000},                      /* few columns: rows split, many K blocks */
        {33, 65, 129},                       /* a small product (on AVX-512, unpacked) */
        {61, 70, 300},                       /* a larger small product */
    };
    const size_t elem = f64 ? sizeof(double) : sizeof(float);
    void *out[3][N_CASES];
    /* The thread count is the outer loop: few team-size changes (each one
     * that shrinks a team ends an OpenMP thread). */
    for (int th = 1; th <= 3; th++)
        for (int c = 0; c < N_CASES; c++) {
            const int s = c / 4, t = c % 4;
            const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            out[th - 1][c] = malloc((size_t)(M * N) * elem);
            cr_assert(out[th - 1][c]);
            if (f64)
                product_f64(th, t & 1, t >> 1, M, N, K, s % 2 ? 0.0 : 1.0, out[th - 1][c]);
            else
                product_f32(th, t & 1, t >> 1, M, N, K, s % 2 ? 0.0f : 1.0f, out[th - 1][c]);
        }
    for (int c = 0; c < N_CASES; c++) {
        const int s = c / 4, t = c % 4;
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        const size_t bytes = (size_t)(M * N) * elem;
        cr_expect(memcmp(out[0][c], out[1][c], bytes) == 0 &&
                      memcmp(out[0][c], out[2][c], bytes) == 0,
                  "path %s %s %s%s M=%lld N=%lld K=%lld: 1, 2, 3 threads differ",
                  tg__cpu_name(level), f64 ? "f64" : "f32", t & 1 ? "T" : "N", t >> 1 ? "T" : "N",
                  (long long)M, (long long)N, (long long)K);
        for (int th = 0; th < 3; th++)
            free(out[th][c]);
    }
}

Test(gemm, threads_1_2_3_bitwise_identical_f32_every_path) { each_level(threads_bitwise, false); }

Test(gemm, threads_1_2_3_bitwise_identical_f64_every_path) { each_level(threads_bitwise, true); }

static int64_t mono_ns(void) /* the clock the team timing uses */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

/* A team whose last thread finishes long after its first (a team mate that
 * had to wait for a core) makes the next products run on one thread, until
 * the back-off ends; an on-time team keeps threads on. */
Test(gemm, late_team_backs_off_to_one_thread)
{
    /* The back-off is opt-in; this test process turns it on before any GEMM. */
    setenv("TG_GEMM_BACKOFF", "1", 1);
    tg__gemm_backoff_reset();
    tg__gemm_team t;
    cr_expect_eq(tg__gemm_team_begin(&t, 1), 1);
    /* Eight late teams in a row double the back-off up to 256 ms, so the
     * check below cannot miss it even if this process loses its core. */
    for (int i = 0; i < 8; i++) {
        int nt = tg__gemm_team_begin(&t, 2);
        if (i == 0)
            cr_expect_eq(nt, 2);
        t.t_start = mono_ns(); /* timed as a team even while backing off */
        tg__gemm_team_done(&t, 1); /* the first thread is done at once ... */
        struct timespec nap = {0, 2000000};
        nanosleep(&nap, NULL); /* ... the last one 2 ms later */
        tg__gemm_team_end(&t);
    }
    cr_expect_eq(tg__gemm_team_begin(&t, 2), 1, "late teams must start a back-off");
    tg__gemm_backoff_reset();
    cr_expect_eq(tg__gemm_team_begin(&t, 2), 2, "reset ends the back-off");
    t.t_start = mono_ns() - 50000000; /* the first thread took 50 ms ... */
    tg__gemm_team_done(&t, 1);
    tg__gemm_team_end(&t); /* ... and the last was right behind it */
    cr_expect_eq(tg__gemm_team_begin(&t, 2), 2, "an on-time team keeps threads on");
}

/* ---------------------------------------------------------- strided batch */

/* The batch gives the bits of one call per item, whether it runs items in
 * parallel (small) or one at a time (large), at 1 and 2 threads; a zero A
 * stride shares A; stride_c == 0 accumulates in order. */
Test(gemm, batch_matches_per_item_calls)
{
    const int64_t shapes[][4] = {{9, 8, 17, 6}, {40, 70, 50, 3}, {150, 130, 270, 2}};
    for (size_t s = 0; s < 3; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], nb = shapes[s][3];
        float *A = malloc((size_t)(M * K) * sizeof *A);
        float *B = malloc((size_t)(nb * K * N) * sizeof *B);
        float *want = malloc((size_t)(nb * M * N) * sizeof *want);
        float *got = malloc((size_t)(nb * M * N) * sizeof *got);
        cr_assert(A && B && want && got);
        rng_state = 99;
        for (int64_t i = 0; i < M * K; i++)
            A[i] = (float)urand();
        for (int64_t i = 0; i < nb * K * N; i++)
            B[i] = (float)urand();
        for (int th = 1; th <= 2; th++) {
            tg_set_num_threads(th);
            for (int64_t b = 0; b < nb; b++)
                tg__gemm_f32(true, false, M, N, K, 0.5f, A, M, B + b * K * N, N, 0.0f,
                             want + b * M * N, N);
            for (int64_t i = 0; i < nb * M * N; i++)
                got[i] = NAN;
            tg__gemm_batch_f32(true, false, nb, M, N, K, 0.5f, A, M, 0, B, N, K * N, 0.0f, got, N,
                               M * N);
            cr_expect(memcmp(want, got, (size_t)(nb * M * N) * sizeof *got) == 0,
                      "batch of %lld [%lld x %lld x %lld], %d threads: differs from per-item calls",
                      (long long)nb, (long long)M, (long long)N, (long long)K, th);
            /* stride_c == 0 with beta == 1: C = sum over items, in item order. */
            for (int64_t i = 0; i < M * N; i++)
                want[i] = got[i] = 0;
            for (int64_t b = 0; b < nb; b++)
                tg__gemm_f32(true, false, M, N, K, 1.0f, A, M, B + b * K * N, N, 1.0f, want, N);
            tg__gemm_batch_f32(true, false, nb, M, N, K, 1.0f, A, M, 0, B, N, K * N, 1.0f, got, N,
                               0);
            cr_expect(memcmp(want, got, (size_t)(M * N) * sizeof *got) == 0,
                      "accumulating batch (stride_c 0), %d threads: differs", th);
        }
        double *Ad = malloc((size_t)(M * K) * sizeof *Ad),
               *Bd = malloc((size_t)(nb * K * N) * sizeof *Bd);
        double *wd = malloc((size_t)(nb * M * M) * sizeof *wd),
               *gd = malloc((size_t)(nb * M * M) * sizeof *gd);
        cr_assert(Ad && Bd && wd && gd);
        for (int64_t i = 0; i < M * K; i++)
            Ad[i] = (double)A[i];
        for (int64_t i = 0; i < nb * K * N; i++)
            Bd[i] = (double)B[i];
        for (int64_t b = 0; b < nb; b++)
            tg__gemm_f64(false, true, M, M, K, 1.0, Ad, K, Ad, K, 0.0, wd + b * M * M, M);
        tg__gemm_batch_f64(false, true, nb, M, M, K, 1.0, Ad, K, 0, Ad, K, 0, 0.0, gd, M, M * M);
        cr_expect(memcmp(wd, gd, (size_t)(nb * M * M) * sizeof *gd) == 0,
                  "f64 batch of %lld: differs from per-item calls", (long long)nb);
        free(A);
        free(B);
        free(want);
        free(got);
        free(Ad);
        free(Bd);
        free(wd);
        free(gd);
    }
}

/* ---------------------------------------------------------------- scratch */

/* Products inside a 3-thread region grow each thread's packing scratch; a
 * 2-thread region after it makes OpenMP (libgomp) end the surplus pool
 * thread, whose buffer must then be freed (under SAN=1, LeakSanitizer checks
 * at exit). */
Test(gemm, scratch_of_an_exiting_thread_is_freed)
{
    enum { M = 40, N = 300, K = 700 }; /* the packed path on every CPU level */
    float *A = calloc((size_t)(M * K), sizeof(float)), *B = calloc((size_t)(K * N), sizeof(float));
    float *C = calloc((size_t)(3 * M * N), sizeof(float));
    cr_assert(A && B && C);
    for (int round = 0; round < 2; round++) {
        TG_OMP("omp parallel num_threads(3)")
        {
#ifdef _OPENMP
            const int t = omp_get_thread_num();
#else
            const int t = 0;
#endif
            tg__gemm_f32(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C + t * M * N, N);
        }
        TG_OMP("omp parallel num_threads(2)")
        {
            C[0] = 0;
        }
    }
    cr_expect_eq(C[3 * M * N - 1], 0.0f);
    free(A);
    free(B);
    free(C);
}

/* ------------------------------------------------------------- CPU level */

Test(gemm, cpu_force_clamps_and_env_caps_the_level)
{
    const tg__cpu_level max = tg__cpu_max();
    tg__cpu_force(TG_CPU_AVX512);
    cr_expect_eq(tg__cpu(), max, "forcing above the CPU's level clamps to it");
    cr_expect_eq(tg__cpu_force(TG_CPU_GENERIC), max, "force returns the previous level");
    cr_expect_eq(tg__cpu(), TG_CPU_GENERIC);
    cr_expect_str_eq(tg__cpu_name(TG_CPU_GENERIC), "generic");
    cr_expect_str_eq(tg__cpu_name(TG_CPU_AVX2), "avx2");
    cr_expect_str_eq(tg__cpu_name(TG_CPU_AVX512), "avx512");
    /* TG_CPU is read once, at the first tg__cpu() after a reset. */
    setenv("TG_CPU", "generic", 1);
    tg__cpu_reset();
    cr_expect_eq(tg__cpu(), TG_CPU_GENERIC, "TG_CPU=generic");
    setenv("TG_CPU", "avx512", 1);
    cr_expect_eq(tg__cpu(), TG_CPU_GENERIC, "TG_CPU is read once");
    tg__cpu_reset();
    cr_expect_eq(tg__cpu(), max, "TG_CPU=avx512 is capped by the CPU");
    setenv("TG_CPU", "bogus", 1);
    tg__cpu_reset();
    cr_expect_eq(tg__cpu(), max, "an unknown TG_CPU is ignored");
    unsetenv("TG_CPU");
    tg__cpu_reset();
}
