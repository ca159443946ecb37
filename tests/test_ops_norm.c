/* ops/norm.c: batchnorm2d and dropout. Gradcheck table (training and eval
 * batch norm, dropout with a fixed mask), forward values, running-statistics
 * updates and gradients against PyTorch, dropout statistics and exactness,
 * and every error. */
#include "helpers.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------- gradcheck: fns */

/* Batch norm case context. The inputs are x, then weight if has_w, then bias
 * if has_b. With running, the fn makes fresh running statistics on every call
 * (mean 0.1 c - 0.2, var 0.5 + 0.25 c): training output does not depend on
 * them, so the updates the gradcheck's repeated forwards make are harmless,
 * and eval reads the same values every time. */
typedef struct bn_ctx {
    bool training, has_w, has_b, running;
    double eps, momentum;
} bn_ctx;

static void fill_running(tg_tensor *rm, tg_tensor *rv)
{
    for (int64_t c = 0; c < tg_tensor_numel(rm); c++) {
        tg_tensor_set(rm, c, 0.1 * (double)c - 0.2);
        tg_tensor_set(rv, c, 0.5 + 0.25 * (double)c);
    }
}

static tg_tensor *bn_fn(tg_graph *g, tg_tensor **in, int n, void *ctx)
{
    const bn_ctx *c = ctx;
    (void)n;
    int k = 1;
    tg_tensor *w = c->has_w ? in[k++] : NULL;
    tg_tensor *b = c->has_b ? in[k++] : NULL;
    tg_tensor *rm = NULL, *rv = NULL;
    if (c->running) {
        int64_t C = tg_tensor_shape(in[0])[1];
        rm = tg_tensor_new(tg_tensor_dtype(in[0]), 1, &C);
        rv = tg_tensor_new(tg_tensor_dtype(in[0]), 1, &C);
        fill_running(rm, rv);
    }
    tg_batchnorm2d_args a = {.eps = c->eps, .momentum = c->momentum, .training = c->training};
    tg_tensor *y = tg_batchnorm2d(g, in[0], w, b, rm, rv, a);
    /* The op keeps no reference to the running statistics past forward. */
    tg_tensor_free(rm);
    tg_tensor_free(rv);
    return y;
}

/* Dropout: a local generator re-seeded from ctx on every call, so every
 * evaluation of the gradcheck draws the same mask. */
typedef struct do_ctx {
    double p;
    bool training;
    uint64_t seed;
} do_ctx;

static tg_tensor *do_fn(tg_graph *g, tg_tensor **in, int n, void *ctx)
{
    const do_ctx *c = ctx;
    (void)n;
    tg_rng r;
    tg_rng_seed(&r, c->seed, 99);
    return tg_dropout(g, in[0], c->p, c->training, &r);
}

static const bn_ctx BN_T_WB = {.training = true, .has_w = true, .has_b = true};
static const bn_ctx BN_T_WB_RS = {.training = true, .has_w = true, .has_b = true, .running = true};
static const bn_ctx BN_T_W = {.training = true, .has_w = true};
static const bn_ctx BN_T_B = {.training = true, .has_b = true, .running = true};
static const bn_ctx BN_T_NONE = {.training = true};
static const bn_ctx BN_T_NONE_RS = {.training = true, .running = true};
static const bn_ctx BN_T_EPS = {.training = true, .has_w = true, .has_b = true, .running = true,
                                .eps = 0.1, .momentum = 0.3};
static const bn_ctx BN_E_WB = {.has_w = true, .has_b = true, .running = true};
static const bn_ctx BN_E_W = {.has_w = true, .running = true};
static const bn_ctx BN_E_B = {.has_b = true, .running = true};
static const bn_ctx BN_E_NONE = {.running = true};
static const bn_ctx BN_E_EPS = {.has_w = true, .has_b = true, .running = true, .eps = 0.05};

static const do_ctx DO_P0 = {.p = 0.0, .training = true, .seed = 1};
static const do_ctx DO_P3 = {.p = 0.3, .training = true, .seed = 2};
static const do_ctx DO_P3B = {.p = 0.3, .training = true, .seed = 77};
static const do_ctx DO_P5 = {.p = 0.5, .training = true, .seed = 3};
static const do_ctx DO_P5B = {.p = 0.5, .training = true, .seed = 12345};
static const do_ctx DO_EVAL = {.p = 0.5, .training = false, .seed = 4};

#define X4(n, c, h, w) {4, {n, c, h, w}, GC_UNIFORM, false}
#define X4F(n, c, h, w, f) {4, {n, c, h, w}, f, false}
#define V(c) {1, {c}, GC_UNIFORM, false}
#define VP(c) {1, {c}, GC_POSITIVE, false}
#define BN3(label, ctx, n, c, h, w)                                                            \
    {"batchnorm2d", label, bn_fn, &ctx, 3, {X4(n, c, h, w), VP(c), V(c)}}
#define BN2(label, ctx, n, c, h, w, vec)                                                       \
    {"batchnorm2d", label, bn_fn, &ctx, 2, {X4(n, c, h, w), vec}}
#define BN1(label, ctx, n, c, h, w) {"batchnorm2d", label, bn_fn, &ctx, 1, {X4(n, c, h, w)}}
#define DO(label, ctx, ...) {"dropout", label, do_fn, &ctx, 1, {{__VA_ARGS__}}}

