/* conv2d: torch.nn.functional.conv2d (cross-correlation; stride, padding,
 * 'same', dilation, groups, optional bias). Here: the argument checks and shape
 * rule, the arena scratch (sized by the float32 path's plan), and the dtype
 * dispatch. The loops (float64 per-image GEMMs, the float32 paths: im2col +
 * GEMM, direct kernels, Winograd; the float64 reference) are in
 * ops/kernels/conv.c; docs/performance.md describes the float32 paths. */
#include "internal.h"
#include "kernels/conv.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ conv2d */

/* conv2d: y[n, o, oh, ow] = b[o] + sum_{c, i, j} x[n, g*Cg + c, oh*SH - PT + i*DH,
 *   ow*SW - PL + j*DW] * w[o, c, i, j], with g = o / Og the group of o, Cg =
 *   C/groups, Og = O/groups and pixels outside the image reading 0.
 * VJP: dx = the transposed correlation of dy with w (col2im of w_g^T dy_g),
 *   dw_g += dy_g col_g^T (the correlation of x with dy), db[o] += sum over n,
 *   oh, ow of dy. The op is bilinear in (x, w): no kinks.
 * Inputs: x, w and an optional bias (2 or 3 inputs, TG_VARIADIC); the
 * attributes are the caller's tg_conv2d_args, zero fields meaning defaults. */

/* The geometry of a node: checks every input and argument (setting the error
 * on failure) and resolves the defaults and 'same' into explicit padding. */
