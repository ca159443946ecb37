/* Losses: tg_cross_entropy(_ex), tg_cross_entropy_soft, tg_nll_loss, tg_mse_loss.
 * Gradcheck table (several N and C including N = 1, every reduction, soft
 * targets with and without grad, mse at ranks 0-4), the seed 002 NN1/NN2 table
 * and seed 003 bits/nats example, the exact y - t gradient, values and
 * gradients from PyTorch, stability at 1e4 / 1e300, C = 1, N = 0, label
 * copying, errors and NULL propagation. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})
#define DNAN ((double)NAN)      /* NAN and INFINITY are float constants */
#define DINF ((double)INFINITY)

static const tg_dtype dtypes[] = {TG_F64, TG_F32};

/* ------------------------------------------------------- gradcheck table */

/* Labels for up to 8 rows, valid for the C in the name. */
static const int64_t lab_c1[] = {0, 0, 0, 0, 0, 0, 0, 0};
static const int64_t lab_c2[] = {1, 0, 1, 1, 0, 1, 0, 0};
static const int64_t lab_c3[] = {2, 0, 1, 1, 2, 0, 2, 1};
static const int64_t lab_c4[] = {3, 1, 0, 2, 2, 3, 1, 0};
static const int64_t lab_c5[] = {4, 0, 2, 1, 3, 4, 0, 2};
static const int64_t lab_c7[] = {6, 2, 0, 5, 3, 1, 4, 6};
static const int64_t lab_c10[] = {9, 3, 0, 7, 5, 2, 8, 1};

typedef struct lctx {
    const int64_t *labels;
    tg_reduction red;
} lctx;

static tg_tensor *ce_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    const lctx *c = ctx;
    return tg_cross_entropy_ex(g, xs[0], c->labels, c->red);
}

static tg_tensor *nll_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    const lctx *c = ctx;
    return tg_nll_loss(g, xs[0], c->labels, c->red);
}

static tg_tensor *soft_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return tg_cross_entropy_soft(g, xs[0], xs[1], *(const tg_reduction *)ctx);
}

static tg_tensor *mse_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return tg_mse_loss(g, xs[0], xs[1], *(const tg_reduction *)ctx);
}

static const tg_reduction reds[] = {TG_REDUCTION_MEAN, TG_REDUCTION_SUM, TG_REDUCTION_NONE};
#define RED(r) ((const void *)&reds[TG_REDUCTION_##r])

#define IN(nd, fl, ng, ...) {.ndim = (nd), .shape = {__VA_ARGS__}, .fill = (fl), .no_grad = (ng)}

/* Hard-label ops: logits [N, C] uniform in [-1, 1], labels lab_c<C>. */
#define LBL(op, fn, N, C, r)                                                                   \
    {op, "[" #N ", " #C "] " #r, fn, &(const lctx){lab_c##C, TG_REDUCTION_##r}, 1,              \
     {IN(2, GC_UNIFORM, false, N, C)}}
/* Soft targets: fill tf (GC_POSITIVE: unnormalised, so sum_c t != 1 is
 * exercised; GC_UNIFORM: mixed signs), target differentiated unless tng. */
#define SOFT(N, C, r, tf, tng)                                                                 \
    {"cross_entropy_soft", "[" #N ", " #C "] " #r " target " #tf " no_grad=" #tng, soft_fn,     \
     RED(r), 2, {IN(2, GC_UNIFORM, false, N, C), IN(2, tf, tng, N, C)}}
#define MSE(r, bng, nd, ...)                                                                   \
    {"mse_loss", "[" #__VA_ARGS__ "] " #r " b no_grad=" #bng, mse_fn, RED(r), 2,                 \
     {IN(nd, GC_UNIFORM, false, __VA_ARGS__), IN(nd, GC_UNIFORM, bng, __VA_ARGS__)}}

/* cross_entropy and cross_entropy_soft at C = 1 have zero gradients (the loss
 * is identically 0); they are tested exactly below instead. */