const gc_case gc_cases_norm[] = {
    /* batchnorm2d, training: batch statistics, x, weight and bias checked. */
    BN3("train N=1 C=1 [1,1,1,3]", BN_T_WB, 1, 1, 1, 3),
    BN3("train H*W=1 N=2 [2,1,1,1]", BN_T_WB, 2, 1, 1, 1),
    BN3("train H*W=1 N=3 [3,2,1,1]", BN_T_WB, 3, 2, 1, 1),
    BN3("train [2,3,3,5] with running stats", BN_T_WB_RS, 2, 3, 3, 5),
    BN3("train [1,2,3,3]", BN_T_WB, 1, 2, 3, 3),
    BN3("train [3,4,1,3]", BN_T_WB, 3, 4, 1, 3),
    BN3("train [2,4,3,1] with running stats", BN_T_WB_RS, 2, 4, 3, 1),
    BN3("train [1,3,5,3]", BN_T_WB, 1, 3, 5, 3),
    BN3("train eps 0.1 momentum 0.3 [2,3,3,3]", BN_T_EPS, 2, 3, 3, 3),
    {"batchnorm2d", "train distinct x [1,1,3,3]", bn_fn, &BN_T_WB, 3,
     {X4F(1, 1, 3, 3, GC_DISTINCT), VP(1), V(1)}},
    {"batchnorm2d", "train positive x (mean far from 0) [2,2,3,5]", bn_fn, &BN_T_WB_RS, 3,
     {X4F(2, 2, 3, 5, GC_POSITIVE), V(2), V(2)}},
    BN2("train weight only [3,1,3,3]", BN_T_W, 3, 1, 3, 3, V(1)),
    BN2("train weight only [2,2,3,3]", BN_T_W, 2, 2, 3, 3, VP(2)),
    BN2("train weight only H*W=1 [3,4,1,1]", BN_T_W, 3, 4, 1, 1, V(4)),
    BN2("train bias only [2,2,1,3]", BN_T_B, 2, 2, 1, 3, V(2)),
    BN1("train no affine [2,3,1,1]", BN_T_NONE, 2, 3, 1, 1),
    BN1("train no affine [1,4,3,3] with running stats", BN_T_NONE_RS, 1, 4, 3, 3),
    BN1("train no affine [3,2,3,1]", BN_T_NONE, 3, 2, 3, 1),
    /* batchnorm2d, eval: running statistics, a fixed affine map of x. */
    BN3("eval [1,1,1,1] (one value is fine in eval)", BN_E_WB, 1, 1, 1, 1),
    BN3("eval [2,3,3,3]", BN_E_WB, 2, 3, 3, 3),
    BN3("eval eps 0.05 [3,4,3,3]", BN_E_EPS, 3, 4, 3, 3),
    BN3("eval [2,2,1,3]", BN_E_WB, 2, 2, 1, 3),
    BN2("eval weight only [3,2,1,1]", BN_E_W, 3, 2, 1, 1, V(2)),
    BN2("eval bias only [2,1,5,3]", BN_E_B, 2, 1, 5, 3, V(1)),
    BN1("eval no affine [1,4,3,5]", BN_E_NONE, 1, 4, 3, 5),
    BN1("eval no affine [1,3,3,1]", BN_E_NONE, 1, 3, 3, 1),

    /* dropout: p == 0 (identity), fixed masks at p 0.3 and 0.5, eval. */
    DO("p=0 scalar", DO_P0, 0, {0}, GC_UNIFORM, false),
    DO("p=0 [5]", DO_P0, 1, {5}, GC_UNIFORM, false),
    DO("p=0 [2,3]", DO_P0, 2, {2, 3}, GC_UNIFORM, false),
    DO("p=0 [2,3,4]", DO_P0, 3, {2, 3, 4}, GC_UNIFORM, false),
    DO("p=0 [1,2,3,3]", DO_P0, 4, {1, 2, 3, 3}, GC_UNIFORM, false),
    DO("p=0.3 [7]", DO_P3, 1, {7}, GC_UNIFORM, false),
    DO("p=0.3 [3,5]", DO_P3, 2, {3, 5}, GC_UNIFORM, false),
    DO("p=0.3 [2,3,4]", DO_P3, 3, {2, 3, 4}, GC_UNIFORM, false),
    DO("p=0.3 [2,2,3,3]", DO_P3, 4, {2, 2, 3, 3}, GC_UNIFORM, false),
    DO("p=0.3 [4,1,5] other seed", DO_P3B, 3, {4, 1, 5}, GC_UNIFORM, false),
    DO("p=0.3 [1,1,1,9] other seed", DO_P3B, 4, {1, 1, 1, 9}, GC_UNIFORM, false),
    DO("p=0.5 [8]", DO_P5, 1, {8}, GC_UNIFORM, false),
    DO("p=0.5 [4,4]", DO_P5, 2, {4, 4}, GC_UNIFORM, false),
    DO("p=0.5 [3,1,5]", DO_P5, 3, {3, 1, 5}, GC_UNIFORM, false),
    DO("p=0.5 [2,3,3,3]", DO_P5, 4, {2, 3, 3, 3}, GC_UNIFORM, false),
    DO("p=0.5 [1,5] other seed", DO_P5B, 2, {1, 5}, GC_UNIFORM, false),
    DO("p=0.5 [2,1,1,3] other seed", DO_P5B, 4, {2, 1, 1, 3}, GC_UNIFORM, false),
    DO("p=0.5 [5,7] other seed", DO_P5B, 2, {5, 7}, GC_UNIFORM, false),
    DO("eval scalar", DO_EVAL, 0, {0}, GC_UNIFORM, false),
    DO("eval [3,4]", DO_EVAL, 2, {3, 4}, GC_UNIFORM, false),
    DO("eval [2,2,3,3]", DO_EVAL, 4, {2, 2, 3, 3}, GC_UNIFORM, false),
    DO("eval [1,6,1]", DO_EVAL, 3, {1, 6, 1}, GC_UNIFORM, false),
};
const size_t gc_n_norm = sizeof gc_cases_norm / sizeof gc_cases_norm[0];

Test(ops_norm, gradcheck_table) { gc_run_table(gc_cases_norm, gc_n_norm); }

/* ------------------------------------------------------ fixed vectors */

#define S4(n, c, h, w) ((const int64_t[]){n, c, h, w})

/* A leaf of ones shaped like t (the cotangent of a sum; this file links no
 * other op family, so no tg_sum). */
static tg_tensor *ones_like(const tg_tensor *t)
{
    tg_tensor *o = tg_tensor_new(tg_tensor_dtype(t), tg_tensor_ndim(t), tg_tensor_shape(t));
    tg_tensor_fill(o, 1.0);
    return o;
}

static tg_tensor *vec3(tg_dtype dt, double a, double b, double c)
{
    int64_t C = 3;
    return tgt_tensor(dt, 1, &C, (const double[]){a, b, c});
}

