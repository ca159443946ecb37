/* Shape ops: reshape, flatten, transpose, concat. Gradcheck table (family
 * "shape"), forward values and shapes, the tiled transpose against an index
 * formula, concat's gradient slices, zero-size parts, and the error messages. */
#include "helpers.h"

#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------ gradcheck */

typedef struct reshape_ctx {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
} reshape_ctx;

typedef struct transpose_ctx {
    int dim0, dim1;
} transpose_ctx;

static tg_tensor *f_reshape(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    const reshape_ctx *c = ctx;
    (void)n;
    return tg_reshape(g, x[0], c->ndim, c->shape);
}

static tg_tensor *f_flatten(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    (void)n;
    return tg_flatten(g, x[0], *(const int *)ctx);
}

static tg_tensor *f_transpose(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    const transpose_ctx *c = ctx;
    (void)n;
    return tg_transpose(g, x[0], c->dim0, c->dim1);
}

static tg_tensor *f_concat(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    return tg_concat(g, x, n, *(const int *)ctx);
}

/* concat(x0, x1, x0): one tensor used twice must get both slices. */
static tg_tensor *f_concat_twice(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    tg_tensor *xs[3] = {x[0], n > 1 ? x[1] : x[0], x[0]};
    return tg_concat(g, xs, 3, *(const int *)ctx);
}

/* A transpose inside a chain, so its output's gradient arrives non-trivially. */
static tg_tensor *f_transpose_then_flatten(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    const transpose_ctx *c = ctx;
    (void)n;
    return tg_flatten(g, tg_transpose(g, x[0], c->dim0, c->dim1), 0);
}

#define IN(nd, ...) {(nd), {__VA_ARGS__}, GC_UNIFORM, false}
#define IN_NOGRAD(nd, ...) {(nd), {__VA_ARGS__}, GC_UNIFORM, true}
#define IN_SCALAR {0, {0}, GC_UNIFORM, false}

#define RESHAPE(label, input, nd, ...)                                                         \
    {"reshape", label, f_reshape, &(const reshape_ctx){(nd), {__VA_ARGS__}}, .n_inputs = 1,    \
     .in = {input}}
#define FLATTEN(s, nd, ...)                                                                    \
    {"flatten", "[" #__VA_ARGS__ "] start_dim " #s, f_flatten, &(const int){s}, .n_inputs = 1, \
     .in = {IN(nd, __VA_ARGS__)}}
