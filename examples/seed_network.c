/* seed_network: the network of the seed essays ("Exploring Architectures -
 * CNN", parts I and II), built op by op and trained on generated images.
 *
 *   I [20 x 20] grey image  (*) K [3 x 3]    -> C [20 x 20]   ('same' padding, as the essay's C)
 *   flatten                                  -> C_F [1 x 400]
 *   O1 = C_F W1 + B1                         W1 [400 x m], B1 [1 x m]
 *   H1 = (O1 + |O1|) / 2                     ReLU written as the essay writes it
 *   O2 = H1 W2 + B2                          W2 [m x 3], B2 [1 x 3]
 *   P  = softmax(O2)
 *   Loss = -sum T log P                      (mean over the batch)
 *
 * The three classes are images of vertical, horizontal and diagonal line
 * patterns with noise. dLoss/dK, dW1, dB1, dW2 and dB2 are gradchecked in
 * float64 and printed, then the network is trained with plain gradient descent.
 *
 *   make examples && ./build/examples/seed_network */
#include "tgrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SIDE 20
#define HIDDEN 16
#define CLASSES 3

enum { P_K, P_W1, P_B1, P_W2, P_B2, N_PARAMS };
static const char *const names[N_PARAMS] = {"K", "W1", "B1", "W2", "B2"};

/* One image of class c: lines of one orientation at random offsets, noise. */
static void make_image(double *img, int c, tg_rng *r)
{
    for (int i = 0; i < SIDE * SIDE; i++)
        img[i] = 0.1 * tg_rng_uniform(r);
    int n_lines = 2 + (int)tg_rng_below(r, 3);
    for (int l = 0; l < n_lines; l++) {
        int off = (int)tg_rng_below(r, SIDE);
        for (int t = 0; t < SIDE; t++) {
            int y = c == 0 ? t : c == 1 ? off : t;
            int x = c == 0 ? off : c == 1 ? t : (t + off) % SIDE;
            img[y * SIDE + x] = 0.8 + 0.2 * tg_rng_uniform(r);
        }
    }
}

/* A batch: images [n, 1, 20, 20] and one-hot targets T [n, 3]. */
static void make_batch(tg_tensor *x, tg_tensor *t, int64_t *labels, tg_rng *r)
{
    int64_t n = tg_tensor_shape(x)[0];
    double img[SIDE * SIDE];
    tg_tensor_fill(t, 0.0);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)tg_rng_below(r, CLASSES);
        make_image(img, c, r);
        for (int k = 0; k < SIDE * SIDE; k++)
            tg_tensor_set(x, i * SIDE * SIDE + k, img[k]);
        tg_tensor_set(t, i * CLASSES + c, 1.0);
        labels[i] = c;
    }
}

/* The whole network and loss, op by op. in = {I, T, K, W1, B1, W2, B2}. */
static tg_tensor *network(tg_graph *g, tg_tensor **in, int n, void *probs_out)
{
    (void)n;
    tg_tensor *I = in[0], *T = in[1], *K = in[2], *W1 = in[3], *B1 = in[4], *W2 = in[5],
              *B2 = in[6];
    tg_tensor *C = tg_conv2d(g, I, K, NULL, (tg_conv2d_args){.same = true});
    tg_tensor *CF = tg_flatten(g, C, 1);
    tg_tensor *O1 = tg_add(g, tg_matmul(g, CF, W1), B1);
    int64_t one = 1;
    tg_tensor *half = tg_graph_tensor(g, tg_tensor_dtype(O1), 0, &one);
    if (half)
        tg_tensor_set(half, 0, 0.5);
    tg_tensor *H1 = tg_mul(g, tg_add(g, O1, tg_abs(g, O1)), half);
    tg_tensor *O2 = tg_add(g, tg_matmul(g, H1, W2), B2);
    tg_tensor *P = tg_softmax(g, O2, 1);
    if (probs_out)
        *(tg_tensor **)probs_out = P;
    /* Loss = -sum T log P, averaged over the batch. */
    return tg_neg(g, tg_mean_axis(g, tg_sum_axis(g, tg_mul(g, T, tg_log(g, P)), 1, false), 0,
                                  false));
}

static double accuracy(const tg_tensor *P, const int64_t *labels)
{
    int64_t n = tg_tensor_shape(P)[0], ok = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (tg_tensor_get(P, i * CLASSES + c) > tg_tensor_get(P, i * CLASSES + best))
                best = c;
        ok += best == labels[i];
    }
    return (double)ok / (double)n;
}