/* x[i] = sin(0.7 i + 0.3) (1 + 0.1 i), x2[i] = 2 cos(0.37 i) + 0.5, [2, 3, 2, 2]. */
static tg_tensor *ref_x(tg_dtype dt, int which)
{
    double v[24];
    for (int i = 0; i < 24; i++)
        v[i] = which == 1 ? sin(0.7 * i + 0.3) * (1 + 0.1 * i) : cos(0.37 * i) * 2 + 0.5;
    return tgt_tensor(dt, 4, S4(2, 3, 2, 2), v);
}

/* PyTorch 1.13, float64:
 *   x, x2 as ref_x; w = [1.5, -0.5, 2.0]; b = [0.1, 0.2, -0.3];
 *   rm = [0.5, -0.25, 1.0]; rv = [2.0, 0.5, 1.5]
 *   y1 = F.batch_norm(x, rm, rv, w, b, training=True)   -> rm1, rv1
 *   y2 = F.batch_norm(x2, rm, rv, w, b, training=True)  -> rm2, rv2
 *   ye = F.batch_norm(x, rm, rv, w, b, training=False) */
static const double PT_Y1[24] = {
    0.3187489528427548,  1.0480650590392995,  1.3540752404359537,  0.9930670216226462,
    0.018515254706829916, 0.3538206361158421, 0.5758441622524793,  0.5544838048207392,
    -2.2013424370188317, -0.5949483879154038, 0.8133786026046312,  1.2918769143407882,
    1.6648945079128432,  0.042651089019572715, -1.7596987220335043, -2.8618031488395657,
    0.8204960365924198,  0.37080311078604355, -0.2764970389978216, -0.8174659662765323,
    2.4128336144333096,  1.2134435193183108,  -1.3143186080524945, -4.020923217710308};
static const double PT_RM1[3] = {0.46065304811779834, -0.27200490044444825, 0.9824176810853112};
static const double PT_RV1[3] = {1.9919359391618852, 0.6920740762428376, 1.6334411638142279};
static const double PT_Y2[24] = {
    1.8899956509785558,  1.639091910735735,   0.9203393342064845,  -0.1689822891967236,
    0.30925470252365506, 0.5691168158598024,  0.8025147574031685,  0.9778592106850995,
    -2.411032283696108,  -2.4058508055041283, -1.851121312211253,  -0.8219238383809802,
    -2.8150828613917422, -1.456284247962823,  -0.14638982880647777, 0.937312331436991,
    -0.28963150076458,   -0.33589560638471644, -0.286134698052036, -0.1470836812703931,
    3.4672193916344747,  2.0012186384583535,  0.4882897256401617,  -0.8667995159405198};
static const double PT_RM2[3] = {0.5680297908911667, -0.1458723433663665, 0.8396073654043047};
static const double PT_RV2[3] = {1.867566182272357, 0.849898759373295, 1.5771192898887318};
static const double PT_YE[24] = {
    -0.19911202764689764, 0.4924961373527602, 0.7826846279520855,  0.4403416718019016,
    0.08931328112139018,  0.6186518809843051, 0.9691551206517733,  0.9354340343752117,
    -2.708885959057277,   -0.6944438031405343, 1.071619299871034,  1.671663337157084,
    1.0774335597250224,   -0.4609347617627085, -2.1700974073137886, -3.2152195618709056,
    1.355381193352261,    0.6454617082717661, -0.37641558322235996, -1.2304303125170069,
    3.077359799294755,    1.5733066870853705, -1.5965448150087378, -4.990667463892028};

Test(ops_norm, batchnorm_training_two_steps_then_eval_match_pytorch)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ref_x(TG_F64, 1), *x2 = ref_x(TG_F64, 2);
    tg_tensor *w = vec3(TG_F64, 1.5, -0.5, 2.0), *b = vec3(TG_F64, 0.1, 0.2, -0.3);
    tg_tensor *rm = vec3(TG_F64, 0.5, -0.25, 1.0), *rv = vec3(TG_F64, 2.0, 0.5, 1.5);
    tg_batchnorm2d_args tr = {.training = true}, ev = {.training = false};

    tg_tensor *y1 = tg_batchnorm2d(g, x, w, b, rm, rv, tr);
    expect_close(y1, PT_Y1, 1e-12, 1e-12);
    expect_close(rm, PT_RM1, 1e-14, 1e-14);
    expect_close(rv, PT_RV1, 1e-14, 1e-14);
    tg_tensor *y2 = tg_batchnorm2d(g, x2, w, b, rm, rv, tr);
    expect_close(y2, PT_Y2, 1e-12, 1e-12);
    expect_close(rm, PT_RM2, 1e-14, 1e-14);
    expect_close(rv, PT_RV2, 1e-14, 1e-14);
    double rm2[3], rv2[3];
    for (int c = 0; c < 3; c++) {
        rm2[c] = tg_tensor_get(rm, c);
        rv2[c] = tg_tensor_get(rv, c);
    }
    tg_tensor *ye = tg_batchnorm2d(g, x, w, b, rm, rv, ev);
    expect_close(ye, PT_YE, 1e-12, 1e-12);
    /* Eval leaves the running statistics alone. */
    expect_close(rm, rm2, 0, 0);
    expect_close(rv, rv2, 0, 0);

    tg_tensor *xs[] = {x, x2, w, b, rm, rv};
    for (int i = 0; i < 6; i++)
        tg_tensor_free(xs[i]);
    tg_graph_free(g);
}

/* PyTorch 1.13, float64, no affine, eps 0.01, momentum 0.25, from the same rm, rv:
 *   y3 = F.batch_norm(x, rm, rv, None, None, training=True, momentum=0.25, eps=0.01)
 *   ye3 = F.batch_norm(x, rm, rv, None, None, training=False, eps=0.01) */
static const double PT_Y3[24] = {
    0.14540082688777767, 0.6301719013339251,   0.8335746277603984,  0.5936151086559976,
    0.3621165587573673,  -0.3069183546317276,  -0.7499219531870776, -0.7073016265336497,
    -0.9487623170315306, -0.14717807296306704, 0.5555714963143354,  0.794340251536715,
    1.0401739184837686,  -0.03811940111851313, -1.236128120531805,  -1.9686888614715492,
    -1.2380759007070574, -0.34080349068998633, 0.9507546639318547,  2.030150103060277,
    1.3536931883697685,  0.7552022992429389,   -0.5061409528590615, -1.8567258926100982};
