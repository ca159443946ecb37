/* GEMM front end and the generic (plain C) path: argument checks, dispatch on
 * tg__cpu() to the AVX-512 / AVX2 paths (gemm_avx512.c, gemm_avx2.c), the
 * strided batch, the packing scratch and the thread split. The blocked loop
 * nest itself is gemm_tmpl.h; the SIMD micro-kernels live in the ISA files. */
#include "gemm.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "gemm_impl.h"
#include "threads.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------- packing scratch */

/* One buffer per thread that calls a GEMM (the team's buffers are carved from
 * the caller's). It grows to the largest call seen and is then reused: no
 * allocation on the hot path after the first call of each size. The pointer
 * lives in thread-local storage (so it stays reachable: no leak report), and a
 * thread-specific key frees the buffer when the thread exits (OpenMP ends
 * pool threads when a smaller team follows a larger one). */
static _Thread_local struct {
    void *p;
    size_t cap;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

/* Buffers of threads that exited, kept for the threads that replace them:
 * OpenMP retires and re-creates pool threads when team sizes change, and a
 * fresh thread takes a parked buffer instead of calling the heap, so a
 * training step stays free of heap calls (tests/test_alloc.c). Parked buffers
 * stay reachable from here (no leak report); the lock is taken only when a
 * thread exits or its own buffer is too small. */
#define PARK_MAX 64
static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void *p;
    size_t cap;
} park[PARK_MAX];
static int n_parked;

/* Parks (p, cap); frees it when the park is full. */
static void park_put(void *p, size_t cap)
{
    if (!p)
        return;
    pthread_mutex_lock(&park_mu);
    if (n_parked < PARK_MAX) {
        park[n_parked].p = p;
        park[n_parked].cap = cap;
        n_parked++;
        p = NULL;
    }
    pthread_mutex_unlock(&park_mu);
    if (p)
        free(p);
}

/* Takes the smallest parked buffer of at least `bytes`, or returns NULL. */
static void *park_take(size_t bytes, size_t *cap)
{
    void *p = NULL;
    pthread_mutex_lock(&park_mu);
    int best = -1;
    for (int i = 0; i < n_parked; i++)
        if (park[i].cap >= bytes && (best < 0 || park[i].cap < park[best].cap))
            best = i;
    if (best >= 0) {
        p = park[best].p;
        *cap = park[best].cap;
        park[best] = park[--n_parked];
    }
    pthread_mutex_unlock(&park_mu);
    return p;
}