static int conv2d_geom(const tg_node *n, tg__conv2d_geom *g)
{
    if (n->n_inputs != 2 && n->n_inputs != 3)
        return tg_set_error(TG_ERR_ARG, "takes x, w and an optional bias (2 or 3 inputs), got %d",
                            n->n_inputs);
    const tg_tensor *x = n->inputs[0], *w = n->inputs[1];
    const tg_tensor *b = n->n_inputs == 3 ? n->inputs[2] : NULL;
    const tg_conv2d_args *a = n->attrs;
    if (tg_tensor_ndim(x) != 4 || tg_tensor_ndim(w) != 4)
        return tg_set_error(TG_ERR_SHAPE,
                            "x must be [N, C, H, W] and w [O, C/groups, KH, KW]: got x %s, w %s",
                            TG_SHP(x), TG_SHP(w));
    if (b && tg_tensor_ndim(b) != 1)
        return tg_set_error(TG_ERR_SHAPE, "bias must be [O] = [%lld]: got bias %s for w %s",
                            (long long)tg_tensor_shape(w)[0], TG_SHP(b), TG_SHP(w));
    const int64_t *xs = tg_tensor_shape(x), *ws = tg_tensor_shape(w);

    /* Arguments: negative values are errors, zero fields mean the defaults. */
    if (a->stride[0] < 0 || a->stride[1] < 0)
        return tg_set_error(TG_ERR_ARG,
                            "stride [%lld, %lld] must be positive (0 means 1); x %s, w %s",
                            (long long)a->stride[0], (long long)a->stride[1], TG_SHP(x),
                            TG_SHP(w));
    if (a->dilation[0] < 0 || a->dilation[1] < 0)
        return tg_set_error(TG_ERR_ARG,
                            "dilation [%lld, %lld] must be positive (0 means 1); x %s, w %s",
                            (long long)a->dilation[0], (long long)a->dilation[1], TG_SHP(x),
                            TG_SHP(w));
    if (a->padding[0] < 0 || a->padding[1] < 0)
        return tg_set_error(TG_ERR_ARG, "padding [%lld, %lld] must be non-negative; x %s, w %s",
                            (long long)a->padding[0], (long long)a->padding[1], TG_SHP(x),
                            TG_SHP(w));
    if (a->groups < 0)
        return tg_set_error(TG_ERR_ARG, "groups %lld must be positive (0 means 1); x %s, w %s",
                            (long long)a->groups, TG_SHP(x), TG_SHP(w));
    int64_t S[2], D[2], P[2];
    for (int d = 0; d < 2; d++) {
        S[d] = a->stride[d] ? a->stride[d] : 1;
        D[d] = a->dilation[d] ? a->dilation[d] : 1;
        P[d] = a->padding[d];
    }
    int64_t groups = a->groups ? a->groups : 1;
    if (a->same && (S[0] != 1 || S[1] != 1))
        return tg_set_error(TG_ERR_ARG,
                            "padding 'same' needs stride 1, got stride [%lld, %lld]; x %s, w %s",
                            (long long)S[0], (long long)S[1], TG_SHP(x), TG_SHP(w));
    if (a->same && (P[0] || P[1]))
        return tg_set_error(TG_ERR_ARG,
                            "padding 'same' and explicit padding [%lld, %lld] exclude each other; "
                            "x %s, w %s",
                            (long long)P[0], (long long)P[1], TG_SHP(x), TG_SHP(w));

    /* Shapes. */
    int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
    int64_t O = ws[0], Cg = ws[1], KH = ws[2], KW = ws[3];
    if (C < 1 || H < 1 || W < 1)
        return tg_set_error(TG_ERR_SHAPE, "x %s needs C, H and W >= 1 (w %s)", TG_SHP(x),
                            TG_SHP(w));
    if (O < 1 || Cg < 1 || KH < 1 || KW < 1)
        return tg_set_error(TG_ERR_SHAPE, "w %s needs every dim >= 1 (x %s)", TG_SHP(w),
                            TG_SHP(x));
    if (C % groups != 0)
        return tg_set_error(TG_ERR_SHAPE,
                            "groups %lld does not divide the C = %lld channels of x %s (w %s)",
                            (long long)groups, (long long)C, TG_SHP(x), TG_SHP(w));
    if (O % groups != 0)
        return tg_set_error(TG_ERR_SHAPE,
                            "groups %lld does not divide the O = %lld output channels of w %s "
                            "(x %s)",
                            (long long)groups, (long long)O, TG_SHP(w), TG_SHP(x));
    if (Cg * groups != C)
        return tg_set_error(TG_ERR_SHAPE,
                            "channels differ: x %s has C = %lld but w %s with groups %lld expects "
                            "C = %lld * %lld = %lld",
                            TG_SHP(x), (long long)C, TG_SHP(w), (long long)groups,
                            (long long)Cg, (long long)groups, (long long)(Cg * groups));
    if (b && tg_tensor_shape(b)[0] != O)
        return tg_set_error(TG_ERR_SHAPE, "bias %s must have O = %lld elements (w %s)", TG_SHP(b),
                            (long long)O, TG_SHP(w));

    /* Sizes: with every size and argument below 2^29, no product below
     * (span, padded size, OH*OW) can overflow. */
    const int64_t cap = (int64_t)1 << 29;
    const int64_t K[2] = {KH, KW}, IN[2] = {H, W};
    int64_t span[2], pad_lo[2], padded[2], OUT[2];
    for (int d = 0; d < 2; d++) {
        if (S[d] > cap || D[d] > cap || P[d] > cap || K[d] > cap || IN[d] > cap)
            return tg_set_error(TG_ERR_OVERFLOW,
                                "sizes too large: x %s, w %s, stride %lld, padding %lld, "
                                "dilation %lld in dim %d",
                                TG_SHP(x), TG_SHP(w), (long long)S[d], (long long)P[d],
                                (long long)D[d], d + 2);
        span[d] = D[d] * (K[d] - 1) + 1; /* the dilated kernel's extent */
        /* 'same' (PyTorch): total D*(K-1), the odd one at the bottom/right. */
        pad_lo[d] = a->same ? (span[d] - 1) / 2 : P[d];
        padded[d] = IN[d] + (a->same ? span[d] - 1 : 2 * P[d]);
    }
    if (padded[0] < span[0] || padded[1] < span[1])
        return tg_set_error(TG_ERR_SHAPE,
                            "kernel larger than the padded input: x %s padded to %lld x %lld, "
                            "w %s with dilation [%lld, %lld] spans %lld x %lld",
                            TG_SHP(x), (long long)padded[0], (long long)padded[1], TG_SHP(w),
                            (long long)D[0], (long long)D[1], (long long)span[0],
                            (long long)span[1]);
    for (int d = 0; d < 2; d++)
        OUT[d] = (padded[d] - span[d]) / S[d] + 1;
    /* The output tensor's size is checked by tg_apply; the scratch of one
     * image and group (Cg*KH*KW x OH*OW) is checked here. */
    int64_t kc = Cg * KH * KW, p = OUT[0] * OUT[1];
    if (kc > INT64_MAX / 8 / p)
        return tg_set_error(TG_ERR_OVERFLOW,
                            "im2col scratch of %lld x %lld elements is too large: x %s, w %s",
                            (long long)kc, (long long)p, TG_SHP(x), TG_SHP(w));

    *g = (tg__conv2d_geom){.N = N, .C = C, .H = H, .W = W, .O = O, .KH = KH, .KW = KW,
                           .OH = OUT[0], .OW = OUT[1], .SH = S[0], .SW = S[1],
                           .PT = pad_lo[0], .PL = pad_lo[1], .DH = D[0], .DW = D[1],
                           .groups = groups};
    return TG_OK;
}