const gc_case gc_cases_loss[] = {
    LBL("cross_entropy", ce_fn, 1, 2, MEAN),
    LBL("cross_entropy", ce_fn, 1, 5, SUM),
    LBL("cross_entropy", ce_fn, 1, 10, NONE),
    LBL("cross_entropy", ce_fn, 2, 3, MEAN),
    LBL("cross_entropy", ce_fn, 2, 3, SUM),
    LBL("cross_entropy", ce_fn, 2, 3, NONE),
    LBL("cross_entropy", ce_fn, 3, 4, MEAN),
    LBL("cross_entropy", ce_fn, 3, 4, NONE),
    LBL("cross_entropy", ce_fn, 4, 7, MEAN),
    LBL("cross_entropy", ce_fn, 4, 7, SUM),
    LBL("cross_entropy", ce_fn, 5, 2, MEAN),
    LBL("cross_entropy", ce_fn, 5, 2, SUM),
    LBL("cross_entropy", ce_fn, 5, 2, NONE),
    LBL("cross_entropy", ce_fn, 6, 5, MEAN),
    LBL("cross_entropy", ce_fn, 6, 5, NONE),
    LBL("cross_entropy", ce_fn, 7, 3, SUM),
    LBL("cross_entropy", ce_fn, 8, 10, MEAN),
    LBL("cross_entropy", ce_fn, 8, 10, SUM),
    LBL("cross_entropy", ce_fn, 8, 10, NONE),
    LBL("cross_entropy", ce_fn, 8, 4, MEAN),
    LBL("cross_entropy", ce_fn, 3, 7, NONE),

    SOFT(1, 2, MEAN, GC_POSITIVE, false),
    SOFT(1, 5, SUM, GC_POSITIVE, true),
    SOFT(1, 4, NONE, GC_UNIFORM, false),
    SOFT(2, 3, MEAN, GC_POSITIVE, true),
    SOFT(2, 3, SUM, GC_POSITIVE, false),
    SOFT(2, 3, NONE, GC_POSITIVE, false),
    SOFT(3, 4, MEAN, GC_UNIFORM, false),
    SOFT(3, 4, SUM, GC_UNIFORM, true),
    SOFT(3, 4, NONE, GC_POSITIVE, true),
    SOFT(4, 7, MEAN, GC_POSITIVE, false),
    SOFT(4, 7, NONE, GC_POSITIVE, false),
    SOFT(5, 2, MEAN, GC_POSITIVE, false),
    SOFT(5, 2, SUM, GC_UNIFORM, false),
    SOFT(5, 2, NONE, GC_POSITIVE, true),
    SOFT(6, 5, MEAN, GC_POSITIVE, true),
    SOFT(6, 5, SUM, GC_POSITIVE, false),
    SOFT(7, 3, NONE, GC_UNIFORM, false),
    SOFT(8, 10, MEAN, GC_POSITIVE, false),
    SOFT(8, 10, SUM, GC_POSITIVE, true),
    SOFT(8, 10, NONE, GC_POSITIVE, false),
    SOFT(2, 9, MEAN, GC_UNIFORM, true),

    LBL("nll_loss", nll_fn, 1, 1, MEAN),
    LBL("nll_loss", nll_fn, 1, 1, NONE),
    LBL("nll_loss", nll_fn, 4, 1, SUM),
    LBL("nll_loss", nll_fn, 1, 3, MEAN),
    LBL("nll_loss", nll_fn, 1, 5, SUM),
    LBL("nll_loss", nll_fn, 2, 3, MEAN),
    LBL("nll_loss", nll_fn, 2, 3, SUM),
    LBL("nll_loss", nll_fn, 2, 3, NONE),
    LBL("nll_loss", nll_fn, 3, 4, MEAN),
    LBL("nll_loss", nll_fn, 3, 4, NONE),
    LBL("nll_loss", nll_fn, 4, 7, SUM),
    LBL("nll_loss", nll_fn, 5, 2, MEAN),
    LBL("nll_loss", nll_fn, 5, 2, NONE),
    LBL("nll_loss", nll_fn, 6, 5, SUM),
    LBL("nll_loss", nll_fn, 7, 3, MEAN),
    LBL("nll_loss", nll_fn, 8, 10, MEAN),
    LBL("nll_loss", nll_fn, 8, 10, SUM),
    LBL("nll_loss", nll_fn, 8, 10, NONE),
    LBL("nll_loss", nll_fn, 8, 2, MEAN),
    LBL("nll_loss", nll_fn, 3, 7, NONE),
    LBL("nll_loss", nll_fn, 6, 7, MEAN),

    MSE(MEAN, false, 0, 0),
    MSE(SUM, true, 0, 0),
    MSE(NONE, false, 0, 0),
    MSE(MEAN, false, 1, 1),
    MSE(MEAN, false, 1, 7),
    MSE(SUM, false, 1, 5),
    MSE(NONE, false, 1, 6),
    MSE(MEAN, true, 2, 3, 4),
    MSE(SUM, false, 2, 3, 4),
    MSE(NONE, false, 2, 4, 3),
    MSE(MEAN, false, 2, 1, 5),
    MSE(NONE, true, 2, 5, 1),
    MSE(MEAN, false, 3, 2, 3, 4),
    MSE(SUM, true, 3, 2, 1, 3),
    MSE(NONE, false, 3, 3, 2, 2),
    MSE(MEAN, false, 4, 2, 3, 2, 2),
    MSE(SUM, false, 4, 1, 3, 1, 4),
    MSE(NONE, false, 4, 2, 1, 3, 2),
    MSE(NONE, true, 4, 1, 2, 2, 3),
    MSE(MEAN, false, 2, 8, 10),
    MSE(SUM, false, 3, 3, 5, 7),
};
const size_t gc_n_loss = sizeof gc_cases_loss / sizeof gc_cases_loss[0];

Test(ops_loss, gradcheck_table)
{
    gc_run_table(gc_cases_loss, gc_n_loss);
}

/* A case where the target also feeds the logits: cross_entropy_soft(x, x). */
static tg_tensor *soft_self_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_cross_entropy_soft(g, xs[0], xs[0], TG_REDUCTION_SUM);
}

Test(ops_loss, soft_target_and_logits_same_leaf_gradcheck)
{
    tg_tensor *x = tgt_random(TG_F64, 2, SHAPE(3, 4), 0.5, 2, 21);
    tg_tensor_set_requires_grad(x, true);
    tg_gradcheck_opts o = {.atol = 1e-6, .rtol = 1e-5};
    cr_expect(tg_gradcheck(soft_self_fn, NULL, &x, 1, &o, NULL) == TG_OK, "%s", tg_last_error());
    tg_tensor_free(x);
}

/* ------------------------------------------------------------- helpers */

static tg_tensor *leaf(tg_dtype dt, int nd, const int64_t *shape, const double *v, bool grad)
{
    tg_tensor *t = tgt_tensor(dt, nd, shape, v);
    tg_tensor_set_requires_grad(t, grad);
    return t;
}

