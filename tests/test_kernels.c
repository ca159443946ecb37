/* The float32 SIMD paths of the memory-bound kernels (elementwise, pooling,
 * softmax / cross-entropy, reductions, transpose, batch norm, dropout): each
 * scenario runs at every CPU level (tg__cpu_force: generic, avx2, avx512) and
 * the outputs must be the same bits (any NaN counted as one canonical NaN: its
 * payload depends on operand order, which compilers may swap). The outputs
 * are also checked against plain reference loops (exactly where the kernel's
 * result is exact, else within float32 tolerance), the vectorised exp against
 * (float)exp(double) within 1 ulp with its special values, and each threaded
 * kernel above its threshold against a one-thread run, bitwise. Levels this
 * CPU lacks run the best it has. */
#include "helpers.h"
#include "ops/kernels/cpu.h"
#include "ops/kernels/elementwise.h"
#include "ops/kernels/norm.h"
#include "ops/kernels/pool.h"
#include "ops/kernels/reduce.h"
#include "ops/kernels/shape.h"
#include "ops/kernels/softmax.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

/* Deterministic float32 values in [-2, 2) with specials sprinkled in when
 * `specials` (NaN, +-inf, +-0, exact ties). */
static void fill(float *p, int64_t n, uint64_t seed, bool specials)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 3);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)(4.0 * tg_rng_uniform(&r) - 2.0);
        if (specials) {
            uint32_t k = tg_rng_u32(&r) % 64;
            v = k == 0 ? NAN : k == 1 ? INFINITY : k == 2 ? -INFINITY : k == 3 ? 0.0f
              : k == 4 ? -0.0f : k < 12 ? 0.5f : v;
        }
        p[i] = v;
    }
}

static float *fbuf(int64_t n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    cr_assert(p);
    return p;
}

/* Output bytes of a scenario, appended in order. */
typedef struct sink {
    unsigned char *buf;
    size_t len, cap;
} sink;

static void put(sink *s, const void *p, size_t bytes)
{
    if (s->len + bytes > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 16;
        while (cap < s->len + bytes)
            cap *= 2;
        unsigned char *b = realloc(s->buf, cap);
        cr_assert(b);
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, bytes);
    s->len += bytes;
}

/* float32 / float64 values, every NaN written as one canonical NaN: a NaN's
 * sign and payload depend on which operand the hardware propagated, and a
 * compiler may swap the operands of a commutative operation. */
static void put_f32(sink *s, const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = isnan(p[i]) ? NAN : p[i];
        put(s, &v, sizeof v);
    }
}

static void put_f64(sink *s, const double *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const double v = isnan(p[i]) ? (double)NAN : p[i];
        put(s, &v, sizeof v);
    }
}

typedef void (*scenario_fn)(sink *s);

/* The scenario gives the same bytes at every level (tg__cpu_force; a level
 * this CPU lacks runs as the best it has). */
static void expect_same_at_every_level(scenario_fn fn, const char *what)
{
    static const tg__cpu_level levels[] = {TG_CPU_GENERIC, TG_CPU_AVX2, TG_CPU_AVX512};
    const tg__cpu_level old = tg__cpu_force(TG_CPU_GENERIC);
    sink ref = {0};
    fn(&ref);
    cr_expect(ref.len > 0, "%s: no output", what);
    for (int l = 1; l < 3; l++) {
        tg__cpu_force(levels[l]);
        sink s = {0};
        fn(&s);
        cr_expect(s.len == ref.len, "%s: %s wrote %zu bytes, generic %zu", what,
                  tg__cpu_name(levels[l]), s.len, ref.len);
        size_t at = 0;
        while (at < s.len && at < ref.len && s.buf[at] == ref.buf[at])
            at++;
        cr_expect(at == s.len, "%s: %s differs from generic at byte %zu", what,
                  tg__cpu_name(levels[l]), at);
        free(s.buf);
    }
    tg__cpu_force(old);
    free(ref.buf);
}

/* Same bits (NaN payloads included). */
static bool same_bits(const float *a, const float *b, int64_t n, int64_t *at)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0) {
            *at = i;
            return false;
        }
    return true;
}

/* Equal as values with the sign of zero, NaN equal to NaN (for checks against
 * plain loops). */