static const double PT_RM3[3] = {0.40163262029449576, -0.3050122511111207, 0.9560442027132781};
static const double PT_RV3[3] = {1.9798398479047128, 0.9801851906070939, 1.8336029095355693};
static const double PT_YE3[24] = {
    -0.07522412266353368, 0.3714583939109206,  0.5588797284492616,  0.33777387556393906,
    0.3650209008336546,   -0.6158040366255552, -1.2652603925669614, -1.2027777352530407,
    -1.199757049004979,   -0.2681671694554065, 0.5485584478968395,  0.8260521206627175,
    0.7492464726042164,   -0.2443251305605594, -1.348206071223234,  -2.023209371864602,
    -1.980908493233863,   -0.6654806466051146, 1.227981743593292,   2.8104073284015656,
    1.4761241984336195,   0.7805665456492674,  -0.6853487551959008, -2.254979484161018};

Test(ops_norm, batchnorm_no_affine_custom_eps_momentum_match_pytorch)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ref_x(TG_F64, 1);
    tg_tensor *rm = vec3(TG_F64, 0.5, -0.25, 1.0), *rv = vec3(TG_F64, 2.0, 0.5, 1.5);
    tg_tensor *y3 = tg_batchnorm2d(g, x, NULL, NULL, rm, rv,
                                   (tg_batchnorm2d_args){.eps = 0.01, .momentum = 0.25,
                                                         .training = true});
    expect_close(y3, PT_Y3, 1e-12, 1e-12);
    expect_close(rm, PT_RM3, 1e-14, 1e-14);
    expect_close(rv, PT_RV3, 1e-14, 1e-14);
    tg_tensor *ye3 = tg_batchnorm2d(g, x, NULL, NULL, rm, rv, (tg_batchnorm2d_args){.eps = 0.01});
    expect_close(ye3, PT_YE3, 1e-12, 1e-12);
    tg_tensor_free(x);
    tg_tensor_free(rm);
    tg_tensor_free(rv);
    tg_graph_free(g);
}

Test(ops_norm, batchnorm_float32_matches_pytorch)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ref_x(TG_F32, 1), *x2 = ref_x(TG_F32, 2);
    tg_tensor *w = vec3(TG_F32, 1.5, -0.5, 2.0), *b = vec3(TG_F32, 0.1, 0.2, -0.3);
    tg_tensor *rm = vec3(TG_F32, 0.5, -0.25, 1.0), *rv = vec3(TG_F32, 2.0, 0.5, 1.5);
    tg_batchnorm2d_args tr = {.training = true};
    tg_tensor *y1 = tg_batchnorm2d(g, x, w, b, rm, rv, tr);
    cr_assert(y1, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_dtype(y1), TG_F32);
    expect_close_f32(y1, PT_Y1);
    expect_close_f32(rm, PT_RM1);
    expect_close_f32(rv, PT_RV1);
    tg_tensor *y2 = tg_batchnorm2d(g, x2, w, b, rm, rv, tr);
    expect_close_f32(y2, PT_Y2);
    expect_close_f32(rm, PT_RM2);
    expect_close_f32(rv, PT_RV2);
    tg_tensor *ye = tg_batchnorm2d(g, x, w, b, rm, rv, (tg_batchnorm2d_args){0});
    expect_close_f32(ye, PT_YE);
    tg_tensor *xs[] = {x, x2, w, b, rm, rv};
    for (int i = 0; i < 6; i++)
        tg_tensor_free(xs[i]);
    tg_graph_free(g);
}

/* PyTorch 1.13, float64, cotangent v[i] = cos(1.3 i), y.backward(v):
 * training (no running stats) and eval (rm, rv as above). */
static const double PT_DX[24] = {
    1.2632303574739379,   0.7259964147232043,   -0.4451151332484581,  -0.4472884024853604,
    -0.11715529987050192, -0.3779305970771725,  -0.11805527580859317, 0.23156457763911628,
    -0.4680989259186176,  0.857038463997921,    1.003175382695769,    -0.41760661513978903,
    -0.47164652590087414, -0.4398162296099286,  0.1423199176548043,   -0.32768039860732573,
    -0.035115973913513315, 0.2947269140467306,  0.17506273289006904,  -0.05309707790613492,
    0.46349481629561473,  -0.9148530252177538,  -1.0746897926660068,  0.551539695952862};
static const double PT_DW[3] = {-4.41543611846338, 2.9941449358538046, 1.6448376638477251};
static const double PT_DB[3] = {-0.0871006778856177, -0.06675510787495542, 0.024548916017877453};
static const double PT_DXE[24] = {
    1.0606575201393356,  0.2837246442091319,   -0.9088655001835944, -0.7699655575619542,
    -0.33128800251198454, -0.6905448271614109, -0.03815186224490623, 0.6701336702406924,
    -0.9160804026909702, 1.057516867614059,    1.481849449365977,   -0.2647308838072812,
    -1.0544819745054794, -0.39219748977533714, 0.8446572362966651,  0.844087132372618,
    0.26204643331104116, 0.7029147624599066,   0.11401131785086811, -0.6419189745098002,
    1.056411308269674,   -0.917280678799147,   -1.5471543224671493, 0.08955674087628998};
static const double PT_DWE[3] = {-4.021907289616646, 6.183355113945832, 2.1114853209980944};

static void bn_grads_vs_pytorch(tg_dtype dt, double tol)
{
    for (int training = 1; training >= 0; training--) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = ref_x(dt, 1);
        tg_tensor *w = vec3(dt, 1.5, -0.5, 2.0), *b = vec3(dt, 0.1, 0.2, -0.3);
        tg_tensor *rm = vec3(dt, 0.5, -0.25, 1.0), *rv = vec3(dt, 2.0, 0.5, 1.5);
        double vv[24];
        for (int i = 0; i < 24; i++)
            vv[i] = cos(1.3 * i);
        tg_tensor *v = tgt_tensor(dt, 4, S4(2, 3, 2, 2), vv);
        tg_tensor_set_requires_grad(x, true);
        tg_tensor_set_requires_grad(w, true);
        tg_tensor_set_requires_grad(b, true);
        tg_tensor *y = tg_batchnorm2d(g, x, w, b, training ? NULL : rm, training ? NULL : rv,
                                      (tg_batchnorm2d_args){.training = training});
        cr_assert(y, "%s", tg_last_error());
        cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), training ? PT_DX : PT_DXE, tol, tol);
        expect_close(tg_tensor_grad(w), training ? PT_DW : PT_DWE, tol, tol);
        expect_close(tg_tensor_grad(b), PT_DB, tol, tol);
        tg_tensor *xs[] = {x, w, b, rm, rv, v};
        for (int i = 0; i < 6; i++)
            tg_tensor_free(xs[i]);
        tg_graph_free(g);
    }
}