static void expect_scalar(const tg_tensor *t, double want, double atol, const char *what)
{
    cr_assert(t, "%s: %s", what, tg_last_error());
    cr_expect(tg_tensor_ndim(t) == 0, "%s: ndim %d", what, tg_tensor_ndim(t));
    double got = tg_tensor_get(t, 0);
    cr_expect(fabs(got - want) <= atol, "%s: got %.10g, want %.10g", what, got, want);
}

/* ------------------------------------------------------- seed vectors */

/* Seed 002, the NN1 / NN2 table: predicted probabilities (Dog, Cat) per row and
 * the one-hot truth (rows 1 and 3 are Dog = class 0, row 2 is Cat = class 1).
 * Mean cross-entropy (natural log) over the 3 rows: NN1 0.376, NN2 1.057.
 * Mean squared error as the slide counts it (squared errors summed over the
 * classes, averaged over the rows): NN1 0.253, NN2 0.707, i.e. sum / 3.
 * PyTorch's mse_loss mean averages over all 6 elements: 0.127 and 0.353. */
static const double NN1[] = {0.9, 0.1, 0.1, 0.9, 0.4, 0.6};
static const double NN2[] = {0.6, 0.4, 0.3, 0.7, 0.1, 0.9};
static const double ONEHOT[] = {1, 0, 0, 1, 1, 0};
static const int64_t NN_LABELS[] = {0, 1, 0};

Test(ops_loss, nn1_nn2_table_matches_seed_002)
{
    const double *probs[] = {NN1, NN2};
    const double want_ce[] = {0.376, 1.057}, want_mse[] = {0.253, 0.707};
    const double want_mse_el[] = {0.127, 0.353};
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 2; k++) {
            double lp[6];
            for (int i = 0; i < 6; i++)
                lp[i] = log(probs[k][i]);
            tg_graph *g = tg_graph_new();
            tg_tensor *logp = leaf(dtypes[d], 2, SHAPE(3, 2), lp, false);
            tg_tensor *p = leaf(dtypes[d], 2, SHAPE(3, 2), probs[k], false);
            tg_tensor *t = leaf(dtypes[d], 2, SHAPE(3, 2), ONEHOT, false);
            /* nll of the logs; soft cross-entropy with the one-hot rows; and the
             * fused op on logits log p (softmax(log p) = p as each row sums to 1). */
            expect_scalar(tg_nll_loss(g, logp, NN_LABELS, TG_REDUCTION_MEAN), want_ce[k], 5e-4,
                          "nll");
            expect_scalar(tg_cross_entropy_soft(g, logp, t, TG_REDUCTION_MEAN), want_ce[k], 5e-4,
                          "soft");
            expect_scalar(tg_cross_entropy(g, logp, NN_LABELS), want_ce[k], 5e-4, "fused");
            tg_tensor *sq = tg_mse_loss(g, p, t, TG_REDUCTION_SUM);
            cr_assert(sq, "%s", tg_last_error());
            double mse = tg_tensor_get(sq, 0) / 3.0;
            cr_expect(fabs(mse - want_mse[k]) <= 5e-4, "NN%d mse %g", k + 1, mse);
            expect_scalar(tg_mse_loss(g, p, t, TG_REDUCTION_MEAN), want_mse_el[k], 5e-4,
                          "mse mean over elements");
            /* Per-row losses: -log of the probability of the true class. */
            tg_tensor *rows = tg_cross_entropy_ex(g, logp, NN_LABELS, TG_REDUCTION_NONE);
            cr_assert(rows, "%s", tg_last_error());
            cr_expect(tg_tensor_ndim(rows) == 1 && tg_tensor_shape(rows)[0] == 3);
            for (int i = 0; i < 3; i++)
                cr_expect(fabs(tg_tensor_get(rows, i) + lp[2 * i + NN_LABELS[i]]) < 1e-6,
                          "row %d", i);
            tg_tensor_free(logp);
            tg_tensor_free(p);
            tg_tensor_free(t);
            tg_graph_free(g);
        }
}

/* Seed 003: one-hot [1, 0, 0, 0, 0] against the estimate [0.1, 0.52, 0.3, 0.08,
 * 0.27] gives -log2(0.1) = 3.322 bits = -ln(0.1) = 2.303 nats. The estimate
 * sums to 1.27, so it is used as given through nll_loss of its logs (a softmax
 * over log q would renormalise it and give -ln(0.1 / 1.27) = 2.542 instead). */
Test(ops_loss, bits_and_nats_match_seed_003)
{
    const double q[] = {0.1, 0.52, 0.3, 0.08, 0.27};
    const int64_t label[] = {0};
    for (int d = 0; d < 2; d++) {
        double lq[5];
        for (int i = 0; i < 5; i++)
            lq[i] = log(q[i]);
        tg_graph *g = tg_graph_new();
        tg_tensor *logq = leaf(dtypes[d], 2, SHAPE(1, 5), lq, false);
        tg_tensor *l = tg_nll_loss(g, logq, label, TG_REDUCTION_MEAN);
        expect_scalar(l, 2.303, 5e-4, "nats");
        cr_expect(fabs(tg_tensor_get(l, 0) / log(2.0) - 3.322) <= 5e-4, "bits %g",
                  tg_tensor_get(l, 0) / log(2.0));
        tg_tensor *t = leaf(dtypes[d], 2, SHAPE(1, 5), VALS(1, 0, 0, 0, 0), false);
        expect_scalar(tg_cross_entropy_soft(g, logq, t, TG_REDUCTION_SUM), -log(0.1 / 1.27), 1e-5,
                      "soft renormalises");
        tg_tensor_free(t);
        tg_tensor_free(logq);
        tg_graph_free(g);
    }
}

