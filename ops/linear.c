/* linear: torch.nn.functional.linear, y = x w^T + b, fused over the GEMM kernel
 * in ops/kernels/gemm.h: one GEMM with trans_b for the forward (w is read in
 * its stored [out, in] layout, never copied transposed), the bias written into
 * the output first and the GEMM accumulating onto it, and GEMMs with transpose
 * flags for the VJP. nn's Linear module calls this op. */
/* error.h first: ops/internal.h uses tg_set_error without including it. */
#include "../autograd/error.h"
#include "internal.h"
#include "kernels/gemm.h"

#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------------ linear */

/* linear: y[r, o] = b[o] + sum_i x[r, i] w[o, i], where r runs over the
 * flattened leading dims of x ([..., in] viewed as [M, in], M the product of
 * the leading dims, 1 for a 1-D x) and b = 0 when there is no bias.
 * VJP (dy [M, out]): dx [M, in] += dy w; dw [out, in] += dy^T x (the inner
 * dimension M sums over every leading dim of x); db[o] += sum_r dy[r, o].
 * Bilinear in (x, w), linear in b: no kinks. in = 0 gives y = b (or zeros),
 * as PyTorch. Inputs: x, w and an optional bias (2 or 3 inputs, TG_VARIADIC). */

typedef struct lin_dims {
    int64_t M, K, N; /* rows of x, in-features, out-features */
} lin_dims;

/* Checks the inputs (setting the error) and returns the GEMM sizes; with
 * `out`, also the output shape [..., out]. */
static int lin_check(const tg_node *n, lin_dims *d, tg_shape *out)
{
    if (n->n_inputs != 2 && n->n_inputs != 3)
        return tg_set_error(TG_ERR_ARG, "takes x, w and an optional bias (2 or 3 inputs), got %d",
                            n->n_inputs);
    const tg_tensor *x = n->inputs[0], *w = n->inputs[1];
    const tg_tensor *b = n->n_inputs == 3 ? n->inputs[2] : NULL;
    const int nx = tg_tensor_ndim(x);
    const int64_t *xs = tg_tensor_shape(x), *ws = tg_tensor_shape(w);
    if (nx < 1)
        return tg_set_error(TG_ERR_SHAPE, "x must be at least 1-D [..., in]: got x %s, w %s",
                            TG_SHP(x), TG_SHP(w));
    if (tg_tensor_ndim(w) != 2)
        return tg_set_error(TG_ERR_SHAPE, "w must be 2-D [out, in]: got x %s, w %s", TG_SHP(x),
                            TG_SHP(w));
    if (xs[nx - 1] != ws[1])
        return tg_set_error(TG_ERR_SHAPE,
                            "in-features differ: x %s has %lld, w %s has %lld (w is [out, in])",
                            TG_SHP(x), (long long)xs[nx - 1], TG_SHP(w), (long long)ws[1]);
    if (b && (tg_tensor_ndim(b) != 1 || tg_tensor_shape(b)[0] != ws[0]))
        return tg_set_error(TG_ERR_SHAPE, "bias must be [out] = [%lld]: got bias %s for w %s, x %s",
                            (long long)ws[0], TG_SHP(b), TG_SHP(w), TG_SHP(x));
    int64_t M = 1;
    for (int i = 0; i < nx - 1; i++)
        M *= xs[i]; /* bounded by numel(x), which the tensor already holds */
    d->M = M;
    d->K = ws[1];
    d->N = ws[0];
    if (out) {
        out->ndim = nx;
        for (int i = 0; i < nx - 1; i++)
            out->dims[i] = xs[i];
        out->dims[nx - 1] = ws[0];
    }
    return TG_OK;
}

static int linear_shape(const tg_node *n, tg_shape *out)
{
    lin_dims d;
    return lin_check(n, &d, out);
}

/* C (+)= op(A) op(B) in either dtype; acc selects beta = 1 over beta = 0. */
static void lin_gemm(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                     const void *A, int64_t lda, const void *B, int64_t ldb, bool acc, void *C,
                     int64_t ldc)
{
    if (dt == TG_F64)
        tg__gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, acc ? 1.0 : 0.0, C, ldc);
    else
        tg__gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, acc ? 1.0f : 0.0f, C, ldc);
}