static bool same_values(const float *a, const float *b, int64_t n, int64_t *at)
{
    for (int64_t i = 0; i < n; i++)
        if (!((a[i] == b[i] && (a[i] != 0 || signbit(a[i]) == signbit(b[i]))) ||
              (isnan(a[i]) && isnan(b[i])))) {
            *at = i;
            return false;
        }
    return true;
}

#define expect_values(got, want, n, what)                                                      \
    do {                                                                                       \
        int64_t at_ = -1;                                                                      \
        cr_expect(same_values((got), (want), (n), &at_), "%s: element %lld is %.9g, want %.9g", \
                  (what), (long long)at_, at_ >= 0 ? (double)(got)[at_] : 0.0,                 \
                  at_ >= 0 ? (double)(want)[at_] : 0.0);                                       \
    } while (0)

/* Sizes that hit the vector bodies, their tails and the scalar-only case. */
static const int64_t sizes[] = {1, 7, 15, 16, 17, 33, 100, 1031};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

/* -------------------------------------------------------- elementwise */

static void sc_elementwise(sink *s)
{
    for (size_t k = 0; k < N_SIZES; k++) {
        const int64_t n = sizes[k];
        float *a = fbuf(n), *b = fbuf(n), *y = fbuf(n), *g = fbuf(n), *d = fbuf(n);
        fill(a, n, 1 + k, true);
        fill(b, n, 2 + k, true);
        fill(g, n, 3 + k, false);
        for (int op = 0; op < 4; op++)
            for (int st = 0; st < 4; st++) {
                tg__ew_binary_f32((tg__ew_binop)op, n, y, a, st & 1, b, st >> 1);
                put_f32(s, y, n);
            }
        for (int op = 0; op < 5; op++)
            for (int sy = 0; sy < 2; sy++) {
                memcpy(d, b, (size_t)n * sizeof *d);
                tg__ew_bgrad_f32((tg__ew_gradop)op, n, d, 1, g, a, sy, b);
                put_f32(s, d, n);
                float one = 0.25f;
                tg__ew_bgrad_f32((tg__ew_gradop)op, n, &one, 0, g, a, sy, b);
                put_f32(s, &one, 1);
                double dd[1] = {0.5}, *dv = calloc((size_t)n, sizeof *dv);
                cr_assert(dv);
                tg__ew_bgrad_f32d((tg__ew_gradop)op, n, dd, 0, g, a, sy, b);
                tg__ew_bgrad_f32d((tg__ew_gradop)op, n, dv, 1, g, a, sy, b);
                put_f64(s, dd, 1);
                put_f64(s, dv, n);
                free(dv);
            }
        for (int op = 0; op <= TG__EWU_ABS; op++) {
            const double p = op == TG__EWU_POW ? 3.0 : 0.0;
            tg__ew_unary_f32((tg__ew_unop)op, n, y, a, p);
            put_f32(s, y, n);
            memcpy(d, g, (size_t)n * sizeof *d);
            tg__ew_unary_grad_f32((tg__ew_unop)op, n, d, g, a, y, p, true);
            put_f32(s, d, n);
            for (int64_t j = 0; j < n; j++)
                d[j] = NAN; /* the first contribution overwrites: no read of dx */
            tg__ew_unary_grad_f32((tg__ew_unop)op, n, d, g, a, y, p, false);
            put_f32(s, d, n);
        }
        free(a);
        free(b);
        free(y);
        free(g);
        free(d);
    }
}

Test(kernels, elementwise_same_bits_at_every_cpu_level)
{
    expect_same_at_every_level(sc_elementwise, "elementwise");
}