int main(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2024, 0);
    const int64_t sk[] = {1, 1, 3, 3}, sw1[] = {SIDE * SIDE, HIDDEN}, sb1[] = {HIDDEN},
                  sw2[] = {HIDDEN, CLASSES}, sb2[] = {CLASSES};
    const int64_t *shapes[N_PARAMS] = {sk, sw1, sb1, sw2, sb2};
    const int ndims[N_PARAMS] = {4, 2, 1, 2, 1};
    const double scale[N_PARAMS] = {0.3, 0.05, 0.0, 0.3, 0.0};
    tg_tensor *params[N_PARAMS];
    for (int p = 0; p < N_PARAMS; p++) {
        params[p] = tg_tensor_new(TG_F64, ndims[p], shapes[p]);
        for (int64_t i = 0; i < tg_tensor_numel(params[p]); i++)
            tg_tensor_set(params[p], i, scale[p] * tg_rng_normal(&rng));
        tg_tensor_set_requires_grad(params[p], true);
    }

    /* Gradcheck of every parameter on a small batch (float64). */
    int64_t sx[] = {4, 1, SIDE, SIDE}, st[] = {4, CLASSES}, labels[64];
    tg_tensor *x = tg_tensor_new(TG_F64, 4, sx), *t = tg_tensor_new(TG_F64, 2, st);
    make_batch(x, t, labels, &rng);
    tg_tensor *in[7] = {x, t, params[0], params[1], params[2], params[3], params[4]};
    tg_graph *g = tg_graph_new();
    tg_tensor *loss = network(g, in, 7, NULL);
    if (!loss || tg_backward(g, loss) != TG_OK) {
        fprintf(stderr, "seed_network: %s\n", tg_last_error());
        return 1;
    }
    printf("loss on a batch of 4: %.6f\n", tg_tensor_get(loss, 0));
    for (int p = 0; p < N_PARAMS; p++) {
        tg_tensor *gr = tg_tensor_grad(params[p]);
        double norm = 0;
        for (int64_t i = 0; i < tg_tensor_numel(gr); i++)
            norm += tg_tensor_get(gr, i) * tg_tensor_get(gr, i);
        printf("dLoss/d%-2s |grad| %.6e  first entries % .6e % .6e % .6e\n", names[p], sqrt(norm),
               tg_tensor_get(gr, 0), tg_tensor_get(gr, 1), tg_tensor_get(gr, 2));
    }
    tg_gradcheck_report rep;
    int rc = tg_gradcheck(network, NULL, in, 7, NULL, &rep);
    printf("gradcheck of dLoss/dK, dW1, dB1, dW2, dB2: %s\n", rep.message);
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_tensor_free(t);

    /* Training: plain gradient descent, a fresh generated batch each step. */
    int64_t bx[] = {64, 1, SIDE, SIDE}, bt[] = {64, CLASSES};
    x = tg_tensor_new(TG_F64, 4, bx);
    t = tg_tensor_new(TG_F64, 2, bt);
    in[0] = x;
    in[1] = t;
    g = tg_graph_new();
    const double lr = 0.2;
    for (int step = 0; step <= 300 && rc == TG_OK; step++) {
        tg_graph_reset(g);
        make_batch(x, t, labels, &rng);
        for (int p = 0; p < N_PARAMS; p++)
            tg_tensor_zero_grad(params[p]);
        tg_tensor *P = NULL;
        loss = network(g, in, 7, &P);
        if (!loss || tg_backward(g, loss) != TG_OK) {
            fprintf(stderr, "seed_network: %s\n", tg_last_error());
            rc = 1;
            break;
        }
        if (step % 50 == 0)
            printf("step %3d loss %.4f batch accuracy %.1f%%\n", step, tg_tensor_get(loss, 0),
                   100 * accuracy(P, labels));
        for (int p = 0; p < N_PARAMS; p++) {
            tg_tensor *gr = tg_tensor_grad(params[p]);
            for (int64_t i = 0; i < tg_tensor_numel(gr); i++)
                tg_tensor_set(params[p], i,
                              tg_tensor_get(params[p], i) - lr * tg_tensor_get(gr, i));
        }
    }
    /* Held-out batch. */
    tg_graph_reset(g);
    tg_graph_set_no_grad(g, true);
    make_batch(x, t, labels, &rng);
    tg_tensor *P = NULL;
    loss = network(g, in, 7, &P);
    double acc = loss ? accuracy(P, labels) : 0;
    printf("held-out batch of 64: loss %.4f accuracy %.1f%%\n", loss ? tg_tensor_get(loss, 0) : (double)NAN,
           100 * acc);
    printf("learned kernel K: ");
    for (int i = 0; i < 9; i++)
        printf("% .3f ", tg_tensor_get(params[0], i));
    printf("\n");
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_tensor_free(t);
    for (int p = 0; p < N_PARAMS; p++)
        tg_tensor_free(params[p]);
    return rc == TG_OK && acc > 0.9 ? 0 : 1;
}