/* Thread exit: the thread's TLS is still valid while key destructors run. */
static void scratch_free(void *p)
{
    park_put(p, p == scratch.p ? scratch.cap : 0);
    scratch.p = NULL;
    scratch.cap = 0;
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* More than one thread's largest packing scratch on any path: A block
 * MC x KC plus B panel KC x NC (at most 4.25 MiB: AVX-512 f64, 128 x 256 +
 * 256 x 2048 doubles). */
#define SCRATCH_MIN ((size_t)8 << 20)

void *tg__gemm_scratch(size_t bytes)
{
    if (bytes > scratch.cap) {
        size_t cap = 0;
        void *p = park_take(bytes, &cap);
        if (!p) {
            /* At least SCRATCH_MIN: one thread's panels for any call fit it,
             * so which blocks a pool thread happens to get under a dynamic
             * schedule cannot make its buffer grow in a later training step;
             * untouched pages cost no memory. */
            cap = (bytes + bytes / 4 + 4095) / 4096 * 4096;
            if (cap < SCRATCH_MIN)
                cap = SCRATCH_MIN;
            p = aligned_alloc(64, cap);
            if (!p)
                return NULL;
        }
        park_put(scratch.p, scratch.cap);
        scratch.p = p;
        scratch.cap = cap;
        pthread_once(&scratch_once, scratch_key_init);
        if (scratch_key_ok)
            pthread_setspecific(scratch_key, p);
    }
    return scratch.p;
}

/* ------------------------------------------------------------------ teams */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

/* Shared by all products: until when teams are off, and the current back-off. */
static _Atomic int64_t solo_until;
static _Atomic int64_t backoff;

#define BACKOFF_MIN 2000000   /* ns */
#define BACKOFF_MAX 500000000 /* ns */

void tg__gemm_backoff_reset(void)
{
    atomic_store_explicit(&solo_until, 0, memory_order_relaxed);
    atomic_store_explicit(&backoff, 0, memory_order_relaxed);
}

int tg__gemm_team_begin(tg__gemm_team *team, int nt)
{
    atomic_init(&team->done, 0);
    atomic_init(&team->t_first, 0);
    team->t_start = 0;
    if (nt <= 1)
        return 1;
    const int64_t t = now_ns();
    if (t < atomic_load_explicit(&solo_until, memory_order_relaxed))
        return 1;
    team->t_start = t;
    return nt;
}

void tg__gemm_team_done(tg__gemm_team *team, int n)
{
    int64_t zero = 0;
    const int64_t t = now_ns();
    atomic_compare_exchange_strong(&team->t_first, &zero, t);
    atomic_fetch_add_explicit(&team->done, 1, memory_order_acq_rel);
    for (int i = 0; atomic_load_explicit(&team->done, memory_order_acquire) < n; i++) {
        if (i < 64) /* about a microsecond of plain spinning */
            continue;
        const int64_t waited = now_ns() - t;
        if (waited < 20000) {
#if TG_HAVE_X86 && (defined(__GNUC__) || defined(__clang__))
            __builtin_ia32_pause();
#endif
        } else if (waited < 50000) {
            sched_yield();
        } else {
            struct timespec nap = {0, 10000};
            nanosleep(&nap, NULL);
        }
    }
}

/* The back-off is off unless TG_GEMM_BACKOFF=1: it makes the team size depend
 * on timing, and a team that changes size makes OpenMP retire and re-create
 * pool threads, whose packing buffers are then allocated again; a training
 * step would no longer be free of heap calls (tests/test_alloc.c). */
static bool backoff_enabled(void)
{
    static _Atomic int enabled = -1;
    int e = atomic_load_explicit(&enabled, memory_order_relaxed);
    if (e < 0) {
        const char *v = getenv("TG_GEMM_BACKOFF");
        e = v && v[0] == '1';
        atomic_store_explicit(&enabled, e, memory_order_relaxed);
    }
    return e == 1;
}

void tg__gemm_team_end(tg__gemm_team *team)
{
    if (team->t_start == 0 || !backoff_enabled())
        return;
    const int64_t t = now_ns();
    const int64_t first = atomic_load_explicit(&team->t_first, memory_order_relaxed);
    if (first == 0)
        return;
    if (t - first > first - team->t_start + 100000) {
        int64_t b = atomic_load_explicit(&backoff, memory_order_relaxed);
        b = b < BACKOFF_MIN ? BACKOFF_MIN : b * 2 > BACKOFF_MAX ? BACKOFF_MAX : b * 2;
        atomic_store_explicit(&backoff, b, memory_order_relaxed);
        atomic_store_explicit(&solo_until, t + b, memory_order_relaxed);
    } else {
        atomic_store_explicit(&backoff, 0, memory_order_relaxed);
    }
}

/* ----------------------------------------------------------- thread split */

void tg__gemm_split(int64_t M, int64_t N, int64_t K, int mr, int nr, int nt, int *tm, int *tn)
{
    const int64_t tiles_m = (M + mr - 1) / mr, tiles_n = (N + nr - 1) / nr;
    double best = -1;
    *tm = nt;
    *tn = 1;
    for (int a = 1; a <= nt; a++) {
        if (nt % a)
            continue;
        const int b = nt / a;
        if (a > tiles_m || b > tiles_n)
            continue;
        /* One thread's multiply-adds plus the elements it packs (its rows
         * of op(A) and its columns of op(B)), weighted by the cost of
         * packing one element relative to one multiply-add. */
        const double rows = (double)((tiles_m + a - 1) / a * mr);
        const double cols = (double)((tiles_n + b - 1) / b * nr);
        const double cost = rows * cols * (double)K + 6.0 * (rows + cols) * (double)K;
        if (best < 0 || cost < best) {
            best = cost;
            *tm = a;
            *tn = b;
        }
    }
    if (best < 0) { /* fewer tiles than threads both ways: only one side split */
        *tm = tiles_m >= tiles_n ? nt : 1;
        *tn = nt / *tm;
    }
}

/* ------------------------------------------------------ the generic path */

/* Plain C micro-kernel MR x NR (the compiler vectorises it for the baseline
 * ISA). Same contract as TG__GEMM_KERNEL_2V: acc over k in order, then
 * c = alpha * acc (load_c false) or c = alpha * acc + beta * c. */
#define GENERIC_KERNEL(NAME, T, MR, NR)                                                            \
    static void NAME(int64_t kc, const T *restrict a, const T *restrict b, T *restrict c,          \
                     int64_t ldc, T alpha, T beta, bool load_c)                                    \
    {                                                                                              \
        T acc[MR][NR];                                                                             \
        for (int i = 0; i < (MR); i++)                                                             \
            for (int j = 0; j < (NR); j++)                                                         \
                acc[i][j] = 0;                                                                     \
        for (int64_t k = 0; k < kc; k++, a += (MR), b += (NR))                                     \
            for (int i = 0; i < (MR); i++)                                                         \
                for (int j = 0; j < (NR); j++)                                                     \
                    acc[i][j] += a[i] * b[j];                                                      \
        for (int i = 0; i < (MR); i++)                                                             \
            for (int j = 0; j < (NR); j++)                                                         \
                c[i * ldc + j] =                                                                   \
                    load_c ? alpha * acc[i][j] + beta * c[i * ldc + j] : alpha * acc[i][j];        \
    }

GENERIC_KERNEL(kernel_f32_generic, float, 4, 16)
GENERIC_KERNEL(kernel_f64_generic, double, 4, 8)

#define GT float
#define GSFX f32_generic
#define GARGS tg__gemm_args_f32
#define GMR 4
#define GNR 16
#define GKC 256
#define GMC 128
#define GNC 2048
#define GTGT
#define GKERNEL kernel_f32_generic
#define GMIN_WORK 131072.0
#include "gemm_tmpl.h"

#define GT double
#define GSFX f64_generic
#define GARGS tg__gemm_args_f64
#define GMR 4
#define GNR 8
#define GKC 256
#define GMC 128
#define GNC 2048
#define GTGT
#define GKERNEL kernel_f64_generic
#define GMIN_WORK 131072.0
#include "gemm_tmpl.h"

/* ------------------------------------------------------------ front end */

/* The thread count for one product: tg__threads(), or 1 inside a parallel
 * region that cannot nest another (a caller already splitting its work over
 * threads, e.g. per image). */
static int threads_here(void)
{
#ifdef _OPENMP
    if (omp_get_active_level() >= omp_get_max_active_levels())
        return 1;
#endif
    return tg__threads();
}

/* The plain triple loop, used only when the packing scratch cannot be
 * allocated (one thread, fixed order). */
#define REFERENCE_BODY(T)                                                                          \
    for (int64_t i = 0; i < p->M; i++)                                                             \
        for (int64_t j = 0; j < p->N; j++) {                                                       \
            T s = 0;                                                                               \
            for (int64_t k = 0; k < p->K; k++)                                                     \
                s += (p->ta ? p->A[k * p->lda + i] : p->A[i * p->lda + k]) *                       \
                     (p->tb ? p->B[j * p->ldb + k] : p->B[k * p->ldb + j]);                        \
            T *c = p->C + i * p->ldc + j;                                                          \
            *c = p->beta == 0 ? p->alpha * s : p->alpha * s + p->beta * *c;                        \
        }

static void reference_f32(const tg__gemm_args_f32 *p) { REFERENCE_BODY(float) }
static void reference_f64(const tg__gemm_args_f64 *p) { REFERENCE_BODY(double) }

/* C = beta * C (C = 0 when beta == 0, even over NaN). */
#define SCALE_BODY(T)                                                                              \
    for (int64_t i = 0; i < M; i++) {                                                              \
        T *c = C + i * ldc;                                                                        \
        if (beta == 0)                                                                             \
            for (int64_t j = 0; j < N; j++)                                                        \
                c[j] = 0;                                                                          \
        else if (beta != 1)                                                                        \
            for (int64_t j = 0; j < N; j++)                                                        \
                c[j] *= beta;                                                                      \
    }

static void run_f32(const tg__gemm_args_f32 *p, int nt)
{
    bool ok;
    switch (tg__cpu()) {
#if TG_HAVE_X86
    case TG_CPU_AVX512:
        ok = tg__gemm_run_f32_avx512(p, nt);
        break;
    case TG_CPU_AVX2:
        ok = tg__gemm_run_f32_avx2(p, nt);
        break;
#endif
    default:
        ok = tg__gemm_run_f32_generic(p, nt);
        break;
    }
    if (!ok)
        reference_f32(p);
}

static void run_f64(const tg__gemm_args_f64 *p, int nt)
{
    bool ok;
    switch (tg__cpu()) {
#if TG_HAVE_X86
    case TG_CPU_AVX512:
        ok = tg__gemm_run_f64_avx512(p, nt);
        break;
    case TG_CPU_AVX2:
        ok = tg__gemm_run_f64_avx2(p, nt);
        break;
#endif
    default:
        ok = tg__gemm_run_f64_generic(p, nt);
        break;
    }
    if (!ok)
        reference_f64(p);
}

void tg__gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0) {
        SCALE_BODY(float)
        return;
    }
    const tg__gemm_args_f32 p = {.ta = trans_a,
                                 .tb = trans_b,
                                 .M = M,
                                 .N = N,
                                 .K = K,
                                 .alpha = alpha,
                                 .beta = beta,
                                 .A = A,
                                 .B = B,
                                 .C = C,
                                 .lda = lda,
                                 .ldb = ldb,
                                 .ldc = ldc};
    run_f32(&p, threads_here());
}