Test(kernels, elementwise_match_plain_loops_with_nan_inf_and_signed_zeros)
{
    for (size_t k = 0; k < N_SIZES; k++) {
        const int64_t n = sizes[k];
        float *a = fbuf(n), *b = fbuf(n), *y = fbuf(n), *w = fbuf(n), *g = fbuf(n), *d = fbuf(n);
        fill(a, n, 10 + k, true);
        fill(b, n, 20 + k, true);
        fill(g, n, 30 + k, true);
        for (int st = 0; st < 4; st++) {
            const int64_t sa = st & 1, sb = st >> 1;
            tg__ew_binary_f32(TG__EWB_ADD, n, y, a, sa, b, sb);
            for (int64_t j = 0; j < n; j++)
                w[j] = a[j * sa] + b[j * sb];
            expect_values(y, w, n, "add");
            tg__ew_binary_f32(TG__EWB_DIV, n, y, a, sa, b, sb);
            for (int64_t j = 0; j < n; j++)
                w[j] = a[j * sa] / b[j * sb];
            expect_values(y, w, n, "div");
        }
        /* relu: NaN and -0 pass through; its VJP reads y: 0 where y <= 0. */
        tg__ew_unary_f32(TG__EWU_RELU, n, y, a, 0.0);
        for (int64_t j = 0; j < n; j++)
            w[j] = a[j] < 0 ? 0.0f : a[j];
        expect_values(y, w, n, "relu");
        memset(d, 0, (size_t)n * sizeof *d);
        tg__ew_unary_grad_f32(TG__EWU_RELU, n, d, g, a, y, 0.0, true);
        for (int64_t j = 0; j < n; j++)
            w[j] = 0.0f + (y[j] <= 0 ? 0.0f : g[j]);
        expect_values(d, w, n, "relu grad");
        for (int64_t j = 0; j < n; j++)
            d[j] = NAN;
        tg__ew_unary_grad_f32(TG__EWU_RELU, n, d, g, a, y, 0.0, false);
        for (int64_t j = 0; j < n; j++)
            w[j] = y[j] <= 0 ? 0.0f : g[j];
        expect_values(d, w, n, "relu grad (first contribution)");
        /* mul's VJP row and its double sum. */
        memset(d, 0, (size_t)n * sizeof *d);
        tg__ew_bgrad_f32(TG__EWG_MUL, n, d, 1, g, b, 1, NULL);
        for (int64_t j = 0; j < n; j++)
            w[j] = 0.0f + g[j] * b[j];
        expect_values(d, w, n, "mul grad");
        free(a);
        free(b);
        free(y);
        free(w);
        free(g);
        free(d);
    }
}

Test(kernels, binary_grad_sums_are_in_double_and_close_to_a_double_loop)
{
    const int64_t n = 300007; /* several chunks */
    float *g = fbuf(n), *y = fbuf(n);
    fill(g, n, 5, false);
    fill(y, n, 6, false);
    for (int op = 0; op < 3; op++) {
        double want = 0.0;
        for (int64_t j = 0; j < n; j++)
            want += op == 0 ? (double)g[j] : op == 1 ? -(double)g[j] : (double)(g[j] * y[j]);
        double got = 0.0;
        tg__ew_bgrad_f32d((tg__ew_gradop)(op == 2 ? TG__EWG_MUL : op), n, &got, 0, g, y, 1, NULL);
        cr_expect(fabs(got - want) <= 1e-9 * (1.0 + fabs(want)), "op %d: sum %.17g, want %.17g",
                  op, got, want);
    }
    free(g);
    free(y);
}

/* ------------------------------------------------------------ pooling */

/* 2x2 / stride 2 max pooling with ceil-mode edges, on planes with odd sides,
 * ties and NaNs: the reference scans each window row-major, replacing the best
 * when a tap is greater or NaN. */
static void pool_case(int64_t P, int64_t H, int64_t W, bool ceil_mode, uint64_t seed, float *x,
                      float *y, int32_t *am, bool with_argmax)
{
    const int64_t OH = ceil_mode ? (H + 1) / 2 : H / 2, OW = ceil_mode ? (W + 1) / 2 : W / 2;
    tg__pool2d_geom geo = {.H = H, .W = W, .OH = OH, .OW = OW, .KH = 2, .KW = 2, .SH = 2,
                           .SW = 2, .DH = 1, .DW = 1};
    fill(x, P * H * W, seed, true);
    tg__maxpool2d_forward_f32(y, with_argmax ? am : NULL, x, P, &geo);
}

static const int64_t pool_shapes[][3] = {{3, 28, 28}, {2, 14, 14}, {2, 7, 9},  {1, 2, 2},
                                         {2, 5, 37}, {1, 66, 68}, {4, 3, 3},  {1, 9, 34}};