/* Seed 002: the gradient of cross-entropy after softmax w.r.t. the logits is
 * y - t. With sum reduction and dL = 1 the fused op's gradient equals
 * tg_softmax(x) - onehot exactly (same bits), in both dtypes; with mean it is
 * (y - t) / N. */
Test(ops_loss, gradient_is_softmax_minus_onehot_exactly)
{
    const int64_t N = 4, C = 5;
    for (int d = 0; d < 2; d++)
        for (int mean = 0; mean < 2; mean++) {
            tg_tensor *x = tgt_random(dtypes[d], 2, SHAPE(N, C), -4, 4, 17);
            tg_tensor_set_requires_grad(x, true);
            tg_graph *g = tg_graph_new();
            tg_tensor *l = tg_cross_entropy_ex(g, x, lab_c5, mean ? TG_REDUCTION_MEAN
                                                                   : TG_REDUCTION_SUM);
            tg_tensor *y = tg_softmax(g, x, 1);
            cr_assert(l && y, "%s", tg_last_error());
            cr_assert(tg_backward(g, l) == TG_OK, "%s", tg_last_error());
            tg_tensor *dx = tg_tensor_grad(x);
            for (int64_t i = 0; i < N; i++)
                for (int64_t c = 0; c < C; c++) {
                    double yt = tg_tensor_get(y, i * C + c) - (c == lab_c5[i] ? 1.0 : 0.0);
                    if (dtypes[d] == TG_F32)
                        yt = (double)(float)yt; /* float subtraction is correctly rounded */
                    double got = tg_tensor_get(dx, i * C + c);
                    if (mean)
                        cr_expect(fabs(got - yt / (double)N) <= 1e-7, "[%lld, %lld]",
                                  (long long)i, (long long)c);
                    else
                        cr_expect(got == yt, "%s [%lld, %lld]: %.17g != y - t %.17g",
                                  tg_dtype_name(dtypes[d]), (long long)i, (long long)c, got, yt);
                }
            tg_tensor_free(x);
            tg_graph_free(g);
        }
}

/* ------------------------------------------------- PyTorch cross-check */

/* PyTorch 1.13, float64, x = X34 [3, 4], labels [2, 0, 1], soft target T34:
 *   F.cross_entropy(x, labels)                   (mean)
 *   F.cross_entropy(x, labels, reduction='none') backward([0.5, -1, 2])
 *   F.cross_entropy(x, T34) (mean), and reduction='sum'
 *   F.nll_loss(x, labels, reduction='sum')
 *   F.mse_loss(x, V34) (mean)
 * with x.grad (and T34.grad, V34.grad) printed with 17 digits. */
static const double X34[] = {0.3, -1.2, 2.0, 0.5, 1.5, 0.1, -0.7, 0.0, -0.4, 0.9, 0.2, -2.1};
static const double V34[] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, -1.0, 0.25, 0.15};
static const double T34[] = {0.5, 1.0, 0.2, 0.3, 0.7, 0.1, 0.1, 0.1, 0.25, 0.25, 0.25, 0.25};
static const int64_t LAB3[] = {2, 0, 1};

Test(ops_loss, cross_entropy_matches_pytorch)
{
    const double dmean[] = {0.042095619396927728, 0.0093928022975838313, -0.10290412733237986,
                            0.051415705637868278, -0.12243365173018861,  0.052007221179586977,
                            0.023368350819239037, 0.047058079731362543,  0.049944319634720277,
                            -0.15007280773114379, 0.091004483779136669,  0.0091240043172868893};
    const double rows[] = {0.36919930736901835, 0.4577604125357736, 0.59823421271281196};
    const double dnone[] = {0.063143429095391598, 0.014089203446375749, -0.15435619099856979,
                            0.077123558456802424, 0.36730095519056583,  -0.15602166353876093,
                            -0.070105052457717115, -0.14117423919408764, 0.29966591780832169,
                            -0.90043684638686283, 0.54602690267482001,   0.054744025903721343};
    for (int d = 0; d < 2; d++) {
        double tol = dtypes[d] == TG_F32 ? 1e-6 : 1e-15;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = leaf(dtypes[d], 2, SHAPE(3, 4), X34, true);
        tg_tensor *l = tg_cross_entropy(g, x, LAB3);
        expect_scalar(l, 0.47506464420586791, tol, "mean");
        cr_assert(tg_backward(g, l) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), dmean, tol, 1e-6);
        tg_tensor_zero_grad(x);
        tg_tensor *r = tg_cross_entropy_ex(g, x, LAB3, TG_REDUCTION_NONE);
        expect_close(r, rows, tol, 1e-6);
        tg_tensor *v = tgt_tensor(dtypes[d], 1, SHAPE(3), VALS(0.5, -1, 2));
        cr_assert(tg_backward_with(g, r, v) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), dnone, tol, 1e-6);
        tg_tensor_free(v);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