static int conv2d_shape(const tg_node *n, tg_shape *out)
{
    tg__conv2d_geom g;
    int rc = conv2d_geom(n, &g);
    if (rc != TG_OK)
        return rc;
    out->ndim = 4;
    out->dims[0] = g.N;
    out->dims[1] = g.O;
    out->dims[2] = g.OH;
    out->dims[3] = g.OW;
    return TG_OK;
}

/* Arena scratch of `elems` elements of `size` bytes (NULL when elems is 0).
 * Returns TG_OK or the allocation's error. */
static int scratch(tg_node *n, int64_t elems, size_t size, void **out)
{
    *out = NULL;
    if (elems == 0)
        return TG_OK;
    *out = tg_graph_alloc(n->graph, (size_t)elems * size);
    return *out ? TG_OK : tg_last_status();
}

/* The float32 scratch a pass needs, from the arena (see tg__conv2d_scratch). */
static int scratch_f32(tg_node *n, const tg__conv2d_plan *p, bool vjp, bool dx, bool dw, bool db,
                       tg__conv2d_scratch *s)
{
    /* Winograd: the forward and dx need u and wv, dw wv and dwp (and dbp
     * for db, summed in the same pass). im2col: col and yt for a forward, a
     * dx or a dw, dwp for dw, dbp for db. */
    const bool gemm = !p->wino && (!vjp || dx || dw);
    const int64_t elems[6] = {gemm ? p->col_elems : 0,
                              gemm ? p->yt_elems : 0,
                              vjp && dw ? p->dwp_elems : 0,
                              vjp && db && (p->wino ? dw : dx || dw) ? p->dbp_elems : 0,
                              p->wino && (!vjp || dx) ? p->u_elems : 0,
                              p->wino && (!vjp || dx || dw) ? p->wv_elems : 0};
    void *v[6];
    for (int i = 0; i < 6; i++) {
        int rc = scratch(n, elems[i], i == 3 ? sizeof(double) : sizeof(float), &v[i]);
        if (rc != TG_OK)
            return rc;
    }
    *s = (tg__conv2d_scratch){.col = v[0], .yt = v[1], .dwp = v[2], .dbp = v[3], .u = v[4],
                              .wv = v[5]};
    return TG_OK;
}

static int conv2d_forward(tg_node *n)
{
    tg__conv2d_geom g;
    int rc = conv2d_geom(n, &g);
    if (rc != TG_OK)
        return rc;
    const tg_tensor *b = n->n_inputs == 3 ? n->inputs[2] : NULL;
    void *x = tg_tensor_data(n->inputs[0]), *w = tg_tensor_data(n->inputs[1]);
    void *bias = b ? tg_tensor_data(b) : NULL, *y = tg_tensor_data(n->out);
    if (tg_tensor_dtype(n->out) == TG_F64) {
        void *col;
        if ((rc = scratch(n, tg__conv2d_col_elems(&g), sizeof(double), &col)) != TG_OK)
            return rc;
        tg__conv2d_forward_f64(&g, x, w, bias, y, col);
        return TG_OK;
    }
    tg__conv2d_plan p;
    tg__conv2d_scratch s;
    tg__conv2d_plan_f32(&g, &p);
    if ((rc = scratch_f32(n, &p, false, false, false, false, &s)) != TG_OK)
        return rc;
    tg__conv2d_forward_f32(&g, &p, x, w, bias, y, &s);
    return TG_OK;
}