#define N_POOL (sizeof pool_shapes / sizeof pool_shapes[0])

static void sc_pool(sink *s)
{
    for (size_t k = 0; k < N_POOL; k++)
        for (int cm = 0; cm < 2; cm++)
            for (int wa = 0; wa < 2; wa++) {
                const int64_t P = pool_shapes[k][0], H = pool_shapes[k][1], W = pool_shapes[k][2];
                float *x = fbuf(P * H * W), *y = fbuf(P * H * W);
                int32_t *am = calloc((size_t)(P * H * W), sizeof *am);
                cr_assert(am);
                pool_case(P, H, W, cm, 40 + k, x, y, am, wa);
                const int64_t O = P * (cm ? (H + 1) / 2 : H / 2) * (cm ? (W + 1) / 2 : W / 2);
                put_f32(s, y, O);
                if (wa) {
                    put(s, am, (size_t)O * sizeof *am);
                    /* backward into a dx that already holds values */
                    const tg__pool2d_geom geo = {.H = H, .W = W, .OH = cm ? (H + 1) / 2 : H / 2,
                                                 .OW = cm ? (W + 1) / 2 : W / 2, .KH = 2, .KW = 2,
                                                 .SH = 2, .SW = 2, .DH = 1, .DW = 1};
                    fill(y, O, 50 + k, false);
                    fill(x, P * H * W, 60 + k, false);
                    tg__maxpool2d_backward_f32(x, y, am, P, &geo, true);
                    put_f32(s, x, P * H * W);
                    /* and a first contribution, which writes all of dx */
                    for (int64_t i = 0; i < P * H * W; i++)
                        x[i] = NAN;
                    tg__maxpool2d_backward_f32(x, y, am, P, &geo, false);
                    put_f32(s, x, P * H * W);
                }
                free(x);
                free(y);
                free(am);
            }
}

Test(kernels, maxpool_same_bits_at_every_cpu_level)
{
    expect_same_at_every_level(sc_pool, "maxpool2d 2x2/2");
}

Test(kernels, maxpool_2x2_matches_a_plain_window_scan)
{
    for (size_t k = 0; k < N_POOL; k++)
        for (int cm = 0; cm < 2; cm++) {
            const int64_t P = pool_shapes[k][0], H = pool_shapes[k][1], W = pool_shapes[k][2];
            const int64_t OH = cm ? (H + 1) / 2 : H / 2, OW = cm ? (W + 1) / 2 : W / 2;
            float *x = fbuf(P * H * W), *y = fbuf(P * OH * OW), *w = fbuf(P * OH * OW);
            int32_t *am = calloc((size_t)(P * OH * OW), sizeof *am);
            cr_assert(am);
            pool_case(P, H, W, cm, 40 + k, x, y, am, true);
            int64_t bad = -1;
            for (int64_t p = 0; p < P; p++)
                for (int64_t oh = 0; oh < OH; oh++)
                    for (int64_t ow = 0; ow < OW; ow++) {
                        float best = -INFINITY;
                        int32_t bi = -1;
                        for (int64_t ky = 0; ky < 2; ky++)
                            for (int64_t kx = 0; kx < 2; kx++) {
                                int64_t ih = 2 * oh + ky, iw = 2 * ow + kx;
                                if (ih >= H || iw >= W)
                                    continue;
                                const float v = x[p * H * W + ih * W + iw];
                                const int32_t idx = (int32_t)(ih * W + iw);
                                if (bi < 0)
                                    bi = idx; /* an all -inf window routes to its first tap */
                                if (v > best || isnan(v)) {
                                    best = v;
                                    bi = idx;
                                }
                            }
                        const int64_t o = (p * OH + oh) * OW + ow;
                        w[o] = best;
                        if (am[o] != bi && bad < 0)
                            bad = o;
                    }
            expect_values(y, w, P * OH * OW, "maxpool value");
            cr_expect(bad < 0, "[%lld, %lld, %lld] ceil %d: argmax differs at output %lld",
                      (long long)P, (long long)H, (long long)W, cm, (long long)bad);
            /* backward: the scatter dx[argmax] += dy, here on a dx holding values */
            const tg__pool2d_geom geo = {.H = H, .W = W, .OH = OH, .OW = OW, .KH = 2, .KW = 2,
                                         .SH = 2, .SW = 2, .DH = 1, .DW = 1};
            float *dx = fbuf(P * H * W), *want = fbuf(P * H * W);
            fill(dx, P * H * W, 70 + k, true);
            memcpy(want, dx, (size_t)(P * H * W) * sizeof *dx);
            fill(w, P * OH * OW, 80 + k, false);
            for (int64_t p = 0; p < P; p++)
                for (int64_t o = 0; o < OH * OW; o++)
                    want[p * H * W + am[p * OH * OW + o]] += w[p * OH * OW + o];
            tg__maxpool2d_backward_f32(dx, w, am, P, &geo, true);
            expect_values(dx, want, P * H * W, "maxpool backward");
            /* a first contribution overwrites dx: zero where no window chose */
            memset(want, 0, (size_t)(P * H * W) * sizeof *want);
            for (int64_t p = 0; p < P; p++)
                for (int64_t o = 0; o < OH * OW; o++)
                    want[p * H * W + am[p * OH * OW + o]] += w[p * OH * OW + o];
            for (int64_t i = 0; i < P * H * W; i++)
                dx[i] = NAN;
            tg__maxpool2d_backward_f32(dx, w, am, P, &geo, false);
            expect_values(dx, want, P * H * W, "maxpool backward (first contribution)");
            free(dx);
            free(want);
            free(x);
            free(y);
            free(w);
            free(am);
        }
}