#define FLATTEN_SCALAR(s)                                                                      \
    {"flatten", "[] start_dim " #s, f_flatten, &(const int){s}, .n_inputs = 1, .in = {IN_SCALAR}}
#define TRANSPOSE(a, b, nd, ...)                                                               \
    {"transpose", "[" #__VA_ARGS__ "] dims " #a ", " #b, f_transpose,                          \
     &(const transpose_ctx){(a), (b)}, .n_inputs = 1, .in = {IN(nd, __VA_ARGS__)}}
#define TRANSPOSE_SCALAR(a, b)                                                                 \
    {"transpose", "[] dims " #a ", " #b, f_transpose, &(const transpose_ctx){(a), (b)},        \
     .n_inputs = 1, .in = {IN_SCALAR}}
#define CONCAT(label, axis, n, ...)                                                            \
    {"concat", label, f_concat, &(const int){axis}, .n_inputs = (n), .in = {__VA_ARGS__}}

const gc_case gc_cases_shape[] = {
    RESHAPE("[] -> [1]", IN_SCALAR, 1, 1),
    RESHAPE("[] -> [1, 1, 1]", IN_SCALAR, 3, 1, 1, 1),
    RESHAPE("[] -> [-1]", IN_SCALAR, 1, -1),
    RESHAPE("[1] -> []", IN(1, 1), 0, 0),
    RESHAPE("[6] -> [2, 3]", IN(1, 6), 2, 2, 3),
    RESHAPE("[2, 3] -> [6]", IN(2, 2, 3), 1, 6),
    RESHAPE("[2, 3] -> [3, 2]", IN(2, 2, 3), 2, 3, 2),
    RESHAPE("[2, 3] -> [3, -1]", IN(2, 2, 3), 2, 3, -1),
    RESHAPE("[2, 3] -> [-1]", IN(2, 2, 3), 1, -1),
    RESHAPE("[2, 3, 4] -> [4, -1, 2]", IN(3, 2, 3, 4), 3, 4, -1, 2),
    RESHAPE("[2, 3, 4] -> [24, 1]", IN(3, 2, 3, 4), 2, 24, 1),
    RESHAPE("[2, 3, 4] -> [1, 2, 1, 12]", IN(3, 2, 3, 4), 4, 1, 2, 1, 12),
    RESHAPE("[2, 3, 4, 5] -> [6, 20]", IN(4, 2, 3, 4, 5), 2, 6, 20),
    RESHAPE("[2, 3, 4, 5] -> [-1, 5]", IN(4, 2, 3, 4, 5), 2, -1, 5),
    RESHAPE("[2, 3, 4, 5] -> [5, 4, 3, 2]", IN(4, 2, 3, 4, 5), 4, 5, 4, 3, 2),
    RESHAPE("[1, 1, 1, 1] -> []", IN(4, 1, 1, 1, 1), 0, 0),
    RESHAPE("[7] -> [7, 1]", IN(1, 7), 2, 7, 1),
    RESHAPE("[5, 1, 3] -> [3, 5]", IN(3, 5, 1, 3), 2, 3, 5),
    RESHAPE("[3, 5] -> [1, 15, 1]", IN(2, 3, 5), 3, 1, 15, 1),
    RESHAPE("[4, 1, 3, 2] -> [2, -1, 2]", IN(4, 4, 1, 3, 2), 3, 2, -1, 2),
    RESHAPE("[9, 11] -> [11, 9]", IN(2, 9, 11), 2, 11, 9),
    RESHAPE("[2, 2, 2, 2] -> [2, 2, 2, 2, 1, 1]", IN(4, 2, 2, 2, 2), 6, 2, 2, 2, 2, 1, 1),
    RESHAPE("[2, 1, 3] -> [3, 1, 2]", IN(3, 2, 1, 3), 3, 3, 1, 2),

    FLATTEN_SCALAR(0),
    FLATTEN_SCALAR(-1),
    FLATTEN(0, 1, 5),
    FLATTEN(-1, 1, 5),
    FLATTEN(0, 2, 3, 4),
    FLATTEN(1, 2, 3, 4),
    FLATTEN(-1, 2, 3, 4),
    FLATTEN(-2, 2, 3, 4),
    FLATTEN(0, 3, 2, 3, 4),
    FLATTEN(1, 3, 2, 3, 4),
    FLATTEN(2, 3, 2, 3, 4),
    FLATTEN(-1, 3, 2, 3, 4),
    FLATTEN(-2, 3, 2, 3, 4),
    FLATTEN(-3, 3, 2, 3, 4),
    FLATTEN(0, 4, 2, 3, 4, 5),
    FLATTEN(1, 4, 2, 3, 4, 5),
    FLATTEN(2, 4, 2, 3, 4, 5),
    FLATTEN(3, 4, 2, 3, 4, 5),
    FLATTEN(-4, 4, 2, 3, 4, 5),
    FLATTEN(1, 4, 2, 1, 3, 1),
    FLATTEN(2, 4, 2, 1, 3, 1),
    FLATTEN(0, 3, 1, 1, 1),

    TRANSPOSE_SCALAR(0, 0),
    TRANSPOSE_SCALAR(0, -1),
    TRANSPOSE(0, 0, 1, 5),
    TRANSPOSE(-1, 0, 1, 5),
    TRANSPOSE(0, 1, 2, 3, 4),
    TRANSPOSE(1, 0, 2, 3, 4),
    TRANSPOSE(-1, -2, 2, 3, 4),
    TRANSPOSE(1, 1, 2, 3, 4),
    TRANSPOSE(0, 1, 2, 1, 7),
    TRANSPOSE(0, 1, 3, 2, 3, 4),
    TRANSPOSE(0, 2, 3, 2, 3, 4),
    TRANSPOSE(1, 2, 3, 2, 3, 4),
    TRANSPOSE(-1, 0, 3, 2, 3, 4),
    TRANSPOSE(2, -2, 3, 2, 3, 4),
    TRANSPOSE(0, 3, 4, 2, 3, 4, 5),
    TRANSPOSE(1, 2, 4, 2, 3, 4, 5),
    TRANSPOSE(0, 2, 4, 2, 3, 4, 5),
    TRANSPOSE(1, 3, 4, 2, 3, 4, 5),
    TRANSPOSE(-1, -3, 4, 2, 3, 4, 5),
    TRANSPOSE(2, 3, 4, 2, 3, 4, 5),
    TRANSPOSE(0, 2, 4, 1, 3, 1, 2),
    TRANSPOSE(1, 3, 4, 1, 3, 1, 2),
    TRANSPOSE(0, 1, 2, 37, 41),
    TRANSPOSE(1, 2, 3, 2, 35, 33),
    {"transpose", "[3, 4, 5] dims 0, 2 then flatten", f_transpose_then_flatten,
     &(const transpose_ctx){0, 2}, .n_inputs = 1, .in = {IN(3, 3, 4, 5)}},

    CONCAT("[5] axis 0", 0, 1, IN(1, 5)),
    CONCAT("[2, 3] axis -1", -1, 1, IN(2, 2, 3)),
    CONCAT("[3] + [4] axis 0", 0, 2, IN(1, 3), IN(1, 4)),
    CONCAT("[3] + [1] axis -1", -1, 2, IN(1, 3), IN(1, 1)),
    CONCAT("[2, 3] + [4, 3] axis 0", 0, 2, IN(2, 2, 3), IN(2, 4, 3)),
    CONCAT("[2, 3] + [2, 5] axis 1", 1, 2, IN(2, 2, 3), IN(2, 2, 5)),
    CONCAT("[2, 3] + [2, 1] axis -1", -1, 2, IN(2, 2, 3), IN(2, 2, 1)),
    CONCAT("[1, 3] + [2, 3] + [3, 3] axis 0", 0, 3, IN(2, 1, 3), IN(2, 2, 3), IN(2, 3, 3)),
    CONCAT("[2, 1] + [2, 2] + [2, 3] axis 1", 1, 3, IN(2, 2, 1), IN(2, 2, 2), IN(2, 2, 3)),
    CONCAT("[2, 3, 4] + [1, 3, 4] axis 0", 0, 2, IN(3, 2, 3, 4), IN(3, 1, 3, 4)),
    CONCAT("[2, 3, 4] + [2, 2, 4] + [2, 1, 4] axis 1", 1, 3, IN(3, 2, 3, 4), IN(3, 2, 2, 4),
           IN(3, 2, 1, 4)),
    CONCAT("[2, 3, 4] + [2, 3, 1] axis 2", 2, 2, IN(3, 2, 3, 4), IN(3, 2, 3, 1)),
    CONCAT("[2, 3, 4] + [2, 3, 2] + [2, 3, 3] axis -1", -1, 3, IN(3, 2, 3, 4), IN(3, 2, 3, 2),
           IN(3, 2, 3, 3)),
    CONCAT("[2, 3, 4] + [2, 2, 4] axis -2", -2, 2, IN(3, 2, 3, 4), IN(3, 2, 2, 4)),
    CONCAT("[2, 3, 2, 2] + [2, 1, 2, 2] axis 1", 1, 2, IN(4, 2, 3, 2, 2), IN(4, 2, 1, 2, 2)),
    CONCAT("[2, 3, 2, 2] + [2, 3, 2, 3] axis 3", 3, 2, IN(4, 2, 3, 2, 2), IN(4, 2, 3, 2, 3)),
    CONCAT("[1, 2, 3, 2] + [2, 2, 3, 2] + [1, 2, 3, 2] axis 0", 0, 3, IN(4, 1, 2, 3, 2),
           IN(4, 2, 2, 3, 2), IN(4, 1, 2, 3, 2)),
    CONCAT("[2, 2, 1, 3] + [2, 2, 4, 3] axis -2", -2, 2, IN(4, 2, 2, 1, 3), IN(4, 2, 2, 4, 3)),
    CONCAT("[2, 3] + [2, 3] (no grad) axis 0", 0, 2, IN(2, 2, 3), IN_NOGRAD(2, 2, 3)),
    CONCAT("[3, 2] (no grad) + [3, 4] + [3, 1] axis 1", 1, 3, IN_NOGRAD(2, 3, 2), IN(2, 3, 4),
           IN(2, 3, 1)),
    CONCAT("[2, 1] + [2, 2] + [2, 3] + [2, 4] axis 1", 1, 4, IN(2, 2, 1), IN(2, 2, 2),
           IN(2, 2, 3), IN(2, 2, 4)),
    CONCAT("[2, 0, 3] + [2, 4, 3] axis 1", 1, 2, IN(3, 2, 0, 3), IN(3, 2, 4, 3)),
    {"concat", "x [2, 3], y [1, 3]: (x, y, x) axis 0", f_concat_twice, &(const int){0},
     .n_inputs = 2, .in = {IN(2, 2, 3), IN(2, 1, 3)}},
    {"concat", "x [3, 2]: (x, x, x) axis -1", f_concat_twice, &(const int){-1}, .n_inputs = 1,
     .in = {IN(2, 3, 2)}},
};
const size_t gc_n_shape = sizeof gc_cases_shape / sizeof gc_cases_shape[0];

Test(ops_shape, gradcheck_table)
{
    gc_run_table(gc_cases_shape, gc_n_shape);
}

/* -------------------------------------------------------------- helpers */

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})