Test(ops_loss, cross_entropy_soft_matches_pytorch)
{
    const double dx[] = {-0.082475427872811202, -0.31454772873816567, 0.39419174533524026,
                         0.002831411275736568,  -0.022433651730188596, 0.01867388784625364,
                         -0.0099649825140942956, 0.013724746398029211, -0.033389013698613051,
                         0.099927192268856185,  0.0076711504458033351, -0.074209329016046433};
    const double dt[] = {0.68973310245633945, 1.1897331024563393, 0.12306643578967277,
                         0.62306643578967269, 0.15258680417859119, 0.61925347084525773,
                         0.88592013751192455, 0.65258680417859116, 0.6327447375709373,
                         0.19941140423760398, 0.43274473757093729, 1.1994114042376038};
    for (int d = 0; d < 2; d++) {
        double tol = dtypes[d] == TG_F32 ? 2e-6 : 1e-15;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = leaf(dtypes[d], 2, SHAPE(3, 4), X34, true);
        tg_tensor *t = leaf(dtypes[d], 2, SHAPE(3, 4), T34, true);
        tg_tensor *l = tg_cross_entropy_soft(g, x, t, TG_REDUCTION_MEAN);
        expect_scalar(l, 2.6847977466622077, tol, "soft mean");
        cr_assert(tg_backward(g, l) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), dx, tol, 1e-6);
        expect_close(tg_tensor_grad(t), dt, tol, 1e-6);
        expect_scalar(tg_cross_entropy_soft(g, x, t, TG_REDUCTION_SUM), 8.0543932399866236,
                      4 * tol, "soft sum");
        tg_tensor_free(x);
        tg_tensor_free(t);
        tg_graph_free(g);
    }
}

Test(ops_loss, nll_and_mse_match_pytorch)
{
    const double da[] = {0.033333333333333326, -0.16666666666666666, 0.28333333333333333,
                         0.016666666666666663, 0.33333333333333331,  -0.083333333333333329,
                         -0.23333333333333331, 0.13333333333333333,  -0.21666666666666667,
                         0.31666666666666665,  -0.0083333333333333315, -0.375};
    double db[12];
    for (int i = 0; i < 12; i++)
        db[i] = -da[i];
    for (int d = 0; d < 2; d++) {
        double tol = dtypes[d] == TG_F32 ? 1e-6 : 1e-15;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = leaf(dtypes[d], 2, SHAPE(3, 4), X34, true);
        tg_tensor *l = tg_nll_loss(g, x, LAB3, TG_REDUCTION_SUM);
        expect_scalar(l, -4.4000000000000004, tol, "nll sum");
        cr_assert(tg_backward(g, l) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(0, 0, -1, 0, -1, 0, 0, 0, 0, -1, 0, 0), 0.0, 0.0);
        tg_tensor_zero_grad(x);
        tg_tensor *b = leaf(dtypes[d], 2, SHAPE(3, 4), V34, true);
        tg_tensor *m = tg_mse_loss(g, x, b, TG_REDUCTION_MEAN);
        expect_scalar(m, 1.7629166666666667, tol, "mse mean");
        cr_assert(tg_backward(g, m) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), da, tol, 1e-6);
        expect_close(tg_tensor_grad(b), db, tol, 1e-6);
        tg_tensor_free(x);
        tg_tensor_free(b);
        tg_graph_free(g);
    }
}

/* ---------------------------------------------------------- stability */

static bool all_finite(const tg_tensor *t)
{
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        if (!isfinite(tg_tensor_get(t, i)))
            return false;
    return true;
}

/* Logits of magnitude 1e4 (float32) and 1e300 (float64). PyTorch 1.13:
 *   F.cross_entropy([[M, -M, 0], [-M, -M, M]], [1, 0]) -> 2M (20000.0, 2e+300)
 *   grad -> [0.5, -0.5, 0, -0.5, 0, 0.5] in both cases. */