/* ------------------------------------------------- softmax and losses */

static void sc_softmax(sink *s)
{
    const int64_t rows[] = {1, 3, 64}, cols[] = {1, 10, 17, 1000};
    for (int ri = 0; ri < 3; ri++)
        for (int ci = 0; ci < 4; ci++) {
            const int64_t N = rows[ri], C = cols[ci], n = N * C;
            float *x = fbuf(n), *y = fbuf(n), *d = fbuf(n), *g = fbuf(n);
            fill(x, n, 60 + (uint64_t)(ri * 4 + ci), false);
            for (int64_t i = 0; i < n; i++)
                x[i] *= 8.0f;
            fill(g, n, 70, false);
            int64_t *lab = calloc((size_t)N, sizeof *lab);
            double *mx = calloc((size_t)N, sizeof *mx), *inv = calloc((size_t)N, sizeof *inv);
            double *ls = calloc((size_t)N, sizeof *ls);
            cr_assert(lab && mx && inv && ls);
            for (int64_t i = 0; i < N; i++)
                lab[i] = (i * 7) % C;
            tg__softmax_forward_f32(y, x, N, C, 1);
            put_f32(s, y, n);
            memset(d, 0, (size_t)n * sizeof *d);
            tg__softmax_backward_f32(d, y, g, N, C, 1);
            put_f32(s, d, n);
            tg__log_softmax_forward_f32(y, x, N, C, 1);
            put_f32(s, y, n);
            memset(d, 0, (size_t)n * sizeof *d);
            tg__log_softmax_backward_f32(d, y, g, N, C, 1);
            put_f32(s, d, n);
            /* along axis 0 of [C, N] (the blocked path) */
            tg__softmax_forward_f32(y, x, 1, C, N);
            put_f32(s, y, n);
            double tot = tg__xent_forward_f32(d, mx, inv, x, lab, N, C);
            put_f64(s, &tot, 1);
            put_f32(s, d, N);
            put_f64(s, mx, N);
            put_f64(s, inv, N);
            memset(d, 0, (size_t)n * sizeof *d);
            float one = 1.0f;
            tg__xent_backward_f32(d, x, mx, inv, lab, &one, 0, 0.5f, N, C);
            put_f32(s, d, n);
            tg__softmax_forward_f32(y, g, N, C, 1); /* soft targets */
            tot = tg__xent_soft_forward_f32(NULL, mx, inv, ls, x, y, N, C);
            put_f64(s, &tot, 1);
            memset(d, 0, (size_t)n * sizeof *d);
            tg__xent_soft_backward_f32(d, NULL, x, y, mx, inv, ls, &one, 0, 1.0f, N, C);
            put_f32(s, d, n);
            free(x);
            free(y);
            free(d);
            free(g);
            free(lab);
            free(mx);
            free(inv);
            free(ls);
        }
}

