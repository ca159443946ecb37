/* matmul: torch.matmul semantics (1-D dot, 2-D matrix product, 1-D operands
 * promoted and squeezed, N-D batched with broadcast batch dims) over the GEMM
 * kernel in ops/kernels/gemm.h. Only the batch walk and the VJP's use of
 * transposed operands live here; the multiply loops are the kernel's. */
/* error.h first: ops/internal.h uses tg_set_error without including it. */
#include "../autograd/error.h"
#include "internal.h"
#include "kernels/gemm.h"

#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------------ plan */

/* The shape analysis shared by the shape rule, forward and backward.
 * a is viewed as [batch_a..., M, K] (a 1-D a as [1, K]), b as [batch_b..., K, N]
 * (a 1-D b as [K, 1]); the batch dims broadcast right-aligned into bdims.
 * astr/bstr step a/b by whole matrices per output batch index (0 where that
 * operand is broadcast). The output is stored as [bdims..., M, N], which has
 * the same flat layout as the squeezed result shape. */
typedef struct mm_plan {
    int64_t M, K, N;
    int nbd;                       /* output batch dims */
    int64_t bdims[TG_MAX_DIMS];
    int64_t astr[TG_MAX_DIMS];     /* in matrices of M*K elements */
    int64_t bstr[TG_MAX_DIMS];     /* in matrices of K*N elements */
    int64_t n_batch;               /* product of bdims */
    /* b is a single matrix (no batch dims or all of size 1): a's batch folds
     * into M and one GEMM does the whole product (the nn Linear case). */
    bool fold;
} mm_plan;

static int mm_plan_make(const tg_tensor *a, const tg_tensor *b, mm_plan *p, tg_shape *out)
{
    int na = tg_tensor_ndim(a), nb = tg_tensor_ndim(b);
    const int64_t *as = tg_tensor_shape(a), *bs = tg_tensor_shape(b);
    if (na == 0 || nb == 0)
        return tg_set_error(TG_ERR_SHAPE, "both operands must be at least 1-D: a %s @ b %s",
                            TG_SHP(a), TG_SHP(b));
    int64_t ka = as[na - 1], kb = nb >= 2 ? bs[nb - 2] : bs[0];
    if (ka != kb)
        return tg_set_error(TG_ERR_SHAPE, "inner dimensions differ: a %s @ b %s", TG_SHP(a),
                            TG_SHP(b));
    p->M = na >= 2 ? as[na - 2] : 1;
    p->K = ka;
    p->N = nb >= 2 ? bs[nb - 1] : 1;

    int abn = na > 2 ? na - 2 : 0, bbn = nb > 2 ? nb - 2 : 0;
    int nbd = abn > bbn ? abn : bbn;
    int64_t run_a = 1, run_b = 1, n_batch = 1;
    for (int d = nbd - 1; d >= 0; d--) {
        int ia = d - (nbd - abn), ib = d - (nbd - bbn);
        int64_t da = ia >= 0 ? as[ia] : 1, db = ib >= 0 ? bs[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[TG_SHAPE_STR_MAX], sb[TG_SHAPE_STR_MAX];
            return tg_set_error(TG_ERR_SHAPE,
                                "batch dimensions %s and %s do not broadcast: a %s @ b %s",
                                tg_shape_format(sa, sizeof sa, abn, as),
                                tg_shape_format(sb, sizeof sb, bbn, bs), TG_SHP(a), TG_SHP(b));
        }
        p->bdims[d] = da == 1 ? db : da;
        p->astr[d] = da == 1 ? 0 : run_a;
        p->bstr[d] = db == 1 ? 0 : run_b;
        run_a *= da;
        run_b *= db;
        n_batch *= p->bdims[d];
    }
    p->nbd = nbd;
    p->n_batch = n_batch;
    p->fold = run_b == 1;

    if (out) {
        int k = 0;
        for (int d = 0; d < nbd; d++)
            out->dims[k++] = p->bdims[d];
        if (na >= 2)
            out->dims[k++] = p->M;
        if (nb >= 2)
            out->dims[k++] = p->N;
        out->ndim = k;
    }
    return TG_OK;
}

/* Walks the output batch in row-major order, tracking the matching a and b
 * matrix indices (an odometer, no division). */
typedef struct mm_iter {
    int64_t idx[TG_MAX_DIMS];
    int64_t a, b;
} mm_iter;

static void mm_iter_next(const mm_plan *p, mm_iter *it)
{
    for (int d = p->nbd - 1; d >= 0; d--) {
        it->idx[d]++;
        it->a += p->astr[d];
        it->b += p->bstr[d];
        if (it->idx[d] < p->bdims[d])
            return;
        it->a -= p->astr[d] * p->bdims[d];
        it->b -= p->bstr[d] * p->bdims[d];
        it->idx[d] = 0;
    }
}

/* C[c_off..] (+)= op(A[a_off..]) op(B[b_off..]) in either dtype; acc selects
 * beta = 1 (accumulate) over beta = 0 (overwrite). */