Test(ops_norm, batchnorm_gradients_match_pytorch)
{
    bn_grads_vs_pytorch(TG_F64, 1e-12);
    bn_grads_vs_pytorch(TG_F32, 1e-5);
}

/* ------------------------------------------------- running statistics */

Test(ops_norm, batchnorm_updates_running_stats_when_not_recorded)
{
    /* Once in no-grad mode, once with no input that requires grad: no node is
     * recorded, and the running statistics still move, as in PyTorch. */
    for (int mode = 0; mode < 2; mode++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = ref_x(TG_F64, 1);
        tg_tensor *w = vec3(TG_F64, 1.5, -0.5, 2.0), *b = vec3(TG_F64, 0.1, 0.2, -0.3);
        tg_tensor *rm = vec3(TG_F64, 0.5, -0.25, 1.0), *rv = vec3(TG_F64, 2.0, 0.5, 1.5);
        if (mode == 0) {
            tg_tensor_set_requires_grad(x, true);
            tg_graph_set_no_grad(g, true);
        }
        tg_tensor *y = tg_batchnorm2d(g, x, w, b, rm, rv, (tg_batchnorm2d_args){.training = true});
        cr_assert(y, "%s", tg_last_error());
        cr_expect_eq(tg_graph_n_nodes(g), 0);
        cr_expect(!tg_tensor_requires_grad(y));
        expect_close(y, PT_Y1, 1e-12, 1e-12);
        expect_close(rm, PT_RM1, 1e-14, 1e-14);
        expect_close(rv, PT_RV1, 1e-14, 1e-14);
        tg_tensor *xs[] = {x, w, b, rm, rv};
        for (int i = 0; i < 5; i++)
            tg_tensor_free(xs[i]);
        tg_graph_free(g);
    }
}

Test(ops_norm, batchnorm_training_output_ignores_running_stats)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ref_x(TG_F64, 2);
    tg_tensor *rm = vec3(TG_F64, 100.0, -7.0, 3.0), *rv = vec3(TG_F64, 9.0, 0.01, 40.0);
    tg_batchnorm2d_args tr = {.training = true};
    tg_tensor *a = tg_batchnorm2d(g, x, NULL, NULL, rm, rv, tr);
    tg_tensor *b = tg_batchnorm2d(g, x, NULL, NULL, NULL, NULL, tr);
    cr_assert(a && b, "%s", tg_last_error());
    expect_close_t(a, b, 0, 0);
    tg_tensor_free(x);
    tg_tensor_free(rm);
    tg_tensor_free(rv);
    tg_graph_free(g);
}

Test(ops_norm, batchnorm_one_running_stat_is_updated_alone)
{
    /* As PyTorch: in training either running statistic may be NULL. */
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ref_x(TG_F64, 1);
    tg_tensor *w = vec3(TG_F64, 1.5, -0.5, 2.0), *b = vec3(TG_F64, 0.1, 0.2, -0.3);
    tg_tensor *rm = vec3(TG_F64, 0.5, -0.25, 1.0), *rv = vec3(TG_F64, 2.0, 0.5, 1.5);
    tg_batchnorm2d_args tr = {.training = true};
    /* (expect_close evaluates its tensor argument more than once.) */
    tg_tensor *y = tg_batchnorm2d(g, x, w, b, rm, NULL, tr);
    expect_close(y, PT_Y1, 1e-12, 1e-12);
    expect_close(rm, PT_RM1, 1e-14, 1e-14);
    y = tg_batchnorm2d(g, x, w, b, NULL, rv, tr);
    expect_close(y, PT_Y1, 1e-12, 1e-12);
    expect_close(rv, PT_RV1, 1e-14, 1e-14);
    expect_close(rm, PT_RM1, 1e-14, 1e-14);
    tg_tensor *xs[] = {x, w, b, rm, rv};
    for (int i = 0; i < 5; i++)
        tg_tensor_free(xs[i]);
    tg_graph_free(g);
}

Test(ops_norm, batchnorm_empty_batch_keeps_running_stats)
{
    /* PyTorch 1.13: x [0, 3, 2, 2] in training gives an empty output and
     * leaves the running statistics unchanged. Also H = 0, and a backward
     * through the empty result (weight and bias get zero gradients). */
    const int64_t *shapes[] = {S4(0, 3, 2, 2), S4(2, 3, 0, 2)};
    for (int k = 0; k < 2; k++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tg_tensor_new(TG_F64, 4, shapes[k]);
        tg_tensor *w = vec3(TG_F64, 1.5, -0.5, 2.0), *b = vec3(TG_F64, 0.1, 0.2, -0.3);
        tg_tensor *rm = vec3(TG_F64, 0.5, -0.25, 1.0), *rv = vec3(TG_F64, 2.0, 0.5, 1.5);
        tg_tensor_set_requires_grad(x, true);
        tg_tensor_set_requires_grad(w, true);
        tg_tensor_set_requires_grad(b, true);
        tg_tensor *y = tg_batchnorm2d(g, x, w, b, rm, rv, (tg_batchnorm2d_args){.training = true});
        cr_assert(y, "%s", tg_last_error());
        cr_expect_eq(tg_tensor_numel(y), 0);
        expect_close(rm, ((const double[]){0.5, -0.25, 1.0}), 0, 0);
        expect_close(rv, ((const double[]){2.0, 0.5, 1.5}), 0, 0);
        tg_tensor *v = ones_like(y);
        cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(w), ((const double[]){0, 0, 0}), 0, 0);
        expect_close(tg_tensor_grad(b), ((const double[]){0, 0, 0}), 0, 0);
        tg_tensor *xs[] = {x, w, b, rm, rv, v};
        for (int i = 0; i < 6; i++)
            tg_tensor_free(xs[i]);
        tg_graph_free(g);
    }
}