Test(kernels, softmax_and_cross_entropy_same_bits_at_every_cpu_level)
{
    expect_same_at_every_level(sc_softmax, "softmax / cross-entropy");
}

Test(kernels, softmax_rows_match_a_double_reference)
{
    const int64_t N = 5, C = 1000;
    float *x = fbuf(N * C), *y = fbuf(N * C);
    fill(x, N * C, 80, false);
    for (int64_t i = 0; i < N * C; i++)
        x[i] *= 20.0f;
    tg__softmax_forward_f32(y, x, N, C, 1);
    for (int64_t i = 0; i < N; i++) {
        double m = -(double)INFINITY, s = 0.0;
        for (int64_t c = 0; c < C; c++)
            m = fmax(m, (double)x[i * C + c]);
        for (int64_t c = 0; c < C; c++)
            s += exp((double)x[i * C + c] - m);
        for (int64_t c = 0; c < C; c++) {
            /* x - max is rounded to float32 first: its error, up to |x - max| 2^-24,
             * moves e^(x - max) by as much relative. */
            const double d = (double)x[i * C + c] - m;
            double want = exp(d) / s, got = (double)y[i * C + c];
            cr_expect(fabs(got - want) <= (1e-6 + fabs(d) * 0x1p-24) * want + 1e-37,
                      "[%lld, %lld]: %.9g, want %.9g", (long long)i, (long long)c, got, want);
        }
    }
    free(x);
    free(y);
}

/* xent_backward with g = 1, scale 1, mx = 0 and inv = 1 writes exactly
 * dx[c] += exp(x[c]) (then dx[label] -= 1): the float32 exp, observed. */
static void exp_f32_through_xent(float *e, const float *x, int64_t n)
{
    double mx = 0.0, inv = 1.0;
    int64_t lab = 0;
    float g = 1.0f;
    memset(e, 0, (size_t)n * sizeof *e);
    tg__xent_backward_f32(e, x, &mx, &inv, &lab, &g, 0, 1.0f, 1, n);
    e[0] += 1.0f;
}

Test(kernels, float32_exp_is_within_one_ulp_and_exact_at_specials)
{
    /* A sweep of the interesting range plus every 65537th bit pattern. */
    enum { SWEEP = 200001 };
    const int64_t n = SWEEP + 65536 + 16;
    float *x = fbuf(n), *e = fbuf(n);
    int64_t k = 0;
    x[k++] = 0.0f; /* x[0] first: exp(0) = 1 exactly, so e[0] += 1 restores it */
    for (int64_t i = 0; i < SWEEP; i++)
        x[k++] = -110.0f + 200.0f * (float)i / (float)(SWEEP - 1);
    for (uint64_t u = 0; u < 0x100000000ull; u += 65537) {
        uint32_t b = (uint32_t)u;
        memcpy(&x[k++], &b, sizeof b);
    }
    const float specials[] = {INFINITY, -INFINITY, NAN, -0.0f, 88.72283f, 88.722839f, -87.33654f,
                              -103.27893f, -103.97208f, -104.0f, 1.0f, -1.0f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        x[k++] = specials[i];
    exp_f32_through_xent(e, x, k);
    cr_expect(e[0] == 1.0f, "exp(0) = %a", (double)e[0]);
    int64_t worst_at = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < k; i++) {
        const float want = (float)exp((double)x[i]);
        if (isnan(x[i])) {
            cr_expect(isnan(e[i]), "exp(NaN) = %a", (double)e[i]);
            continue;
        }
        if (isinf(want) || want == 0.0f) {
            cr_expect(e[i] == want, "exp(%a) = %a, want %a", (double)x[i], (double)e[i],
                      (double)want);
            continue;
        }
        int32_t a, b;
        memcpy(&a, &e[i], sizeof a);
        memcpy(&b, &want, sizeof b);
        const double ulps = fabs((double)a - (double)b);
        if (ulps > worst) {
            worst = ulps;
            worst_at = i;
        }
    }
    cr_expect(worst <= 1.0, "exp(%a) = %a is %g ulp from %a", (double)x[worst_at],
              (double)e[worst_at], worst, (double)(float)exp((double)x[worst_at]));
    free(x);
    free(e);
}