static void mm_gemm(tg_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                    const void *A, int64_t a_off, int64_t lda, const void *B, int64_t b_off,
                    int64_t ldb, bool acc, void *C, int64_t c_off, int64_t ldc)
{
    if (dt == TG_F64)
        tg__gemm_f64(ta, tb, M, N, K, 1.0, (const double *)A + a_off, lda,
                     (const double *)B + b_off, ldb, acc ? 1.0 : 0.0, (double *)C + c_off, ldc);
    else
        tg__gemm_f32(ta, tb, M, N, K, 1.0f, (const float *)A + a_off, lda,
                     (const float *)B + b_off, ldb, acc ? 1.0f : 0.0f, (float *)C + c_off, ldc);
}

/* ---------------------------------------------------------------- matmul */

/* matmul: C[i] = A[ia(i)] B[ib(i)] for every output batch index i, where
 * ia / ib map i to the (broadcast) batch index of each operand.
 * VJP: dA[ia(i)] += dC[i] B[ib(i)]^T and dB[ib(i)] += A[ia(i)]^T dC[i]; the +=
 * over every i that maps to the same operand matrix is the sum over the batch
 * dims that operand was broadcast across. 1-D operands use the same formulas
 * with M = 1 or N = 1 (their gradient has the same flat layout). Linear in each
 * operand: no kinks. K = 0 gives zeros, as PyTorch. */
static int matmul_shape(const tg_node *n, tg_shape *out)
{
    mm_plan p;
    return mm_plan_make(n->inputs[0], n->inputs[1], &p, out);
}

static int matmul_forward(tg_node *n)
{
    const tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    mm_plan p;
    int rc = mm_plan_make(a, b, &p, NULL);
    if (rc != TG_OK)
        return rc;
    tg_dtype dt = tg_tensor_dtype(a);
    const void *A = tg_tensor_data(a), *B = tg_tensor_data(b);
    void *C = tg_tensor_data(n->out);
    int64_t M = p.M, K = p.K, N = p.N;
    /* Empty products are handled here so that GEMM only ever sees sizes and
     * leading dimensions >= 1 (as BLAS requires): K = 0 gives zeros, as PyTorch. */
    if (tg_tensor_numel(n->out) == 0)
        return TG_OK;
    if (K == 0) {
        memset(C, 0, (size_t)tg_tensor_numel(n->out) * tg_dtype_size(dt));
        return TG_OK;
    }
    if (p.fold) {
        /* a [n_batch * M, K] @ b [K, N] -> out [n_batch * M, N] */
        mm_gemm(dt, false, false, p.n_batch * M, N, K, A, 0, K, B, 0, N, false, C, 0, N);
        return TG_OK;
    }
    mm_iter it = {{0}, 0, 0};
    for (int64_t i = 0; i < p.n_batch; i++, mm_iter_next(&p, &it))
        mm_gemm(dt, false, false, M, N, K, A, it.a * M * K, K, B, it.b * K * N, N, false, C,
                i * M * N, N);
    return TG_OK;
}

static int matmul_backward(tg_node *n, const tg_tensor *dout)
{
    const tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    mm_plan p;
    int rc = mm_plan_make(a, b, &p, NULL);
    if (rc != TG_OK)
        return rc;
    tg_tensor *da = tg_node_grad(n, 0), *db = tg_node_grad(n, 1);
    if ((!da && tg_node_needs_grad(n, 0)) || (!db && tg_node_needs_grad(n, 1)))
        return tg_last_status();
    tg_dtype dt = tg_tensor_dtype(a);
    const void *A = tg_tensor_data(a), *B = tg_tensor_data(b), *dC = tg_tensor_data(dout);
    void *dA = da ? tg_tensor_data(da) : NULL, *dB = db ? tg_tensor_data(db) : NULL;
    int64_t M = p.M, K = p.K, N = p.N;
    /* An empty product contributes nothing; the gradients stay zero. */
    if (K == 0 || tg_tensor_numel(dout) == 0)
        return TG_OK;
    if (p.fold) {
        /* dA [n_batch*M, K] += dC [n_batch*M, N] B^T;  dB [K, N] += A^T dC,
         * the inner dimension n_batch*M summing over the broadcast batch. */
        if (dA)
            mm_gemm(dt, false, true, p.n_batch * M, K, N, dC, 0, N, B, 0, N, true, dA, 0, K);
        if (dB)
            mm_gemm(dt, true, false, K, N, p.n_batch * M, A, 0, K, dC, 0, N, true, dB, 0, N);
        return TG_OK;
    }
    mm_iter it = {{0}, 0, 0};
    for (int64_t i = 0; i < p.n_batch; i++, mm_iter_next(&p, &it)) {
        if (dA) /* dA[ia] [M, K] += dC[i] [M, N] @ (B[ib] [K, N])^T */
            mm_gemm(dt, false, true, M, K, N, dC, i * M * N, N, B, it.b * K * N, N, true, dA,
                    it.a * M * K, K);
        if (dB) /* dB[ib] [K, N] += (A[ia] [M, K])^T @ dC[i] [M, N] */
            mm_gemm(dt, true, false, K, N, M, A, it.a * M * K, K, dC, i * M * N, N, true, dB,
                    it.b * K * N, N);
    }
    return TG_OK;
}

const tg_op tg_op_matmul = {.name = "matmul",
                            .n_inputs = 2,
                            .shape = matmul_shape,
                            .forward = matmul_forward,
                            .backward = matmul_backward};

tg_tensor *tg_matmul(tg_graph *g, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    return tg_apply(g, &tg_op_matmul, in, 2, NULL);
}