Test(ops_norm, batchnorm_records_one_node_over_x_weight_bias)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ref_x(TG_F64, 1);
    tg_tensor *w = vec3(TG_F64, 1.5, -0.5, 2.0), *b = vec3(TG_F64, 0.1, 0.2, -0.3);
    tg_tensor_set_requires_grad(w, true);
    tg_tensor *y = tg_batchnorm2d(g, x, w, b, NULL, NULL, (tg_batchnorm2d_args){.training = true});
    cr_assert(y, "%s", tg_last_error());
    cr_expect_eq(tg_graph_n_nodes(g), 1);
    tg_tensor *v = ones_like(y);
    cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
    /* Only the weight asked for a gradient: sum of xhat per channel, which is 0. */
    expect_close(tg_tensor_grad(w), ((const double[]){0, 0, 0}), 1e-12, 0);
    cr_expect_null(tg_tensor_grad(x));
    cr_expect_null(tg_tensor_grad(b));
    tg_tensor_free(v);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_graph_free(g);
}

/* ------------------------------------------------------- batchnorm errors */

Test(ops_norm, batchnorm_errors_name_the_op_and_shapes)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ref_x(TG_F64, 1); /* [2, 3, 2, 2] */
    tg_tensor *x3 = tg_tensor_new(TG_F64, 3, (const int64_t[]){3, 2, 2});
    tg_tensor *x1 = tg_tensor_new(TG_F64, 4, S4(1, 3, 1, 1));
    tg_tensor *v3 = vec3(TG_F64, 1, 1, 1);
    int64_t four = 4;
    tg_tensor *v4 = tg_tensor_new(TG_F64, 1, &four);
    tg_tensor *m2 = tg_tensor_new(TG_F64, 2, (const int64_t[]){3, 1});
    tg_tensor *f3 = vec3(TG_F32, 1, 1, 1);
    tg_batchnorm2d_args tr = {.training = true}, ev = {0};

    expect_error(!tg_batchnorm2d(g, x3, NULL, NULL, NULL, NULL, tr), "tg_batchnorm2d", "[3, 2, 2]",
                 "4 dims");
    expect_error(!tg_batchnorm2d(g, x, v4, NULL, NULL, NULL, tr), "tg_batchnorm2d", "weight [4]",
                 "x [2, 3, 2, 2]", "expected [3]");
    expect_error(!tg_batchnorm2d(g, x, m2, NULL, NULL, NULL, tr), "tg_batchnorm2d", "weight [3, 1]",
                 "x [2, 3, 2, 2]");
    expect_error(!tg_batchnorm2d(g, x, v3, v4, NULL, NULL, tr), "tg_batchnorm2d", "bias [4]",
                 "x [2, 3, 2, 2]");
    expect_error(!tg_batchnorm2d(g, x, NULL, v4, NULL, NULL, tr), "tg_batchnorm2d", "bias [4]",
                 "x [2, 3, 2, 2]");
    expect_error(!tg_batchnorm2d(g, x, v3, v3, v4, v3, tr), "tg_batchnorm2d",
                 "running_mean [4]", "x [2, 3, 2, 2]");
    expect_error(!tg_batchnorm2d(g, x, v3, v3, v3, v4, ev), "tg_batchnorm2d", "running_var [4]",
                 "x [2, 3, 2, 2]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);

    expect_error(!tg_batchnorm2d(g, x1, NULL, NULL, NULL, NULL, tr), "tg_batchnorm2d",
                 "more than 1 value per channel", "[1, 3, 1, 1]");
    /* Eval accepts one value per channel. */
    cr_expect_not_null(tg_batchnorm2d(g, x1, NULL, NULL, v3, v3, ev), "%s", tg_last_error());

    expect_error(!tg_batchnorm2d(g, x, v3, v3, NULL, NULL, ev), "tg_batchnorm2d",
                 "required in eval mode", "x [2, 3, 2, 2]", "running_mean NULL");
    expect_error(!tg_batchnorm2d(g, x, v3, v3, v3, NULL, ev), "tg_batchnorm2d",
                 "required in eval mode", "running_var NULL");
    cr_expect_eq(tg_last_status(), TG_ERR_NULL);

    /* Dtypes: weight against x (tg_apply's check), running statistics (the rule's). */
    expect_error(!tg_batchnorm2d(g, x, f3, NULL, NULL, NULL, tr), "tg_batchnorm2d", "dtypes differ",
                 "float64 [2, 3, 2, 2]", "float32 [3]");
    cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);
    expect_error(!tg_batchnorm2d(g, x, NULL, NULL, f3, NULL, tr), "tg_batchnorm2d",
                 "running_mean float32 [3]", "x float64 [2, 3, 2, 2]");
    cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);
    expect_error(!tg_batchnorm2d(g, x, NULL, NULL, v3, f3, ev), "tg_batchnorm2d",
                 "running_var float32 [3]", "x float64 [2, 3, 2, 2]");

    expect_error(!tg_batchnorm2d(g, x, NULL, NULL, NULL, NULL,
                                 (tg_batchnorm2d_args){.eps = -1e-5, .training = true}),
                 "tg_batchnorm2d", "eps", "x [2, 3, 2, 2]");
    expect_error(!tg_batchnorm2d(g, x, NULL, NULL, NULL, NULL,
                                 (tg_batchnorm2d_args){.eps = (double)NAN, .training = true}),
                 "tg_batchnorm2d", "eps");
    expect_error(!tg_batchnorm2d(g, x, NULL, NULL, NULL, NULL,
                                 (tg_batchnorm2d_args){.momentum = 1.5, .training = true}),
                 "tg_batchnorm2d", "momentum", "x [2, 3, 2, 2]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);

    /* NULL: a fresh NULL input is named; after a failure the first error stays. */
    tg_error_clear();
    expect_error(!tg_batchnorm2d(g, NULL, v3, v3, NULL, NULL, tr), "tg_batchnorm2d",
                 "input 0 is NULL");
    tg_tensor *bad = tg_batchnorm2d(g, x3, NULL, NULL, NULL, NULL, tr);
    expect_error(!tg_batchnorm2d(g, bad, v3, v3, NULL, NULL, tr), "tg_batchnorm2d", "[3, 2, 2]",
                 "4 dims");
    expect_error(!tg_batchnorm2d(NULL, x, NULL, NULL, NULL, NULL, tr), "tg_batchnorm2d",
                 "graph is NULL");

    tg_tensor *xs[] = {x, x3, x1, v3, v4, m2, f3};
    for (int i = 0; i < 7; i++)
        tg_tensor_free(xs[i]);
    tg_graph_free(g);
}