/* ---------------------------------------- reductions, transpose, norm */

static void sc_rest(sink *s)
{
    const int64_t n = 64 * 32 * 28 + 13;
    float *x = fbuf(n), *y = fbuf(n), *g = fbuf(n), *d = fbuf(n);
    fill(x, n, 90, false);
    fill(g, n, 91, false);
    /* sums: full, rows, columns */
    tg__sum_axis_f32(y, x, 1, n, 1, 1.0);
    put_f32(s, y, 1);
    tg__sum_axis_f32(y, x, 13, n / 13, 1, 3.0);
    put_f32(s, y, 13);
    tg__sum_axis_f32(y, x, 1, 13, n / 13, 1.0);
    put_f32(s, y, n / 13);
    tg__max_axis_f32(y, NULL, x, 13, n / 13, 1);
    put_f32(s, y, 13);
    memcpy(d, x, (size_t)n * sizeof *d);
    tg__sum_axis_backward_f32(d, g, 13, n / 13, 1, 0.25);
    put_f32(s, d, n);
    /* transpose of [37, 1549] and of dims 1 and 3 of [3, 41, 2, 53] */
    tg__transpose_f32(y, x, 1, 37, 1, 1549, 1);
    put_f32(s, y, 37 * 1549);
    memcpy(d, x, (size_t)n * sizeof *d);
    tg__transpose_add_f32(d, g, 3, 41, 2, 53, 1);
    put_f32(s, d, n);
    /* batch norm [8, 16, 9 * 11] and dropout */
    const int64_t N = 8, C = 16, HW = 99;
    double mean[16], var[16], invstd[16], s1[16], s2[16];
    float w[16], b[16];
    for (int c = 0; c < C; c++) {
        w[c] = 1.0f + 0.01f * (float)c;
        b[c] = 0.1f * (float)c;
    }
    tg__bn2d_stats_f32(mean, var, x, N, C, HW);
    for (int c = 0; c < C; c++)
        invstd[c] = 1.0 / sqrt(var[c] + 1e-5);
    put_f64(s, mean, 16);
    put_f64(s, var, 16);
    tg__bn2d_forward_f32(y, x, mean, invstd, w, b, N, C, HW);
    put_f32(s, y, N * C * HW);
    tg__bn2d_sums_f32(s1, s2, g, x, mean, invstd, N, C, HW);
    put_f64(s, s1, 16);
    put_f64(s, s2, 16);
    memset(d, 0, (size_t)n * sizeof *d);
    tg__bn2d_backward_x_f32(d, g, x, mean, invstd, w, s1, s2, 1, N, C, HW);
    put_f32(s, d, N * C * HW);
    uint8_t *mask = malloc((size_t)n);
    cr_assert(mask);
    for (int64_t i = 0; i < n; i++)
        mask[i] = (uint8_t)((i * 7919) % 10 < 7);
    tg__dropout_forward_f32(y, x, mask, 0.7f, n);
    put_f32(s, y, n);
    memset(d, 0, (size_t)n * sizeof *d);
    tg__dropout_backward_f32(d, g, mask, 0.7f, n);
    put_f32(s, d, n);
    free(mask);
    free(x);
    free(y);
    free(g);
    free(d);
}

Test(kernels, reductions_transpose_norm_dropout_same_bits_at_every_cpu_level)
{
    expect_same_at_every_level(sc_rest, "sum / transpose / batchnorm / dropout");
}