#define expect_shape(t, str)                                                                   \
    do {                                                                                       \
        char s_[TG_SHAPE_STR_MAX];                                                             \
        cr_assert((t), "NULL result: %s", tg_last_error());                                    \
        tg_shape_format(s_, sizeof s_, tg_tensor_ndim(t), tg_tensor_shape(t));                 \
        cr_expect_str_eq(s_, (str), "shape of %s", #t);                                        \
    } while (0)

static const tg_dtype dtypes[2] = {TG_F64, TG_F32};

/* 0, 1, 2, ... as a leaf of the given shape. */
static tg_tensor *arange(tg_dtype dt, int nd, const int64_t *shape)
{
    tg_tensor *t = tg_tensor_new(dt, nd, shape);
    cr_assert(t, "%s", tg_last_error());
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i, (double)i);
    return t;
}

/* ------------------------------------------------------------- reshape */

Test(ops_shape, reshape_keeps_order_and_infers_minus_one)
{
    for (int k = 0; k < 2; k++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = arange(dtypes[k], 2, SHAPE(2, 3));
        tg_tensor *y = tg_reshape(g, x, 2, SHAPE(3, -1));
        expect_shape(y, "[3, 2]");
        expect_close(y, VALS(0, 1, 2, 3, 4, 5), 0, 0);
        cr_expect(tg_tensor_data(y) != tg_tensor_data(x), "reshape copies");
        y = tg_reshape(g, x, 3, SHAPE(-1, 1, 2));
        expect_shape(y, "[3, 1, 2]");
        y = tg_reshape(g, x, 1, SHAPE(-1));
        expect_shape(y, "[6]");
        tg_tensor *one = tgt_tensor(dtypes[k], 2, SHAPE(1, 1), VALS(7));
        y = tg_reshape(g, one, 0, NULL);
        expect_shape(y, "[]");
        expect_close(y, VALS(7), 0, 0);
        y = tg_reshape(g, y, 3, SHAPE(1, -1, 1));
        expect_shape(y, "[1, 1, 1]");
        /* Zero-size tensors reshape among shapes of 0 elements. */
        tg_tensor *e = tg_tensor_new(dtypes[k], 2, SHAPE(0, 3));
        y = tg_reshape(g, e, 3, SHAPE(3, 0, 5));
        expect_shape(y, "[3, 0, 5]");
        y = tg_reshape(g, e, 2, SHAPE(-1, 3));
        expect_shape(y, "[0, 3]");
        tg_tensor_free(e);
        tg_tensor_free(one);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

Test(ops_shape, reshape_gradient_is_the_cotangent_in_input_shape)
{
    for (int k = 0; k < 2; k++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = arange(dtypes[k], 2, SHAPE(2, 3));
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *v = tgt_tensor(dtypes[k], 3, SHAPE(3, 1, 2), VALS(1, 2, 3, 4, 5, 6));
        cr_assert_eq(tg_backward_with(g, tg_reshape(g, x, 3, SHAPE(3, 1, 2)), v), TG_OK, "%s",
                     tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(1, 2, 3, 4, 5, 6), 0, 0);
        tg_tensor *v2 = tgt_tensor(dtypes[k], 1, SHAPE(6), VALS(10, 20, 30, 40, 50, 60));
        cr_assert_eq(tg_backward_with(g, tg_flatten(g, x, 0), v2), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(11, 22, 33, 44, 55, 66), 0, 0);
        tg_tensor_free(v);
        tg_tensor_free(v2);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------------------- flatten */

/* Shapes as torch.flatten(x, start_dim) gives them. */
Test(ops_shape, flatten_shapes_match_torch)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = arange(TG_F32, 3, SHAPE(2, 3, 4));
    expect_shape(tg_flatten(g, x, 0), "[24]");
    expect_shape(tg_flatten(g, x, 1), "[2, 12]");
    expect_shape(tg_flatten(g, x, 2), "[2, 3, 4]");
    expect_shape(tg_flatten(g, x, -1), "[2, 3, 4]");
    expect_shape(tg_flatten(g, x, -2), "[2, 12]");
    expect_shape(tg_flatten(g, x, -3), "[24]");
    expect_close(tg_flatten(g, x, 1), VALS(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                           16, 17, 18, 19, 20, 21, 22, 23),
                 0, 0);
    tg_tensor *s = tgt_tensor(TG_F32, 0, NULL, VALS(3));
    expect_shape(tg_flatten(g, s, 0), "[1]");
    expect_shape(tg_flatten(g, s, -1), "[1]");
    expect_close(tg_flatten(g, s, 0), VALS(3), 0, 0);
    tg_tensor *e = tg_tensor_new(TG_F32, 3, SHAPE(2, 0, 3));
    expect_shape(tg_flatten(g, e, 1), "[2, 0]");
    expect_shape(tg_flatten(g, e, 0), "[0]");
    tg_tensor_free(e);
    tg_tensor_free(s);
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* ----------------------------------------------------------- transpose */

/* Values from PyTorch:
 *   torch.arange(24.).reshape(2, 3, 4).transpose(0, 2).flatten().tolist()
 *   torch.arange(24.).reshape(2, 3, 4).transpose(1, -1).flatten().tolist() */
Test(ops_shape, transpose_values_match_pytorch)
{
    for (int k = 0; k < 2; k++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *m = tgt_tensor(dtypes[k], 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
        tg_tensor *y = tg_transpose(g, m, 0, 1);
        expect_shape(y, "[3, 2]");
        expect_close(y, VALS(1, 4, 2, 5, 3, 6), 0, 0);
        tg_tensor *x = arange(dtypes[k], 3, SHAPE(2, 3, 4));
        y = tg_transpose(g, x, 0, 2);
        expect_shape(y, "[4, 3, 2]");
        expect_close(y, VALS(0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14, 6, 18, 10, 22, 3, 15,
                             7, 19, 11, 23),
                     0, 0);
        y = tg_transpose(g, x, 1, -1);
        expect_shape(y, "[2, 4, 3]");
        expect_close(y, VALS(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 16, 20, 13, 17, 21, 14, 18,
                             22, 15, 19, 23),
                     0, 0);
        y = tg_transpose(g, x, 2, 0); /* the order of the two dims does not matter */
        expect_shape(y, "[4, 3, 2]");
        expect_close(y, VALS(0, 12, 4, 16, 8, 20, 1, 13, 5, 17, 9, 21, 2, 14, 6, 18, 10, 22, 3, 15,
                             7, 19, 11, 23),
                     0, 0);
        y = tg_transpose(g, x, 1, 1);
        expect_shape(y, "[2, 3, 4]");
        cr_expect(tg_tensor_data(y) != tg_tensor_data(x), "a new contiguous tensor");
        tg_tensor *s = tgt_tensor(dtypes[k], 0, NULL, VALS(5));
        y = tg_transpose(g, s, 0, -1);
        expect_shape(y, "[]");
        expect_close(y, VALS(5), 0, 0);
        tg_tensor *e = tg_tensor_new(dtypes[k], 2, SHAPE(0, 3));
        expect_shape(tg_transpose(g, e, 0, 1), "[3, 0]");
        tg_tensor_free(e);
        tg_tensor_free(s);
        tg_tensor_free(m);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* Shapes bigger than the kernel's tiles (64 x 64 float32, 32 x 32 float64), with and without
 * trailing dims (C == 1 and C > 1), against the index formula; backward too. */
Test(ops_shape, tiled_transpose_matches_the_index_formula)
{
    static const struct {
        int nd;
        int64_t d[4];
        int a, b;
    } cases[] = {
        {2, {70, 45}, 0, 1},
        {2, {130, 67}, 1, 0},
        {4, {37, 5, 41, 2}, 0, 2},
        {3, {3, 40, 33}, -1, -2},
        {4, {2, 33, 65, 1}, 1, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int k = 0; k < 2; k++) {
            int nd = cases[c].nd, a = (cases[c].a + nd) % nd, b = (cases[c].b + nd) % nd;
            const int64_t *d = cases[c].d;
            tg_graph *g = tg_graph_new();
            tg_tensor *x = arange(dtypes[k], nd, d);
            tg_tensor_set_requires_grad(x, true);
            tg_tensor *y = tg_transpose(g, x, cases[c].a, cases[c].b);
            cr_assert(y, "%s", tg_last_error());
            int64_t n = tg_tensor_numel(x);
            double *want = malloc((size_t)n * sizeof *want);
            /* Walk x's multi-index; y's index swaps entries a and b. */
            int64_t ydims[4], idx[4] = {0};
            for (int i = 0; i < nd; i++)
                ydims[i] = d[i];
            ydims[a] = d[b];
            ydims[b] = d[a];
            for (int64_t f = 0; f < n; f++) {
                int64_t rem = f;
                for (int i = nd - 1; i >= 0; i--) {
                    idx[i] = rem % d[i];
                    rem /= d[i];
                }
                int64_t t = idx[a];
                idx[a] = idx[b];
                idx[b] = t;
                int64_t yf = 0;
                for (int i = 0; i < nd; i++)
                    yf = yf * ydims[i] + idx[i];
                want[yf] = (double)f;
            }
            expect_close(y, want, 0, 0);
            /* With cotangent v = y's values, dx must be x's values (0, 1, ...). */
            tg_tensor *v = tg_tensor_copy(y, dtypes[k]);
            cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
            for (int64_t f = 0; f < n; f++)
                want[f] = (double)f;
            expect_close(tg_tensor_grad(x), want, 0, 0);
            free(want);
            tg_tensor_free(v);
            tg_tensor_free(x);
            tg_graph_free(g);
        }
    }
}

/* -------------------------------------------------------------- concat */

Test(ops_shape, concat_values_along_each_axis)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        tg_tensor *a = tgt_tensor(dt, 2, SHAPE(2, 2), VALS(1, 2, 3, 4));
        tg_tensor *b = tgt_tensor(dt, 2, SHAPE(1, 2), VALS(5, 6));
        tg_tensor *c = tgt_tensor(dt, 2, SHAPE(2, 1), VALS(7, 8));
        tg_tensor *ab[2] = {a, b}, *ac[2] = {a, c}, *aca[3] = {a, c, a};
        tg_tensor *y = tg_concat(g, ab, 2, 0);
        expect_shape(y, "[3, 2]");
        expect_close(y, VALS(1, 2, 3, 4, 5, 6), 0, 0);
        y = tg_concat(g, ac, 2, -1);
        expect_shape(y, "[2, 3]");
        expect_close(y, VALS(1, 2, 7, 3, 4, 8), 0, 0);
        y = tg_concat(g, aca, 3, 1);
        expect_shape(y, "[2, 5]");
        expect_close(y, VALS(1, 2, 7, 1, 2, 3, 4, 8, 3, 4), 0, 0);
        y = tg_concat(g, &a, 1, 0);
        expect_shape(y, "[2, 2]");
        expect_close(y, VALS(1, 2, 3, 4), 0, 0);
        cr_expect(tg_tensor_data(y) != tg_tensor_data(a));
        tg_tensor_free(a);
        tg_tensor_free(b);
        tg_tensor_free(c);
        tg_graph_free(g);
    }
}

/* Zero-size parts take no room; a result with no elements is fine too. */
Test(ops_shape, concat_with_zero_size_parts)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *e = tg_tensor_new(TG_F32, 3, SHAPE(2, 0, 3));
    tg_tensor *x = arange(TG_F32, 3, SHAPE(2, 1, 3));
    tg_tensor_set_requires_grad(e, true);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *xs[3] = {e, x, e};
    tg_tensor *y = tg_concat(g, xs, 3, 1);
    expect_shape(y, "[2, 1, 3]");
    expect_close(y, VALS(0, 1, 2, 3, 4, 5), 0, 0);
    tg_tensor *ones = tgt_tensor(TG_F32, 3, SHAPE(2, 1, 3), VALS(1, 1, 1, 1, 1, 1));
    cr_assert_eq(tg_backward_with(g, y, ones), TG_OK, "%s", tg_last_error());
    tg_tensor_free(ones);
    expect_close(tg_tensor_grad(x), VALS(1, 1, 1, 1, 1, 1), 0, 0);
    cr_expect_eq(tg_tensor_numel(tg_tensor_grad(e)), 0);
    tg_tensor *ee[2] = {e, e};
    y = tg_concat(g, ee, 2, 1);
    expect_shape(y, "[2, 0, 3]");
    tg_tensor *f = tg_tensor_new(TG_F32, 3, SHAPE(0, 1, 3));
    tg_tensor *fx[2] = {f, x};
    y = tg_concat(g, fx, 2, 0);
    expect_shape(y, "[2, 1, 3]");
    expect_close(y, VALS(0, 1, 2, 3, 4, 5), 0, 0);
    tg_tensor_free(f);
    tg_tensor_free(e);
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* Each input gets exactly its slice of dy; one given twice gets both; one
 * that needs no gradient gets none. */
Test(ops_shape, concat_gradient_slices_the_cotangent)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        tg_tensor *a = tgt_tensor(dt, 2, SHAPE(2, 2), VALS(1, 2, 3, 4));
        tg_tensor *c = tgt_tensor(dt, 2, SHAPE(2, 1), VALS(7, 8));
        tg_tensor_set_requires_grad(a, true);
        tg_tensor *aca[3] = {a, c, a};
        tg_tensor *y = tg_concat(g, aca, 3, 1);
        tg_tensor *v = tgt_tensor(dt, 2, SHAPE(2, 5), VALS(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
        cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
        /* a's slices: columns 0-1 and 3-4 of v. */
        expect_close(tg_tensor_grad(a), VALS(1 + 4, 2 + 5, 6 + 9, 7 + 10), 0, 0);
        cr_expect_null(tg_tensor_grad(c));
        tg_tensor_free(v);
        tg_tensor_free(a);
        tg_tensor_free(c);
        tg_graph_free(g);
    }
}

/* ----------------------------------------------------------------- errors */

Test(ops_shape, reshape_errors_name_both_shapes)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *e = tg_tensor_new(TG_F64, 2, SHAPE(0, 3));
    expect_error(tg_reshape(g, x, 2, SHAPE(4, 2)) == NULL, "tg_reshape", "[2, 3]", "6 elements",
                 "[4, 2]", "8 elements");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    expect_error(tg_reshape(g, x, 0, NULL) == NULL, "tg_reshape", "[2, 3]", "to []",
                 "(1 element)");
    expect_error(tg_reshape(g, x, 2, SHAPE(-1, -1)) == NULL, "tg_reshape", "[2, 3]", "[-1, -1]",
                 "only one dimension can be -1");
    expect_error(tg_reshape(g, x, 2, SHAPE(-2, -3)) == NULL, "tg_reshape", "[2, 3]", "[-2, -3]",
                 "-2");
    expect_error(tg_reshape(g, x, 3, SHAPE(3, -1, -4)) == NULL, "tg_reshape", "[2, 3]",
                 "[3, -1, -4]", "-4");
    expect_error(tg_reshape(g, x, 2, SHAPE(4, -1)) == NULL, "tg_reshape", "[2, 3]", "[4, -1]",
                 "not a multiple");
    expect_error(tg_reshape(g, e, 2, SHAPE(0, -1)) == NULL, "tg_reshape", "[0, 3]", "[0, -1]",
                 "ambiguous");
    expect_error(tg_reshape(g, x, 2, SHAPE(INT64_MAX / 2, 4)) == NULL, "tg_reshape", "[2, 3]",
                 "overflows");
    expect_error(tg_reshape(g, x, 9, SHAPE(1, 1, 1, 1, 1, 1, 1, 2, 3)) == NULL, "tg_reshape",
                 "[2, 3]", "9 dims");
    expect_error(tg_reshape(g, x, -1, NULL) == NULL, "tg_reshape", "[2, 3]", "-1 dims");
    expect_error(tg_reshape(g, x, 2, NULL) == NULL, "tg_reshape", "[2, 3]", "NULL");
    tg_tensor_free(x);
    tg_tensor_free(e);
    tg_graph_free(g);
}

Test(ops_shape, dim_out_of_range_names_op_dim_and_shape)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 2, SHAPE(2, 3));
    tg_tensor *s = tg_tensor_new(TG_F32, 0, NULL);
    expect_error(tg_flatten(g, x, 2) == NULL, "tg_flatten", "start_dim 2", "[2, 3]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    expect_error(tg_flatten(g, x, -3) == NULL, "tg_flatten", "start_dim -3", "[2, 3]");
    expect_error(tg_flatten(g, s, 1) == NULL, "tg_flatten", "start_dim 1", "[]");
    expect_error(tg_transpose(g, x, 2, 0) == NULL, "tg_transpose", "dim0 2", "[2, 3]");
    expect_error(tg_transpose(g, x, 0, -3) == NULL, "tg_transpose", "dim1 -3", "[2, 3]");
    expect_error(tg_transpose(g, s, 0, 1) == NULL, "tg_transpose", "dim1 1", "[]");
    tg_tensor_free(x);
    tg_tensor_free(s);
    tg_graph_free(g);
}

Test(ops_shape, concat_errors_show_every_input_shape)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F32, 2, SHAPE(2, 3));
    tg_tensor *b = tg_tensor_new(TG_F32, 2, SHAPE(2, 4));
    tg_tensor *c = tg_tensor_new(TG_F32, 2, SHAPE(3, 5));
    tg_tensor *r3 = tg_tensor_new(TG_F32, 3, SHAPE(2, 3, 1));
    tg_tensor *s = tg_tensor_new(TG_F32, 0, NULL);
    tg_tensor *d64 = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *abc[3] = {a, b, c};
    expect_error(tg_concat(g, abc, 3, 1) == NULL, "tg_concat", "axis 1", "[2, 3], [2, 4], [3, 5]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    expect_error(tg_concat(g, abc, 3, 0) == NULL, "tg_concat", "axis 0", "[2, 3], [2, 4], [3, 5]");
    tg_tensor *ar[2] = {a, r3};
    expect_error(tg_concat(g, ar, 2, 0) == NULL, "tg_concat", "rank", "[2, 3], [2, 3, 1]");
    tg_tensor *ss[2] = {s, s};
    expect_error(tg_concat(g, ss, 2, 0) == NULL, "tg_concat", "rank-0", "[], []");
    tg_tensor *ab[2] = {a, b};
    expect_error(tg_concat(g, ab, 2, 2) == NULL, "tg_concat", "axis 2", "[2, 3], [2, 4]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    expect_error(tg_concat(g, ab, 2, -3) == NULL, "tg_concat", "axis -3", "[2, 3], [2, 4]");
    tg_tensor *ad[2] = {a, d64};
    expect_error(tg_concat(g, ad, 2, 0) == NULL, "tg_concat", "float32", "float64");
    /* No inputs: caught before tg_apply with a message of its own. */
    expect_error(tg_concat(g, ab, 0, 0) == NULL, "tg_concat", "at least one", "n = 0");
    expect_error(tg_concat(g, ab, -2, 0) == NULL, "tg_concat", "at least one", "n = -2");
    expect_error(tg_concat(g, NULL, 2, 0) == NULL, "tg_concat", "xs is NULL");
    cr_expect_eq(tg_last_status(), TG_ERR_NULL);
    expect_error(tg_concat(g, NULL, 0, 0) == NULL, "tg_concat");
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
    tg_tensor_free(r3);
    tg_tensor_free(s);
    tg_tensor_free(d64);
    tg_graph_free(g);
}

/* Many inputs: the list is cut rather than overflowing the message. */
Test(ops_shape, concat_error_with_many_inputs_stays_readable)
{
    enum { N = 200 };
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F32, 2, SHAPE(2, 3));
    tg_tensor *b = tg_tensor_new(TG_F32, 2, SHAPE(4, 5));
    tg_tensor *xs[N];
    for (int i = 0; i < N; i++)
        xs[i] = a;
    xs[N - 1] = b;
    expect_error(tg_concat(g, xs, N, 1) == NULL, "tg_concat", "input 199", "[2, 3], [2, 3]",
                 "200 inputs");
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_shape, null_input_propagates_the_first_error)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 2, SHAPE(2, 3));
    tg_set_error(TG_ERR_SHAPE, "tg_matmul: earlier failure");
    cr_expect_null(tg_reshape(g, NULL, 1, SHAPE(6)));
    cr_expect_null(tg_reshape(g, NULL, 1, SHAPE(-7))); /* bad shape too: NULL wins */
    cr_expect_null(tg_flatten(g, NULL, 0));
    cr_expect_null(tg_transpose(g, NULL, 0, 1));
    tg_tensor *xn[3] = {x, NULL, x};
    cr_expect_null(tg_concat(g, xn, 3, 0));
    cr_expect_str_eq(tg_last_error(), "tg_matmul: earlier failure");
    /* A chain reports its first failure. */
    cr_expect_null(tg_flatten(g, tg_transpose(g, tg_reshape(g, x, 1, SHAPE(5)), 0, 0), 0));
    expect_error(true, "tg_reshape", "[2, 3]", "[5]");
    tg_error_clear();
    expect_error(tg_transpose(g, NULL, 0, 1) == NULL, "tg_transpose", "NULL");
    tg_error_clear();
    expect_error(tg_concat(g, xn, 3, 0) == NULL, "tg_concat", "input 1", "NULL");
    tg_tensor_free(x);
    tg_graph_free(g);
}
