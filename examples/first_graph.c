/* first_graph: the README's example, kept compiling and running by the suite. */
#include "tgrad.h"
#include <stdio.h>

static tg_tensor *f(tg_graph *g, tg_tensor **in, int n, void *ctx)
{   /* loss = mean(tanh(x @ w) * x @ w) */
    (void)n; (void)ctx;
    tg_tensor *h = tg_matmul(g, in[0], in[1]);
    return tg_mean(g, tg_mul(g, tg_tanh(g, h), h));
}

int main(void)
{
    int64_t xs[] = {2, 3}, ws[] = {3, 2};
    double xv[] = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6}, wv[] = {1, 2, -1, 0.5, 0.3, -2};
    tg_tensor *in[2] = {tg_tensor_from(TG_F64, 2, xs, xv), tg_tensor_from(TG_F64, 2, ws, wv)};
    tg_tensor_set_requires_grad(in[1], true);
    tg_graph *g = tg_graph_new();
    tg_tensor *loss = f(g, in, 2, NULL);
    if (!loss || tg_backward(g, loss)) { fprintf(stderr, "%s\n", tg_last_error()); return 1; }
    printf("loss %.6f  dloss/dw[0] %.6f\n", tg_tensor_get(loss, 0),
           tg_tensor_get(tg_tensor_grad(in[1]), 0));
    tg_gradcheck_report r;
    tg_gradcheck(f, NULL, in, 2, NULL, &r);
    printf("gradcheck %s\n", r.message);
    tg_graph_free(g); tg_tensor_free(in[0]); tg_tensor_free(in[1]);
    return !r.passed;
}