Test(kernels, transpose_matches_the_index_formula_for_ragged_tiles)
{
    const int64_t dims[][5] = {{1, 37, 1, 1553, 1}, {3, 41, 2, 53, 1}, {1, 8, 1, 8, 1},
                               {2, 70, 1, 9, 1},    {1, 130, 3, 67, 1}};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        const int64_t A = dims[k][0], P = dims[k][1], B = dims[k][2], Q = dims[k][3];
        const int64_t n = A * P * B * Q;
        float *x = fbuf(n), *y = fbuf(n), *w = fbuf(n);
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)i;
        tg__transpose_f32(y, x, A, P, B, Q, 1);
        for (int64_t a = 0; a < A; a++)
            for (int64_t p = 0; p < P; p++)
                for (int64_t bb = 0; bb < B; bb++)
                    for (int64_t q = 0; q < Q; q++)
                        w[((a * Q + q) * B + bb) * P + p] = x[((a * P + p) * B + bb) * Q + q];
        expect_values(y, w, n, "transpose");
        for (int64_t i = 0; i < n; i++)
            y[i] = 1.0f;
        tg__transpose_add_f32(y, x, A, P, B, Q, 1);
        for (int64_t i = 0; i < n; i++)
            w[i] += 1.0f;
        expect_values(y, w, n, "transpose_add");
        free(x);
        free(y);
        free(w);
    }
}

/* ------------------------------------------------------ thread counts */

/* The next len floats of out. */
static float *take(float *out, int64_t n_out, int64_t *at, int64_t len)
{
    cr_assert(*at + len <= n_out);
    *at += len;
    return out + *at - len;
}

/* Each threaded kernel above its threshold: 1 and 2 threads, same bits. */
static void run_threaded(float *out, int64_t n_out, double *tot)
{
    const int64_t n = 64 * 32 * 28 * 28 / 4; /* 401408: above every threshold */
    float *x = fbuf(n), *g = fbuf(n), *t = fbuf(n);
    fill(x, n, 7, false);
    fill(g, n, 8, false);
    int64_t at = 0;
#define TAKE(len) take(out, n_out, &at, (len))
    tg__ew_unary_f32(TG__EWU_RELU, n, TAKE(n), x, 0.0);
    tg__ew_binary_f32(TG__EWB_MUL, n, TAKE(n), x, 1, g, 1);
    double s = 0.0;
    tg__ew_bgrad_f32d(TG__EWG_MUL, n, &s, 0, g, x, 1, NULL);
    tot[0] = s;
    tg__sum_axis_f32(TAKE(1), x, 1, n, 1, 1.0);
    tg__sum_axis_f32(TAKE(64), x, 64, n / 64, 1, 1.0);
    tg__sum_axis_f32(TAKE(n / 64), x, 1, 64, n / 64, 1.0);
    const tg__pool2d_geom geo = {.H = 28, .W = 28, .OH = 14, .OW = 14, .KH = 2, .KW = 2,
                                 .SH = 2, .SW = 2, .DH = 1, .DW = 1};
    int32_t *am = calloc((size_t)n / 4, sizeof *am);
    cr_assert(am);
    tg__maxpool2d_forward_f32(TAKE(n / 4), am, x, n / 784, &geo);
    memcpy(TAKE(n / 4), am, (size_t)n / 4 * sizeof *am);
    free(am);
    float *sm = TAKE(n);
    tg__softmax_forward_f32(sm, x, n / 1000, 1000, 1);
    int64_t *lab = calloc((size_t)n / 1000, sizeof *lab);
    double *mx = calloc((size_t)n / 1000, sizeof *mx), *inv = calloc((size_t)n / 1000, sizeof *inv);
    cr_assert(lab && mx && inv);
    tot[1] = tg__xent_forward_f32(NULL, mx, inv, x, lab, n / 1000, 1000);
    tg__transpose_f32(TAKE(n), x, 1, 512, 1, n / 512, 1);
    free(lab);
    free(mx);
    free(inv);
    free(x);
    free(g);
    free(t);
#undef TAKE
}

Test(kernels, threaded_kernels_give_the_same_bits_with_1_and_2_threads)
{
    const int64_t n_out = 6 * 401408;
    float *a = fbuf(n_out), *b = fbuf(n_out);
    double ta[2], tb[2];
    tg_set_num_threads(1);
    run_threaded(a, n_out, ta);
    tg_set_num_threads(2);
    run_threaded(b, n_out, tb);
    int64_t at = -1;
    cr_expect(same_bits(a, b, n_out, &at), "1 vs 2 threads differ at %lld", (long long)at);
    cr_expect(memcmp(ta, tb, sizeof ta) == 0, "sums differ: %.17g %.17g vs %.17g %.17g", ta[0],
              ta[1], tb[0], tb[1]);
    free(a);
    free(b);
}