Test(ops_loss, cross_entropy_huge_logits_stay_finite)
{
    const double Ms[] = {1e300, 1e4};
    const int64_t lab[] = {1, 0};
    for (int d = 0; d < 2; d++) {
        double M = Ms[d];
        tg_graph *g = tg_graph_new();
        tg_tensor *x = leaf(dtypes[d], 2, SHAPE(2, 3), VALS(M, -M, 0, -M, -M, M), true);
        tg_tensor *l = tg_cross_entropy(g, x, lab);
        expect_scalar(l, 2 * M, 2 * M * 1e-7, "huge mean");
        cr_assert(tg_backward(g, l) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(0.5, -0.5, 0, -0.5, 0, 0.5), 0.0, 0.0);
        /* Soft targets and per-row losses stay finite as well. */
        tg_tensor *t = leaf(dtypes[d], 2, SHAPE(2, 3), VALS(0.2, 0.3, 0.5, 0.6, 0.2, 0.2), true);
        tg_tensor *ls = tg_cross_entropy_soft(g, x, t, TG_REDUCTION_NONE);
        cr_assert(ls, "%s", tg_last_error());
        cr_expect(all_finite(ls));
        tg_tensor_zero_grad(x);
        tg_tensor *v = tgt_tensor(dtypes[d], 1, SHAPE(2), VALS(1, -2));
        cr_assert(tg_backward_with(g, ls, v) == TG_OK, "%s", tg_last_error());
        cr_expect(all_finite(tg_tensor_grad(x)) && all_finite(tg_tensor_grad(t)));
        tg_tensor_free(v);
        tg_tensor_free(t);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* An all -inf row of logits gives a NaN loss and NaN gradients for that row,
 * as PyTorch 1.13: F.cross_entropy([[-inf, -inf, -inf]], [1]) -> nan, grad nan. */
Test(ops_loss, all_neg_inf_logits_row_gives_nan_like_pytorch)
{
    const double ni = -DINF;
    const int64_t lab[] = {1, 2};
    for (int d = 0; d < 2; d++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = leaf(dtypes[d], 2, SHAPE(2, 3), VALS(ni, ni, ni, 1, 2, 3), true);
        tg_tensor *l = tg_cross_entropy_ex(g, x, lab, TG_REDUCTION_NONE);
        cr_assert(l, "%s", tg_last_error());
        cr_expect(isnan(tg_tensor_get(l, 0)));
        cr_expect(fabs(tg_tensor_get(l, 1) - 0.40760596444438057) < 1e-6);
        tg_tensor *v = tgt_tensor(dtypes[d], 1, SHAPE(2), VALS(1, 1));
        cr_assert(tg_backward_with(g, l, v) == TG_OK, "%s", tg_last_error());
        for (int64_t i = 0; i < 3; i++)
            cr_expect(isnan(tg_tensor_get(tg_tensor_grad(x), i)));
        for (int64_t i = 3; i < 6; i++)
            cr_expect(isfinite(tg_tensor_get(tg_tensor_grad(x), i)));
        tg_tensor_free(v);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------------- edge cases */

/* C = 1 is legal: softmax of one class is 1, so the loss and its gradient are
 * exactly 0 (PyTorch: F.cross_entropy(torch.zeros(2, 1), [0, 0]) -> 0). */
Test(ops_loss, single_class_gives_zero_loss_and_gradient)
{
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < 3; r++) {
            tg_graph *g = tg_graph_new();
            tg_tensor *x = leaf(dtypes[d], 2, SHAPE(3, 1), VALS(2.5, -7, 1e3), true);
            tg_tensor *t = leaf(dtypes[d], 2, SHAPE(3, 1), VALS(1, 0.5, 2), true);
            tg_tensor *l = tg_cross_entropy_ex(g, x, lab_c1, reds[r]);
            tg_tensor *s = tg_cross_entropy_soft(g, x, t, reds[r]);
            cr_assert(l && s, "%s", tg_last_error());
            for (int64_t i = 0; i < tg_tensor_numel(l); i++)
                cr_expect(tg_tensor_get(l, i) == 0.0 && tg_tensor_get(s, i) == 0.0);
            tg_tensor *v = tg_tensor_new(dtypes[d], tg_tensor_ndim(l), tg_tensor_shape(l));
            tg_tensor_fill(v, 1.5);
            cr_assert(tg_backward_with(g, l, v) == TG_OK, "%s", tg_last_error());
            cr_assert(tg_backward_with(g, s, v) == TG_OK, "%s", tg_last_error());
            for (int64_t i = 0; i < 3; i++) {
                cr_expect(tg_tensor_get(tg_tensor_grad(x), i) == 0.0);
                cr_expect(tg_tensor_get(tg_tensor_grad(t), i) == 0.0);
            }
            tg_tensor_free(v);
            tg_tensor_free(x);
            tg_tensor_free(t);
            tg_graph_free(g);
        }
}

/* N = 0: mean is NaN (0 / 0, as PyTorch), sum is 0, none has shape [0]. */
Test(ops_loss, empty_batch)
{
    const int64_t dummy[1] = {0};
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(0, 3));
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *m = tg_cross_entropy(g, x, dummy);
    tg_tensor *s = tg_nll_loss(g, x, dummy, TG_REDUCTION_SUM);
    tg_tensor *n = tg_cross_entropy_ex(g, x, dummy, TG_REDUCTION_NONE);
    tg_tensor *q = tg_mse_loss(g, x, x, TG_REDUCTION_MEAN);
    cr_assert(m && s && n && q, "%s", tg_last_error());
    cr_expect(isnan(tg_tensor_get(m, 0)));
    cr_expect(tg_tensor_get(s, 0) == 0.0);
    cr_expect(tg_tensor_ndim(n) == 1 && tg_tensor_shape(n)[0] == 0);
    cr_expect(isnan(tg_tensor_get(q, 0)));
    cr_expect(tg_backward(g, m) == TG_OK, "%s", tg_last_error());
    cr_expect(tg_backward(g, s) == TG_OK, "%s", tg_last_error());
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* Forward copies the labels: changing the caller's array before backward does
 * not change the gradient. */
Test(ops_loss, labels_are_copied_at_forward)
{
    int64_t *lab = malloc(3 * sizeof *lab);
    memcpy(lab, LAB3, sizeof LAB3);
    tg_graph *g = tg_graph_new();
    tg_tensor *x = leaf(TG_F64, 2, SHAPE(3, 4), X34, true);
    tg_tensor *l = tg_cross_entropy_ex(g, x, lab, TG_REDUCTION_SUM);
    tg_tensor *n = tg_nll_loss(g, x, lab, TG_REDUCTION_SUM);
    cr_assert(l && n, "%s", tg_last_error());
    lab[0] = 99; /* out of range now: backward must not read it */
    lab[1] = -5;
    free(lab);   /* nor the freed memory (ASan would report it) */
    cr_assert(tg_backward(g, n) == TG_OK, "%s", tg_last_error());
    expect_close(tg_tensor_grad(x), VALS(0, 0, -1, 0, -1, 0, 0, 0, 0, -1, 0, 0), 0.0, 0.0);
    tg_tensor_zero_grad(x);
    cr_assert(tg_backward(g, l) == TG_OK, "%s", tg_last_error());
    double s = 0.0;
    for (int i = 0; i < 12; i++)
        s += tg_tensor_get(tg_tensor_grad(x), i);
    cr_expect(fabs(s) < 1e-15, "rows of softmax - onehot sum to 0, got %g", s);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 2) < 0 && tg_tensor_get(tg_tensor_grad(x), 4) < 0 &&
              tg_tensor_get(tg_tensor_grad(x), 9) < 0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* Logits that need no gradient record no node; the loss is still computed. */
Test(ops_loss, no_grad_inputs_record_no_node)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = leaf(TG_F32, 2, SHAPE(3, 4), X34, false);
    tg_tensor *t = leaf(TG_F32, 2, SHAPE(3, 4), T34, false);
    tg_tensor *l = tg_cross_entropy(g, x, LAB3);
    tg_tensor *s = tg_cross_entropy_soft(g, x, t, TG_REDUCTION_MEAN);
    cr_assert(l && s, "%s", tg_last_error());
    cr_expect(tg_graph_n_nodes(g) == 0 && !tg_tensor_requires_grad(l));
    expect_scalar(l, 0.47506464420586791, 1e-6, "no-grad mean");
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_graph_free(g);
}

/* Only the target requires grad: the logits get none, the target gets -log_softmax. */
Test(ops_loss, soft_target_only_gradient)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = leaf(TG_F64, 2, SHAPE(3, 4), X34, false);
    tg_tensor *t = leaf(TG_F64, 2, SHAPE(3, 4), T34, true);
    tg_tensor *l = tg_cross_entropy_soft(g, x, t, TG_REDUCTION_SUM);
    tg_tensor *lsm = tg_log_softmax(g, x, 1);
    cr_assert(l && lsm, "%s", tg_last_error());
    cr_assert(tg_backward(g, l) == TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_grad(x) == NULL);
    double want[12];
    for (int i = 0; i < 12; i++)
        want[i] = -tg_tensor_get(lsm, i);
    expect_close(tg_tensor_grad(t), want, 1e-15, 1e-14);
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_graph_free(g);
}

extern const tg_op tg_op_cross_entropy; /* defined in ops/loss.c */

Test(ops_loss, print_attrs_shows_reduction)
{
    char buf[64];
    const lctx a = {LAB3, TG_REDUCTION_NONE};
    tg_node n = {.op = &tg_op_cross_entropy, .attrs = (void *)&a};
    cr_assert(tg_op_cross_entropy.print_attrs);
    tg_op_cross_entropy.print_attrs(&n, buf, sizeof buf);
    cr_expect_str_eq(buf, "reduction=none");
}

/* --------------------------------------------------------------- errors */

Test(ops_loss, label_out_of_range_names_label_index_and_shape)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(4, 5));
    const int64_t neg[] = {0, 1, -1, 2}, big[] = {5, 0, 1, 2}, huge[] = {0, 1, 2, 1000};
    expect_error(tg_cross_entropy(g, x, neg) == NULL, "tg_cross_entropy", "label -1",
                 "index 2", "[4, 5]");
    cr_expect(tg_last_status() == TG_ERR_ARG);
    expect_error(tg_cross_entropy_ex(g, x, big, TG_REDUCTION_SUM) == NULL, "tg_cross_entropy",
                 "label 5", "index 0", "[0, 5)", "[4, 5]");
    expect_error(tg_nll_loss(g, x, huge, TG_REDUCTION_NONE) == NULL, "tg_nll_loss",
                 "label 1000", "index 3", "[4, 5]");
    expect_error(tg_nll_loss(g, x, neg, TG_REDUCTION_MEAN) == NULL, "tg_nll_loss", "label -1",
                 "index 2", "[4, 5]");
    tg_tensor *x0 = tg_tensor_new(TG_F64, 2, SHAPE(2, 0));
    const int64_t zero[] = {0, 0};
    expect_error(tg_cross_entropy(g, x0, zero) == NULL, "tg_cross_entropy", "label 0",
                 "index 0", "[2, 0]");
    tg_tensor_free(x0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_loss, labels_null_is_an_error)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 2, SHAPE(4, 5));
    expect_error(tg_cross_entropy(g, x, NULL) == NULL, "tg_cross_entropy", "labels are NULL",
                 "[4, 5]");
    cr_expect(tg_last_status() == TG_ERR_NULL);
    expect_error(tg_nll_loss(g, x, NULL, TG_REDUCTION_SUM) == NULL, "tg_nll_loss",
                 "labels are NULL", "[4, 5]");
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_loss, wrong_ranks_are_errors)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x1 = tg_tensor_new(TG_F64, 1, SHAPE(5));
    tg_tensor *x3 = tg_tensor_new(TG_F64, 3, SHAPE(2, 3, 4));
    tg_tensor *x0 = tg_tensor_new(TG_F64, 0, NULL);
    expect_error(tg_cross_entropy(g, x1, LAB3) == NULL, "tg_cross_entropy", "2-D", "[5]");
    cr_expect(tg_last_status() == TG_ERR_SHAPE);
    expect_error(tg_cross_entropy(g, x3, LAB3) == NULL, "tg_cross_entropy", "[2, 3, 4]");
    expect_error(tg_nll_loss(g, x0, LAB3, TG_REDUCTION_MEAN) == NULL, "tg_nll_loss", "2-D",
                 "[]");
    expect_error(tg_cross_entropy_soft(g, x1, x1, TG_REDUCTION_MEAN) == NULL,
                 "tg_cross_entropy_soft", "logits [5]", "target [5]");
    expect_error(tg_cross_entropy_soft(g, x3, x3, TG_REDUCTION_SUM) == NULL,
                 "tg_cross_entropy_soft", "logits [2, 3, 4]", "target [2, 3, 4]");
    tg_tensor_free(x0);
    tg_tensor_free(x1);
    tg_tensor_free(x3);
    tg_graph_free(g);
}