/* ---------------------------------------------------------------- dropout */

static tg_tensor *ramp(tg_dtype dt, int64_t n)
{
    /* Values never 0, so a kept element is never mistaken for a dropped one. */
    tg_tensor *t = tg_tensor_new(dt, 1, &n);
    for (int64_t i = 0; i < n; i++)
        tg_tensor_set(t, i, 0.2513 + (double)(i % 1000) * 0.01 * ((i & 1) ? -1.0 : 1.0));
    return t;
}

Test(ops_norm, dropout_kept_fraction_is_near_one_minus_p)
{
    const double ps[] = {0.1, 0.3, 0.5, 0.9};
    int64_t n = 200000;
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ramp(TG_F32, n);
    tg_rng r;
    tg_rng_seed(&r, 2024, 1);
    for (int k = 0; k < 4; k++) {
        tg_tensor *y = tg_dropout(g, x, ps[k], true, &r);
        cr_assert(y, "%s", tg_last_error());
        const float *yd = tg_tensor_data(y);
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++)
            kept += yd[i] != 0.0f;
        double q = 1.0 - ps[k], sd = sqrt(ps[k] * q / (double)n);
        double frac = (double)kept / (double)n;
        cr_expect(fabs(frac - q) < 5 * sd, "p %g: kept fraction %.5f, expected %.5f +- %.5f",
                  ps[k], frac, q, 5 * sd);
        tg_graph_reset(g);
    }
    tg_tensor_free(x);
    tg_graph_free(g);
}

static void dropout_exact(tg_dtype dt, double p)
{
    int64_t n = 5000;
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ramp(dt, n);
    tg_tensor_set_requires_grad(x, true);
    tg_rng r;
    tg_rng_seed(&r, 7, 0);
    tg_tensor *y = tg_dropout(g, x, p, true, &r);
    cr_assert(y, "%s", tg_last_error());
    tg_tensor *ones = ones_like(y);
    cr_assert_eq(tg_backward_with(g, y, ones), TG_OK, "%s", tg_last_error());
    tg_tensor_free(ones);
    tg_tensor *gx = tg_tensor_grad(x);
    cr_assert(gx);
    int64_t bad = 0, kept = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = tg_tensor_get(x, i), yi = tg_tensor_get(y, i), gi = tg_tensor_get(gx, i);
        bool keep = yi != 0.0;
        kept += keep;
        double want_y, want_g;
        if (dt == TG_F64) {
            want_y = keep ? xi / (1.0 - p) : 0.0;
            want_g = keep ? 1.0 / (1.0 - p) : 0.0;
        } else {
            float q = (float)(1.0 - p);
            want_y = keep ? (double)((float)xi / q) : 0.0;
            want_g = keep ? (double)(1.0f / q) : 0.0;
        }
        bad += yi != want_y || gi != want_g;
    }
    cr_expect_eq(bad, 0, "%s p %g: %lld elements are not exactly x/(1-p) and mask/(1-p)",
                 tg_dtype_name(dt), p, (long long)bad);
    cr_expect(kept > 0 && kept < n);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_norm, dropout_kept_values_and_gradient_are_exact)
{
    const double ps[] = {0.3, 0.5, 0.7};
    for (int k = 0; k < 3; k++) {
        dropout_exact(TG_F64, ps[k]);
        dropout_exact(TG_F32, ps[k]);
    }
}

static void mask_of(const tg_tensor *y, bool *m)
{
    for (int64_t i = 0; i < tg_tensor_numel(y); i++)
        m[i] = tg_tensor_get(y, i) != 0.0;
}

Test(ops_norm, dropout_same_seed_gives_same_mask)
{
    enum { n = 4096 };
    static bool m1[n], m2[n], m3[n], m4[n], m5[n];
    tg_graph *g = tg_graph_new();
    tg_tensor *x64 = ramp(TG_F64, n), *x32 = ramp(TG_F32, n);
    tg_rng r;
    tg_rng_seed(&r, 5, 3);
    mask_of(tg_dropout(g, x64, 0.4, true, &r), m1);
    mask_of(tg_dropout(g, x64, 0.4, true, &r), m3); /* the generator moved on */
    tg_rng_seed(&r, 5, 3);
    mask_of(tg_dropout(g, x64, 0.4, true, &r), m2);
    tg_rng_seed(&r, 5, 3);
    mask_of(tg_dropout(g, x32, 0.4, true, &r), m4); /* the mask does not depend on the dtype */
    tg_rng_seed(&r, 6, 3);
    mask_of(tg_dropout(g, x64, 0.4, true, &r), m5);
    cr_expect(memcmp(m1, m2, sizeof m1) == 0, "same seed, different mask");
    cr_expect(memcmp(m1, m4, sizeof m1) == 0, "float32 and float64 masks differ");
    cr_expect(memcmp(m1, m3, sizeof m1) != 0, "a second draw repeated the mask");
    cr_expect(memcmp(m1, m5, sizeof m1) != 0, "another seed repeated the mask");
    tg_tensor_free(x64);
    tg_tensor_free(x32);
    tg_graph_free(g);
}