static int linear_forward(tg_node *n)
{
    lin_dims d;
    int rc = lin_check(n, &d, NULL);
    if (rc != TG_OK)
        return rc;
    const int64_t M = d.M, K = d.K, N = d.N;
    if (M == 0 || N == 0)
        return TG_OK;
    const tg_tensor *b = n->n_inputs == 3 ? n->inputs[2] : NULL;
    const tg_dtype dt = tg_tensor_dtype(n->out);
    const size_t es = tg_dtype_size(dt), row = (size_t)N * es;
    char *y = tg_tensor_data(n->out);
    /* The bias goes in first (one pass over y while it is being written
     * anyway) and the GEMM accumulates onto it (beta = 1). */
    if (b) {
        const void *bd = tg_tensor_data(b);
        for (int64_t r = 0; r < M; r++)
            memcpy(y + (size_t)r * row, bd, row);
    } else if (K == 0) {
        memset(y, 0, (size_t)M * row);
    }
    /* y [M, N] (+)= x [M, K] w^T, w stored [N, K]: trans_b, ldb = K. Sizes are
     * all >= 1 here (as BLAS requires); K = 0 leaves y = b or zeros. */
    if (K > 0)
        lin_gemm(dt, false, true, M, N, K, tg_tensor_data(n->inputs[0]), K,
                 tg_tensor_data(n->inputs[1]), K, b != NULL, y, N);
    return TG_OK;
}

/* db [N] += column sums of dy [M, N]; float32 sums in a double row from the
 * arena, then adds once. Rows are added in order, so the result is fixed. */
static int linear_bias_grad(tg_node *n, tg_tensor *db, const tg_tensor *dout, int64_t M,
                            int64_t N)
{
    if (tg_tensor_dtype(db) == TG_F64) {
        double *g = tg_tensor_data(db);
        const double *dy = tg_tensor_data(dout);
        for (int64_t r = 0; r < M; r++)
            for (int64_t j = 0; j < N; j++)
                g[j] += dy[r * N + j];
        return TG_OK;
    }
    double *acc = tg_graph_alloc(n->graph, (size_t)N * sizeof *acc);
    if (!acc)
        return tg_last_status();
    memset(acc, 0, (size_t)N * sizeof *acc);
    const float *dy = tg_tensor_data(dout);
    for (int64_t r = 0; r < M; r++)
        for (int64_t j = 0; j < N; j++)
            acc[j] += (double)dy[r * N + j];
    float *g = tg_tensor_data(db);
    for (int64_t j = 0; j < N; j++)
        g[j] += (float)acc[j];
    return TG_OK;
}

static int linear_backward(tg_node *n, const tg_tensor *dout)
{
    lin_dims d;
    int rc = lin_check(n, &d, NULL);
    if (rc != TG_OK)
        return rc;
    const int64_t M = d.M, K = d.K, N = d.N;
    tg_tensor *dw = tg_node_grad(n, 1), *db = n->n_inputs == 3 ? tg_node_grad(n, 2) : NULL;
    /* dx may be a first contribution: the GEMM then writes it (beta = 0). It
     * is taken last, so that no failure can leave it unwritten. */
    bool dx_fresh = false;
    tg_tensor *dx = M && N ? tg_node_grad_fresh(n, 0, &dx_fresh) : tg_node_grad(n, 0);
    for (int i = 0; i < n->n_inputs; i++)
        if (tg_node_needs_grad(n, i) && !tg_node_grad(n, i))
            return tg_last_status(); /* the gradient buffer could not be allocated */
    if (M == 0 || N == 0)
        return TG_OK; /* nothing flows through an empty output */
    const tg_dtype dt = tg_tensor_dtype(dout);
    const void *dy = tg_tensor_data(dout);
    if (K > 0) {
        if (dx) /* dx [M, K] += dy [M, N] w [N, K] */
            lin_gemm(dt, false, false, M, K, N, dy, N, tg_tensor_data(n->inputs[1]), K, !dx_fresh,
                     tg_tensor_data(dx), K);
        if (dw) /* dw [N, K] += dy^T (dy stored [M, N]) x [M, K] */
            lin_gemm(dt, true, false, N, K, M, dy, N, tg_tensor_data(n->inputs[0]), K, true,
                     tg_tensor_data(dw), K);
    }
    return db ? linear_bias_grad(n, db, dout, M, N) : TG_OK;
}

const tg_op tg_op_linear = {.name = "linear",
                            .n_inputs = TG_VARIADIC,
                            .shape = linear_shape,
                            .forward = linear_forward,
                            .backward = linear_backward};

tg_tensor *tg_linear(tg_graph *g, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    tg_tensor *in[3] = {x, w, b};
    return tg_apply(g, &tg_op_linear, in, b ? 3 : 2, NULL);
}