Test(ops_loss, shape_mismatches_show_both_shapes)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(4, 5));
    tg_tensor *t1 = tg_tensor_new(TG_F64, 2, SHAPE(4, 6));
    tg_tensor *t2 = tg_tensor_new(TG_F64, 1, SHAPE(20));
    tg_tensor *a = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *b = tg_tensor_new(TG_F64, 2, SHAPE(3, 2));
    tg_tensor *c = tg_tensor_new(TG_F64, 3, SHAPE(2, 3, 1));
    expect_error(tg_cross_entropy_soft(g, x, t1, TG_REDUCTION_MEAN) == NULL,
                 "tg_cross_entropy_soft", "logits [4, 5]", "target [4, 6]");
    cr_expect(tg_last_status() == TG_ERR_SHAPE);
    expect_error(tg_cross_entropy_soft(g, x, t2, TG_REDUCTION_MEAN) == NULL,
                 "tg_cross_entropy_soft", "logits [4, 5]", "target [20]");
    expect_error(tg_mse_loss(g, a, b, TG_REDUCTION_MEAN) == NULL, "tg_mse_loss", "a [2, 3]",
                 "b [3, 2]");
    cr_expect(tg_last_status() == TG_ERR_SHAPE);
    expect_error(tg_mse_loss(g, a, c, TG_REDUCTION_SUM) == NULL, "tg_mse_loss", "a [2, 3]",
                 "b [2, 3, 1]");
    tg_tensor *f = tg_tensor_new(TG_F32, 2, SHAPE(4, 5));
    expect_error(tg_cross_entropy_soft(g, x, f, TG_REDUCTION_MEAN) == NULL,
                 "tg_cross_entropy_soft", "dtypes differ", "float64 [4, 5]", "float32 [4, 5]");
    tg_tensor_free(f);
    tg_tensor_free(x);
    tg_tensor_free(t1);
    tg_tensor_free(t2);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
    tg_graph_free(g);
}