void tg__gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                  const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                  double *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0 || alpha == 0) {
        SCALE_BODY(double)
        return;
    }
    const tg__gemm_args_f64 p = {.ta = trans_a,
                                 .tb = trans_b,
                                 .M = M,
                                 .N = N,
                                 .K = K,
                                 .alpha = alpha,
                                 .beta = beta,
                                 .A = A,
                                 .B = B,
                                 .C = C,
                                 .lda = lda,
                                 .ldb = ldb,
                                 .ldc = ldc};
    run_f64(&p, threads_here());
}

/* ---------------------------------------------------------- strided batch */

/* The size of the current team (1 outside a parallel region). */
static int team_size(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Products below BATCH_ITEM_WORK multiply-adds each run whole on one thread,
 * in parallel over the batch (when the batch holds more than BATCH_MIN_WORK in
 * all; items handed out one at a time); larger ones run one after the other,
 * threaded inside. */
#define BATCH_ITEM_WORK 4.0e6
#define BATCH_MIN_WORK 262144.0

#define BATCH_BODY(SFX)                                                                            \
    if (batch <= 0 || M <= 0 || N <= 0)                                                            \
        return;                                                                                    \
    const int nt = threads_here();                                                                 \
    const double item = (double)M * (double)N * (double)(K > 0 ? K : 1);                           \
    if (nt == 1 || batch == 1 || stride_c == 0 || item >= BATCH_ITEM_WORK ||                       \
        item * (double)batch <= BATCH_MIN_WORK || K <= 0 || alpha == 0) {                          \
        for (int64_t b = 0; b < batch; b++)                                                        \
            tg__gemm_##SFX(trans_a, trans_b, M, N, K, alpha, A + b * stride_a, lda,                \
                           B + b * stride_b, ldb, beta, C + b * stride_c, ldc);                    \
        return;                                                                                    \
    }                                                                                              \
    tg__gemm_team team;                                                                            \
    const int nb = tg__gemm_team_begin(&team, batch < nt ? (int)batch : nt);                       \
    (void)nb;                                                                                      \
    TG_OMP("omp parallel num_threads(nb) if (nb > 1)")                                             \
    {                                                                                              \
        TG_OMP("omp for schedule(dynamic, 1) nowait")                                              \
        for (int64_t b = 0; b < batch; b++) {                                                      \
            const tg__gemm_args_##SFX p = {                                                        \
                .ta = trans_a, .tb = trans_b, .M = M, .N = N, .K = K, .alpha = alpha,              \
                .beta = beta, .A = A + b * stride_a, .B = B + b * stride_b,                        \
                .C = C + b * stride_c, .lda = lda, .ldb = ldb, .ldc = ldc};                        \
            run_##SFX(&p, 1);                                                                      \
        }                                                                                          \
        if (nb > 1)                                                                                \
            tg__gemm_team_done(&team, team_size());                                                \
    }                                                                                              \
    tg__gemm_team_end(&team);

void tg__gemm_batch_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                        int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc,
                        int64_t stride_c)
{
    BATCH_BODY(f32)
}

void tg__gemm_batch_f64(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                        double alpha, const double *A, int64_t lda, int64_t stride_a,
                        const double *B, int64_t ldb, int64_t stride_b, double beta, double *C,
                        int64_t ldc, int64_t stride_c){BATCH_BODY(f64)}

/* -------------------------------------------------------------- blocking */

tg__gemm_blocking tg__gemm_blocking_of(int level, bool f64)
{
    switch (level) {
#if TG_HAVE_X86
    case TG_CPU_AVX512:
        return f64 ? tg__gemm_blocking_f64_avx512() : tg__gemm_blocking_f32_avx512();
    case TG_CPU_AVX2:
        return f64 ? tg__gemm_blocking_f64_avx2() : tg__gemm_blocking_f32_avx2();
#endif
    default:
        return f64 ? tg__gemm_blocking_f64_generic() : tg__gemm_blocking_f32_generic();
    }
}