Test(ops_norm, dropout_eval_and_p0_are_the_identity_and_do_not_draw)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ramp(TG_F64, 50);
    tg_tensor_set_requires_grad(x, true);
    tg_rng r;
    tg_rng_seed(&r, 9, 9);
    tg_rng before = r;
    tg_tensor *a = tg_dropout(g, x, 0.5, false, &r);
    tg_tensor *b = tg_dropout(g, x, 0.0, true, &r);
    tg_tensor *c = tg_dropout(g, x, 0.7, false, NULL); /* eval needs no generator */
    cr_assert(a && b && c, "%s", tg_last_error());
    cr_expect(r.state == before.state && r.inc == before.inc, "the generator was advanced");
    cr_expect(a != x && b != x, "the identity is a new tensor");
    expect_close_t(a, x, 0, 0);
    expect_close_t(b, x, 0, 0);
    expect_close_t(c, x, 0, 0);
    tg_tensor *ones = ones_like(x);
    tg_tensor *outs[] = {a, b, c};
    for (int k = 0; k < 3; k++)
        cr_assert_eq(tg_backward_with(g, outs[k], ones), TG_OK, "%s", tg_last_error());
    tg_tensor_free(ones);
    for (int64_t i = 0; i < 50; i++)
        cr_expect(tg_tensor_get(tg_tensor_grad(x), i) == 3.0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_norm, dropout_p1_gives_zeros_and_zero_gradient)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = ramp(TG_F32, 30);
    tg_tensor_set(x, 3, (double)NAN);
    tg_tensor_set(x, 4, (double)INFINITY);
    tg_tensor_set_requires_grad(x, true);
    tg_rng r;
    tg_rng_seed(&r, 1, 1);
    tg_tensor *y = tg_dropout(g, x, 1.0, true, &r);
    cr_assert(y, "%s", tg_last_error());
    double zeros[30] = {0};
    expect_close(y, zeros, 0, 0);
    tg_tensor *ones = ones_like(y);
    cr_assert_eq(tg_backward_with(g, y, ones), TG_OK, "%s", tg_last_error());
    tg_tensor_free(ones);
    expect_close(tg_tensor_grad(x), zeros, 0, 0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_norm, dropout_dropped_nan_is_exactly_zero)
{
    /* Documented difference from PyTorch (which multiplies by the mask). */
    tg_graph *g = tg_graph_new();
    int64_t n = 64;
    tg_tensor *x = tg_tensor_new(TG_F64, 1, &n);
    tg_tensor_fill(x, (double)NAN);
    tg_rng r;
    tg_rng_seed(&r, 3, 3);
    tg_tensor *y = tg_dropout(g, x, 0.5, true, &r);
    cr_assert(y);
    int64_t zeros = 0, nans = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = tg_tensor_get(y, i);
        zeros += v == 0.0;
        nans += isnan(v);
    }
    cr_expect(zeros > 0 && nans > 0 && zeros + nans == n);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_norm, dropout_errors_name_the_op_and_shapes)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, (const int64_t[]){2, 3});
    tg_rng r;
    tg_rng_seed(&r, 1, 1);
    expect_error(!tg_dropout(g, x, -0.1, true, &r), "tg_dropout", "p must be in [0, 1]", "-0.1",
                 "x [2, 3]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    expect_error(!tg_dropout(g, x, 1.5, false, &r), "tg_dropout", "1.5", "x [2, 3]");
    expect_error(!tg_dropout(g, x, (double)NAN, true, &r), "tg_dropout", "nan", "x [2, 3]");
    expect_error(!tg_dropout(g, x, 0.5, true, NULL), "tg_dropout", "rng is NULL", "x [2, 3]");
    cr_expect_eq(tg_last_status(), TG_ERR_NULL);
    tg_error_clear();
    expect_error(!tg_dropout(g, NULL, 0.5, true, &r), "tg_dropout", "input 0 is NULL");
    tg_tensor *bad = tg_dropout(g, x, 2.0, true, &r);
    expect_error(!tg_dropout(g, bad, 0.5, true, &r), "tg_dropout", "2", "x [2, 3]");
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* ---------------------------------------------------------------- threads */

/* One training step of batchnorm2d (output, running statistics, gradients of
 * x, weight and bias) and one dropout (output, gradient) with `threads`
 * kernel threads; the shape is above the kernels' one-thread threshold. */
static void norm_step(int threads, tg_dtype dt, tg_tensor **res)
{
    int old = tg_set_num_threads(threads);
    int64_t C = 8;
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_random(dt, 4, S4(4, 8, 33, 33), -2, 3, 11);
    tg_tensor *w = tgt_random(dt, 1, &C, 0.5, 2, 12), *b = tgt_random(dt, 1, &C, -1, 1, 13);
    tg_tensor *v = tgt_random(dt, 4, S4(4, 8, 33, 33), -1, 1, 14);
    res[0] = tg_tensor_new(dt, 1, &C);
    res[1] = tg_tensor_new(dt, 1, &C);
    tg_tensor_fill(res[1], 1.0);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor_set_requires_grad(w, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tensor *y =
        tg_batchnorm2d(g, x, w, b, res[0], res[1], (tg_batchnorm2d_args){.training = true});
    cr_assert(y, "%s", tg_last_error());
    cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
    res[2] = tg_tensor_copy(y, TG_F64);
    res[3] = tg_tensor_copy(tg_tensor_grad(x), TG_F64);
    res[4] = tg_tensor_copy(tg_tensor_grad(w), TG_F64);
    res[5] = tg_tensor_copy(tg_tensor_grad(b), TG_F64);
    tg_tensor_zero_grad(x);
    tg_rng r;
    tg_rng_seed(&r, 21, 0);
    tg_tensor *d = tg_dropout(g, x, 0.3, true, &r);
    cr_assert(d, "%s", tg_last_error());
    cr_assert_eq(tg_backward_with(g, d, v), TG_OK, "%s", tg_last_error());
    res[6] = tg_tensor_copy(d, TG_F64);
    res[7] = tg_tensor_copy(tg_tensor_grad(x), TG_F64);
    tg_tensor *xs[] = {x, w, b, v};
    for (int i = 0; i < 4; i++)
        tg_tensor_free(xs[i]);
    tg_graph_free(g);
    tg_set_num_threads(old);
}

Test(ops_norm, results_do_not_depend_on_the_thread_count)
{
    const char *names[] = {"running_mean", "running_var", "y", "dx", "dw", "db", "dropout y",
                           "dropout dx"};
    for (int dt = 0; dt < 2; dt++) {
        tg_tensor *one[8], *two[8];
        norm_step(1, (tg_dtype)dt, one);
        norm_step(2, (tg_dtype)dt, two);
        for (int i = 0; i < 8; i++) {
            char msg[512];
            cr_expect(tgt_allclose_t(two[i], one[i], 0, 0, names[i], msg, sizeof msg), "%s: %s",
                      tg_dtype_name((tg_dtype)dt), msg);
            tg_tensor_free(one[i]);
            tg_tensor_free(two[i]);
        }
    }
}