Test(ops_loss, bad_reduction_is_an_error)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(3, 4));
    const tg_reduction bad = (tg_reduction)7, neg = (tg_reduction)-1;
    expect_error(tg_cross_entropy_ex(g, x, LAB3, bad) == NULL, "tg_cross_entropy",
                 "reduction 7", "logits [3, 4]");
    cr_expect(tg_last_status() == TG_ERR_ARG);
    expect_error(tg_nll_loss(g, x, LAB3, neg) == NULL, "tg_nll_loss", "reduction -1",
                 "logp [3, 4]");
    expect_error(tg_cross_entropy_soft(g, x, x, bad) == NULL, "tg_cross_entropy_soft",
                 "reduction 7", "logits [3, 4]", "target [3, 4]");
    expect_error(tg_mse_loss(g, x, x, (tg_reduction)3) == NULL, "tg_mse_loss", "reduction 3",
                 "a [3, 4]", "b [3, 4]");
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_loss, null_inputs)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(3, 4));
    tg_error_clear();
    expect_error(tg_cross_entropy(g, NULL, LAB3) == NULL, "tg_cross_entropy", "input 0 is NULL");
    tg_error_clear();
    expect_error(tg_cross_entropy_soft(g, x, NULL, TG_REDUCTION_MEAN) == NULL,
                 "tg_cross_entropy_soft", "input 1 is NULL");
    tg_error_clear();
    expect_error(tg_nll_loss(g, NULL, LAB3, TG_REDUCTION_MEAN) == NULL, "tg_nll_loss",
                 "input 0 is NULL");
    tg_error_clear();
    expect_error(tg_mse_loss(g, NULL, x, TG_REDUCTION_MEAN) == NULL, "tg_mse_loss",
                 "input 0 is NULL");
    expect_error(tg_mse_loss(NULL, x, x, TG_REDUCTION_MEAN) == NULL, "tg_mse_loss",
                 "graph is NULL");
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* NULL from an earlier op passes through every loss and keeps the first error,
 * even when the loss's own arguments are also bad (labels NULL). */
Test(ops_loss, null_propagates_and_keeps_first_error)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(3, 4));
    tg_tensor *bad = tg_log_softmax(g, x, 2);
    cr_assert(bad == NULL);
    char first[512];
    snprintf(first, sizeof first, "%s", tg_last_error());
    cr_expect(strstr(first, "tg_log_softmax") && strstr(first, "[3, 4]"), "%s", first);
    cr_expect(tg_cross_entropy(g, bad, NULL) == NULL);
    cr_expect(tg_cross_entropy_ex(g, bad, LAB3, (tg_reduction)9) == NULL);
    cr_expect(tg_cross_entropy_soft(g, bad, x, TG_REDUCTION_MEAN) == NULL);
    cr_expect(tg_cross_entropy_soft(g, x, bad, TG_REDUCTION_MEAN) == NULL);
    cr_expect(tg_nll_loss(g, bad, LAB3, TG_REDUCTION_SUM) == NULL);
    cr_expect(tg_mse_loss(g, x, bad, TG_REDUCTION_NONE) == NULL);
    cr_expect_str_eq(tg_last_error(), first);
    tg_tensor_free(x);
    tg_graph_free(g);
}