static void *grad_data(tg_node *n, int i)
{
    tg_tensor *t = i < n->n_inputs ? tg_node_grad(n, i) : NULL;
    return t ? tg_tensor_data(t) : NULL;
}

static int conv2d_backward(tg_node *n, const tg_tensor *dout)
{
    tg__conv2d_geom g;
    int rc = conv2d_geom(n, &g);
    if (rc != TG_OK)
        return rc;
    /* dx may be a first contribution: the float32 kernel then writes it
     * without a zero-fill first (Winograd) or zeroes it itself. */
    bool dx_fresh = false;
    tg_tensor *dxt = tg_node_grad_fresh(n, 0, &dx_fresh);
    void *dx = dxt ? tg_tensor_data(dxt) : NULL, *dw = grad_data(n, 1), *db = grad_data(n, 2);
    void *x = tg_tensor_data(n->inputs[0]), *w = tg_tensor_data(n->inputs[1]);
    void *dy = tg_tensor_data(dout);
    if (tg_tensor_dtype(dout) == TG_F64) {
        if (dx_fresh)
            memset(dx, 0, (size_t)tg_tensor_numel(dxt) * sizeof(double));
        void *col = NULL;
        if ((dx || dw) &&
            (rc = scratch(n, tg__conv2d_col_elems(&g), sizeof(double), &col)) != TG_OK)
            return rc;
        tg__conv2d_backward_f64(&g, x, w, dy, dx, dw, db, col);
        return TG_OK;
    }
    tg__conv2d_plan p;
    tg__conv2d_scratch s;
    tg__conv2d_plan_f32(&g, &p);
    if ((rc = scratch_f32(n, &p, true, dx, dw, db, &s)) != TG_OK) {
        if (dx_fresh) /* an unwritten fresh gradient must still read as zero */
            memset(dx, 0, (size_t)tg_tensor_numel(dxt) * sizeof(float));
        return rc;
    }
    tg__conv2d_backward_f32(&g, &p, x, w, dy, dx, !dx_fresh, dw, db, &s);
    return TG_OK;
}

/* "stride=[2, 2] padding=[1, 1] dilation=[1, 1] groups=1", with the defaults
 * resolved; 'same' prints as padding=same. */
static void conv2d_print_attrs(const tg_node *n, char *buf, size_t size)
{
    const tg_conv2d_args *a = n->attrs;
    char pad[64];
    if (a->same)
        snprintf(pad, sizeof pad, "same");
    else
        snprintf(pad, sizeof pad, "[%lld, %lld]", (long long)a->padding[0],
                 (long long)a->padding[1]);
#define DEF1(v) (long long)((v) ? (v) : 1)
    snprintf(buf, size, "stride=[%lld, %lld] padding=%s dilation=[%lld, %lld] groups=%lld",
             DEF1(a->stride[0]), DEF1(a->stride[1]), pad, DEF1(a->dilation[0]),
             DEF1(a->dilation[1]), DEF1(a->groups));
#undef DEF1
}

const tg_op tg_op_conv2d = {.name = "conv2d",
                            .n_inputs = TG_VARIADIC,
                            .attr_size = sizeof(tg_conv2d_args),
                            .shape = conv2d_shape,
                            .forward = conv2d_forward,
                            .backward = conv2d_backward,
                            .print_attrs = conv2d_print_attrs};

tg_tensor *tg_conv2d(tg_graph *g, tg_tensor *x, tg_tensor *w, tg_tensor *bias, tg_conv2d_args args)
{
    tg_tensor *in[3] = {x, w, bias};
    return tg_apply(g, &tg_op_conv2d, in, bias ? 3 : 2, &args);
}
