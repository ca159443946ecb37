/* The nn layer: modules and their state-dict names, initialisation,
 * optimizers against PyTorch's update rules, schedules and clipping,
 * checkpoints (round trip, rejection leaving the module unchanged), the data
 * loader, and bitwise-identical training for the same seed. */
#include "helpers.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tg_nn_module *small_cnn(uint64_t seed, tg_dtype dt)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 0);
    tg_nn_module *mods[] = {
        tg_nn_conv2d_new(1, 4, 3, 3, (tg_conv2d_args){.padding = {1, 1}}, true, dt, &r),
        tg_nn_relu_new(),
        tg_nn_maxpool2d_new((tg_pool2d_args){.kernel = {2, 2}}),
        tg_nn_flatten_new(1),
        tg_nn_linear_new(4 * 4 * 4, 5, true, dt, &r),
    };
    return tg_nn_sequential_new(5, mods);
}

Test(nn_module, sequential_names_follow_pytorch_state_dict)
{
    tg_nn_module *m = small_cnn(1, TG_F32);
    cr_assert(m, "%s", tg_last_error());
    cr_assert_eq(tg_nn_n_entries(m), 4);
    cr_expect_str_eq(tg_nn_entry_at(m, 0)->name, "0.weight");
    cr_expect_str_eq(tg_nn_entry_at(m, 1)->name, "0.bias");
    cr_expect_str_eq(tg_nn_entry_at(m, 2)->name, "4.weight");
    cr_expect_str_eq(tg_nn_entry_at(m, 3)->name, "4.bias");
    const tg_nn_entry *w = tg_nn_find(m, "4.weight");
    cr_assert(w);
    cr_expect_eq(tg_tensor_shape(w->tensor)[0], 5);
    cr_expect_eq(tg_tensor_shape(w->tensor)[1], 64);
    cr_expect_eq(tg_nn_param_count(m), 4 * 9 + 4 + 64 * 5 + 5);
    cr_expect_null(tg_nn_find(m, "4.running_mean"));
    cr_expect_str_eq(tg_nn_kind(m), "Sequential");
    tg_nn_module_free(m);
}

Test(nn_module, batchnorm_has_buffers_and_counter)
{
    tg_rng r;
    tg_rng_seed(&r, 3, 0);
    tg_nn_module *mods[] = {tg_nn_conv2d_new(2, 3, 1, 1, (tg_conv2d_args){.groups = 1}, false, TG_F64, &r),
                            tg_nn_batchnorm2d_new(3, TG_F64)};
    tg_nn_module *m = tg_nn_sequential_new(2, mods);
    cr_assert(m, "%s", tg_last_error());
    const char *want[] = {"0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                          "1.num_batches_tracked"};
    cr_assert_eq(tg_nn_n_entries(m), 6);
    for (int i = 0; i < 6; i++)
        cr_expect_str_eq(tg_nn_entry_at(m, i)->name, want[i]);
    cr_expect_eq(tg_nn_entry_at(m, 3)->kind, TG_NN_BUFFER);
    cr_expect_eq(tg_nn_entry_at(m, 5)->kind, TG_NN_COUNTER);
    cr_expect(tg_tensor_get(tg_nn_find(m, "1.running_var")->tensor, 2) == 1.0);
    cr_expect_eq(tg_nn_param_count(m), 6 + 3 + 3);

    int64_t xs[] = {2, 2, 3, 3};
    tg_tensor *x = tgt_random(TG_F64, 4, xs, -1, 1, 4);
    tg_graph *g = tg_graph_new();
    cr_assert(tg_nn_forward(m, g, x), "%s", tg_last_error());
    cr_expect_eq(*tg_nn_find(m, "1.num_batches_tracked")->counter, 1);
    cr_expect(tg_tensor_get(tg_nn_find(m, "1.running_mean")->tensor, 0) != 0.0);
    tg_nn_train(m, false);
    cr_expect(!tg_nn_training(m));
    cr_assert(tg_nn_forward(m, g, x));
    cr_expect_eq(*tg_nn_find(m, "1.num_batches_tracked")->counter, 1, "eval does not count");
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_nn_module_free(m);
}

Test(nn_module, forward_shapes_and_summary)
{
    tg_nn_module *m = small_cnn(2, TG_F32);
    int64_t xs[] = {3, 1, 8, 8};
    tg_tensor *x = tgt_random(TG_F32, 4, xs, -1, 1, 9);
    tg_graph *g = tg_graph_new();
    tg_tensor *y = tg_nn_forward(m, g, x);
    cr_assert(y, "%s", tg_last_error());
    cr_expect_eq(tg_tensor_ndim(y), 2);
    cr_expect_eq(tg_tensor_shape(y)[0], 3);
    cr_expect_eq(tg_tensor_shape(y)[1], 5);
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    cr_assert_eq(tg_nn_summary(m, f, TG_F32, 4, xs), TG_OK, "%s", tg_last_error());
    fclose(f);
    cr_expect(strstr(buf, "Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"), "%s",
              buf);
    cr_expect(strstr(buf, "[3, 4, 4, 4]"), "%s", buf);
    cr_expect(strstr(buf, "Linear(in_features=64, out_features=5, bias=True)"), "%s", buf);
    cr_expect(strstr(buf, "total trainable parameters: 365"), "%s", buf);
    /* A wrong input shape is an error naming the op, not a crash. */
    int64_t bad[] = {3, 2, 8, 8};
    tg_tensor *xb = tg_tensor_new(TG_F32, 4, bad);
    expect_error(tg_nn_forward(m, g, xb) == NULL, "tg_conv2d", "[3, 2, 8, 8]");
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_tensor_free(xb);
    tg_nn_module_free(m);
}

/* Sequential runs ReLU then MaxPool2d as MaxPool2d then ReLU (a quarter of
 * the relu work); outputs and input gradients must equal the ops in written
 * order exactly, with ties, all-negative windows, zeros and a NaN. */
Test(nn_module, relu_then_maxpool_equals_the_ops_in_written_order)
{
    const tg_pool2d_args p1 = {.kernel = {2, 2}, .ceil_mode = true};
    const tg_pool2d_args p2 = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    tg_nn_module *mods[] = {tg_nn_relu_new(), tg_nn_maxpool2d_new(p1), tg_nn_relu_new(),
                            tg_nn_maxpool2d_new(p2)};
    tg_nn_module *m = tg_nn_sequential_new(4, mods);
    cr_assert(m, "%s", tg_last_error());
    int64_t xs[] = {2, 3, 7, 7};
    tg_tensor *x = tg_tensor_new(TG_F64, 4, xs);
    for (int64_t i = 0; i < tg_tensor_numel(x); i++) /* small integers: many ties */
        tg_tensor_set(x, i, (double)((i * 7919) % 5) - 2.0);
    tg_tensor_set(x, 40, (double)NAN);
    tg_tensor_set_requires_grad(x, true);
    tg_graph *g1 = tg_graph_new(), *g2 = tg_graph_new();
    tg_tensor *y1 = tg_nn_forward(m, g1, x);
    tg_tensor *y2 = tg_maxpool2d(g2, tg_relu(g2, tg_maxpool2d(g2, tg_relu(g2, x), p1)), p2);
    cr_assert(y1 && y2, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_numel(y1), tg_tensor_numel(y2));
    tg_tensor *cot = tgt_random(TG_F64, tg_tensor_ndim(y1), tg_tensor_shape(y1), -1, 1, 5);
    for (int64_t i = 0; i < tg_tensor_numel(y1); i++) {
        const double a = tg_tensor_get(y1, i), b = tg_tensor_get(y2, i);
        cr_expect(a == b || (isnan(a) && isnan(b)), "y[%lld]: %g vs %g", (long long)i, a, b);
    }
    double d1[2 * 3 * 7 * 7];
    cr_assert_eq(tg_backward_with(g1, y1, cot), TG_OK, "%s", tg_last_error());
    for (int64_t i = 0; i < tg_tensor_numel(x); i++)
        d1[i] = tg_tensor_get(tg_tensor_grad(x), i);
    tg_tensor_zero_grad(x);
    cr_assert_eq(tg_backward_with(g2, y2, cot), TG_OK, "%s", tg_last_error());
    int64_t nonzero = 0;
    for (int64_t i = 0; i < tg_tensor_numel(x); i++) {
        const double d2 = tg_tensor_get(tg_tensor_grad(x), i);
        cr_expect(d1[i] == d2, "dx[%lld]: %g vs %g", (long long)i, d1[i], d2);
        nonzero += d2 != 0;
    }
    cr_expect(nonzero > 10, "the gradient reaches the inputs (%lld nonzero)", (long long)nonzero);
    tg_graph_free(g1);
    tg_graph_free(g2);
    tg_tensor_free(cot);
    tg_tensor_free(x);
    tg_nn_module_free(m);
}

/* A dilated pool can have windows lying all in the padding (-inf): there the
 * Sequential keeps ReLU before the pool, and -inf stays -inf. */
Test(nn_module, relu_then_dilated_maxpool_keeps_the_written_order)
{
    const tg_pool2d_args pa = {.kernel = {2, 2}, .stride = {1, 1}, .padding = {2, 2},
                               .dilation = {3, 3}};
    tg_nn_module *mods[] = {tg_nn_relu_new(), tg_nn_maxpool2d_new(pa)};
    tg_nn_module *m = tg_nn_sequential_new(2, mods);
    cr_assert(m, "%s", tg_last_error());
    int64_t xs[] = {1, 1, 2, 2};
    tg_tensor *x = tgt_tensor(TG_F64, 4, xs, (double[]){2, -1, 1, -3});
    tg_graph *g = tg_graph_new();
    tg_tensor *y1 = tg_nn_forward(m, g, x), *y2 = tg_maxpool2d(g, tg_relu(g, x), pa);
    cr_assert(y1 && y2, "%s", tg_last_error());
    cr_assert_eq(tg_tensor_numel(y1), 9);
    int64_t n_inf = 0;
    for (int64_t i = 0; i < 9; i++) {
        cr_expect(tg_tensor_get(y1, i) == tg_tensor_get(y2, i), "y[%lld]: %g vs %g",
                  (long long)i, tg_tensor_get(y1, i), tg_tensor_get(y2, i));
        n_inf += isinf(tg_tensor_get(y1, i)) != 0;
    }
    cr_expect(n_inf > 0, "some window lies all in the padding");
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_nn_module_free(m);
}

Test(nn_module, constructor_errors)
{
    tg_rng r;
    tg_rng_seed(&r, 1, 0);
    expect_error(tg_nn_linear_new(0, 3, true, TG_F32, &r) == NULL, "tg_nn_linear_new", "in_features");
    expect_error(tg_nn_linear_new(2, 3, true, TG_F32, NULL) == NULL, "tg_nn_linear_new", "rng");
    expect_error(tg_nn_conv2d_new(3, 4, 3, 3, (tg_conv2d_args){.groups = 2}, true, TG_F32, &r) == NULL,
                 "tg_nn_conv2d_new", "groups 2", "in_channels 3");
    expect_error(tg_nn_dropout_new(1.5, 0) == NULL, "tg_nn_dropout_new", "1.5");
    expect_error(tg_nn_maxpool2d_new((tg_pool2d_args){0}) == NULL, "tg_nn_maxpool2d_new", "kernel");
    tg_error_clear();
    tg_nn_module *mods[] = {tg_nn_relu_new(), NULL};
    expect_error(tg_nn_sequential_new(2, mods) == NULL, "tg_nn_sequential_new");
    tg_nn_module_free(NULL);
}

Test(nn_init, pytorch_default_bounds)
{
    tg_rng r;
    tg_rng_seed(&r, 5, 0);
    tg_nn_module *lin = tg_nn_linear_new(100, 50, true, TG_F64, &r);
    double bound = 1.0 / sqrt(100.0), wmax = 0, bmax = 0, sum = 0;
    const tg_tensor *w = tg_nn_find(lin, "weight")->tensor, *b = tg_nn_find(lin, "bias")->tensor;
    for (int64_t i = 0; i < 5000; i++) {
        wmax = fmax(wmax, fabs(tg_tensor_get(w, i)));
        sum += tg_tensor_get(w, i);
    }
    for (int64_t i = 0; i < 50; i++)
        bmax = fmax(bmax, fabs(tg_tensor_get(b, i)));
    cr_expect(wmax <= bound && wmax > 0.95 * bound, "max |w| %g, bound %g", wmax, bound);
    cr_expect(bmax <= bound, "max |b| %g", bmax);
    cr_expect(fabs(sum / 5000) < 0.01);
    tg_nn_module_free(lin);

    int64_t s[] = {200, 100};
    tg_tensor *t = tg_tensor_new(TG_F64, 2, s);
    double sq = 0;
    tg_nn_init_kaiming_normal(t, 0.0, 100, &r);
    for (int64_t i = 0; i < 20000; i++)
        sq += tg_tensor_get(t, i) * tg_tensor_get(t, i);
    cr_expect(fabs(sqrt(sq / 20000) - sqrt(2.0 / 100)) < 0.005, "kaiming normal std %g",
              sqrt(sq / 20000));
    tg_nn_init_xavier_uniform(t, 100, 200, 1.0, &r);
    double xmax = 0;
    for (int64_t i = 0; i < 20000; i++)
        xmax = fmax(xmax, fabs(tg_tensor_get(t, i)));
    cr_expect(xmax <= sqrt(6.0 / 300) && xmax > 0.95 * sqrt(6.0 / 300));
    sq = 0;
    tg_nn_init_xavier_normal(t, 100, 200, 1.0, &r);
    for (int64_t i = 0; i < 20000; i++)
        sq += tg_tensor_get(t, i) * tg_tensor_get(t, i);
    cr_expect(fabs(sqrt(sq / 20000) - sqrt(2.0 / 300)) < 0.004);
    tg_tensor_free(t);
}

/* ---- Optimizers: loss = sum(a w^2 + b w), 5 steps, against PyTorch ---- */

typedef tg_nn_optim *(*make_opt)(tg_nn_module *m);
static tg_nn_optim *o_sgd(tg_nn_module *m) { return tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = 0.1}); }
static tg_nn_optim *o_sgd_mom(tg_nn_module *m)
{
    return tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = 0.1, .momentum = 0.9, .dampening = 0.1,
                                             .weight_decay = 0.01});
}
static tg_nn_optim *o_nesterov(tg_nn_module *m)
{
    return tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = 0.05, .momentum = 0.8, .nesterov = true,
                                             .weight_decay = 0.02});
}
static tg_nn_optim *o_adam(tg_nn_module *m) { return tg_nn_adam_new(m, (tg_nn_adam_args){0}); }
static tg_nn_optim *o_adam_wd(tg_nn_module *m)
{
    return tg_nn_adam_new(m, (tg_nn_adam_args){.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99,
                                               .eps = 1e-6, .weight_decay = 0.01});
}
static tg_nn_optim *o_amsgrad(tg_nn_module *m)
{
    return tg_nn_adam_new(m, (tg_nn_adam_args){.lr = 0.05, .amsgrad = true});
}
static tg_nn_optim *o_adamw(tg_nn_module *m)
{
    return tg_nn_adamw_new(m, (tg_nn_adam_args){.lr = 0.05, .weight_decay = 0.1});
}

static tg_nn_module *quadratic_model(void)
{
    tg_rng r;
    tg_rng_seed(&r, 0, 0);
    tg_nn_module *m = tg_nn_linear_new(3, 1, false, TG_F64, &r);
    const double w0[] = {0.5, -1.0, 2.0};
    for (int i = 0; i < 3; i++)
        tg_tensor_set(tg_nn_find(m, "weight")->tensor, i, w0[i]);
    return m;
}

static void quadratic_steps(tg_nn_module *m, tg_nn_optim *o, int steps)
{
    int64_t s[] = {1, 3};
    double av[] = {0.7, 1.3, -0.4}, bv[] = {0.2, -0.5, 0.9};
    tg_tensor *a = tgt_tensor(TG_F64, 2, s, av), *b = tgt_tensor(TG_F64, 2, s, bv);
    tg_tensor *w = tg_nn_find(m, "weight")->tensor;
    tg_graph *g = tg_graph_new();
    for (int k = 0; k < steps; k++) {
        tg_graph_reset(g);
        tg_nn_optim_zero_grad(o);
        tg_tensor *loss = tg_sum(g, tg_add(g, tg_mul(g, a, tg_mul(g, w, w)), tg_mul(g, b, w)));
        cr_assert_eq(tg_backward(g, loss), TG_OK, "%s", tg_last_error());
        cr_assert_eq(tg_nn_optim_step(o), TG_OK);
    }
    tg_graph_free(g);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(nn_optim, updates_match_pytorch)
{
    /* Final weights from torch 1.13 (float64), the same problem and 5 steps. */
    const struct {
        const char *name;
        make_opt make;
        double want[3];
    } cases[] = {
        {"sgd", o_sgd, {0.15956022559999994, -0.072266174399999952, 2.4106620672000001}},
        {"sgd momentum dampening wd", o_sgd_mom,
         {-0.30231505115118212, 1.0378365840055497, 2.9842867855063924}},
        {"sgd nesterov", o_nesterov, {0.010332626590816952, 0.3148274137788174, 2.5456150403962718}},
        {"adam default", o_adam, {0.4950006807218198, -0.99500036534132574, 2.0050004914885853}},
        {"adam wd betas eps", o_adam_wd,
         {0.25464687668765273, -0.75216398694447129, 2.2520283873098084}},
        {"adam amsgrad", o_amsgrad, {0.25271666671309406, -0.75118004857142107, 2.2508482624400052}},
        {"adamw", o_adamw, {0.24299724217802118, -0.72905377123068937, 2.1987380173864439}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tg_nn_module *m = quadratic_model();
        tg_nn_optim *o = cases[c].make(m);
        cr_assert(o, "%s: %s", cases[c].name, tg_last_error());
        quadratic_steps(m, o, 5);
        char msg[512];
        cr_expect(tgt_allclose(tg_nn_find(m, "weight")->tensor, cases[c].want, 3, 1e-14, 1e-12,
                               cases[c].name, msg, sizeof msg),
                  "%s", msg);
        cr_expect_eq(tg_nn_optim_steps(o), 5);
        tg_nn_optim_free(o);
        tg_nn_module_free(m);
    }
}

Test(nn_optim, bad_hyperparameters_are_errors)
{
    tg_nn_module *m = quadratic_model();
    expect_error(tg_nn_sgd_new(m, (tg_nn_sgd_args){0}) == NULL, "tg_nn_sgd_new", "lr");
    expect_error(tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = 0.1, .nesterov = true}) == NULL,
                 "tg_nn_sgd_new", "nesterov");
    expect_error(tg_nn_adam_new(m, (tg_nn_adam_args){.beta1 = 1.5}) == NULL, "tg_nn_adam_new",
                 "betas");
    expect_error(tg_nn_sgd_new(NULL, (tg_nn_sgd_args){.lr = 1}) == NULL, "tg_nn_sgd_new");
    cr_expect_eq(tg_nn_optim_step(NULL), TG_ERR_NULL);
    tg_nn_module_free(m);
}

Test(nn_optim, schedules_and_clipping_match_pytorch)
{
    /* StepLR(step_size 3, gamma 0.5) and CosineAnnealingLR(T_max 10, eta_min 0.01). */
    cr_expect(fabs(tg_nn_lr_step(0.1, 2, 3, 0.5) - 0.1) < 1e-15);
    cr_expect(fabs(tg_nn_lr_step(0.1, 3, 3, 0.5) - 0.05) < 1e-15);
    cr_expect(fabs(tg_nn_lr_step(0.1, 7, 3, 0.5) - 0.025) < 1e-15);
    cr_expect(fabs(tg_nn_lr_cosine(0.1, 0.01, 0, 10) - 0.1) < 1e-15);
    cr_expect(fabs(tg_nn_lr_cosine(0.1, 0.01, 5, 10) - 0.055) < 1e-15);
    cr_expect(fabs(tg_nn_lr_cosine(0.1, 0.01, 10, 10) - 0.01) < 1e-15);
    /* clip_grad_norm_([w], 1.0) with grad [3, 4]: norm 5, grad [0.59999988, 0.79999984]. */
    tg_rng r;
    tg_rng_seed(&r, 0, 0);
    tg_nn_module *m = tg_nn_linear_new(2, 1, false, TG_F64, &r);
    tg_tensor *w = tg_nn_find(m, "weight")->tensor;
    tg_graph *g = tg_graph_new();
    int64_t s[] = {1, 2};
    double cv[] = {3, 4};
    tg_tensor *c = tgt_tensor(TG_F64, 2, s, cv);
    tg_backward(g, tg_sum(g, tg_mul(g, w, c)));
    cr_expect(fabs(tg_nn_clip_grad_norm(m, 1.0) - 5.0) < 1e-12);
    const double want[] = {0.599999880000024, 0.799999840000032};
    expect_close(tg_tensor_grad(w), want, 1e-15, 1e-12);
    tg_graph_free(g);
    tg_tensor_free(c);
    tg_nn_module_free(m);
}

/* ---- Checkpoints ---- */

static char *tmp_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/tgrad_test_%d_%s", (int)getpid(), name);
    return path;
}

Test(nn_checkpoint, round_trip_restores_every_entry)
{
    tg_nn_module *a = small_cnn(11, TG_F32), *b = small_cnn(12, TG_F32);
    char *p = tmp_path("rt.safetensors");
    cr_assert_eq(tg_nn_save(a, p), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_nn_load(b, p), TG_OK, "%s", tg_last_error());
    for (int i = 0; i < tg_nn_n_entries(a); i++)
        expect_close_t(tg_nn_entry_at(b, i)->tensor, tg_nn_entry_at(a, i)->tensor, 0, 0);
    unlink(p);
    tg_nn_module_free(a);
    tg_nn_module_free(b);
}

Test(nn_checkpoint, mismatched_module_is_rejected_and_left_unchanged)
{
    tg_rng r;
    tg_rng_seed(&r, 1, 0);
    tg_nn_module *a = small_cnn(1, TG_F32);
    tg_nn_module *mods[] = {tg_nn_conv2d_new(1, 4, 3, 3, (tg_conv2d_args){.groups = 1}, true, TG_F32, &r)};
    tg_nn_module *b = tg_nn_sequential_new(1, mods);
    tg_nn_module *c = small_cnn(2, TG_F64);
    char *p = tmp_path("mm.safetensors");
    cr_assert_eq(tg_nn_save(a, p), TG_OK);
    double before = tg_tensor_get(tg_nn_find(b, "0.weight")->tensor, 0);
    expect_error(tg_nn_load(b, p) == TG_ERR_FORMAT, "tg_nn_load", "unexpected \"4.");
    cr_expect(tg_tensor_get(tg_nn_find(b, "0.weight")->tensor, 0) == before);
    expect_error(tg_nn_load(c, p) == TG_ERR_FORMAT, "tg_nn_load", "\"0.weight\" is F32",
                 "the module has F64");
    expect_error(tg_nn_load(c, "/nonexistent/dir/x.safetensors") < 0, "tg_nn_load",
                 "/nonexistent/dir/x.safetensors");
    unlink(p);
    tg_nn_module_free(a);
    tg_nn_module_free(b);
    tg_nn_module_free(c);
}

Test(nn_checkpoint, every_truncation_and_bit_flip_is_rejected)
{
    tg_rng r;
    tg_rng_seed(&r, 1, 0);
    tg_nn_module *mods[] = {tg_nn_linear_new(3, 2, true, TG_F32, &r), tg_nn_batchnorm2d_new(2, TG_F32)};
    tg_nn_module *m = tg_nn_sequential_new(2, mods);
    char *p = tmp_path("flip.safetensors");
    cr_assert_eq(tg_nn_save(m, p), TG_OK, "%s", tg_last_error());
    FILE *f = fopen(p, "rb");
    cr_assert(f);
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert(n > 100 && n < sizeof buf);
    double w0 = tg_tensor_get(tg_nn_find(m, "0.weight")->tensor, 0);
    char *q = tmp_path("bad.safetensors");
    int accepted = 0;
    for (size_t len = 0; len < n; len++) {
        f = fopen(q, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        accepted += tg_nn_load(m, q) == TG_OK;
    }
    cr_expect_eq(accepted, 0, "%d truncations accepted", accepted);
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (unsigned char)(1u << bit);
            f = fopen(q, "wb");
            fwrite(buf, 1, n, f);
            fclose(f);
            if (tg_nn_load(m, q) == TG_OK) {
                accepted++;
                cr_expect(0, "flip of bit %d in byte %zu accepted", bit, i);
            }
            buf[i] ^= (unsigned char)(1u << bit);
        }
    }
    cr_expect_eq(accepted, 0);
    cr_expect(tg_tensor_get(tg_nn_find(m, "0.weight")->tensor, 0) == w0, "module unchanged");
    unlink(p);
    unlink(q);
    tg_nn_module_free(m);
}

Test(nn_checkpoint, optimizer_state_resumes_exactly)
{
    /* 5 steps straight == 2 steps, save, load into fresh objects, 3 steps. */
    tg_nn_module *m1 = quadratic_model();
    tg_nn_optim *o1 = o_adam_wd(m1);
    quadratic_steps(m1, o1, 5);

    tg_nn_module *m2 = quadratic_model();
    tg_nn_optim *o2 = o_adam_wd(m2);
    quadratic_steps(m2, o2, 2);
    char mp[256], op[256];
    snprintf(mp, sizeof mp, "%s", tmp_path("m.safetensors"));
    snprintf(op, sizeof op, "%s", tmp_path("o.safetensors"));
    cr_assert_eq(tg_nn_save(m2, mp), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_nn_optim_save(o2, op), TG_OK, "%s", tg_last_error());
    tg_nn_optim_free(o2);
    tg_nn_module_free(m2);

    tg_nn_module *m3 = quadratic_model();
    tg_nn_optim *o3 = o_adam_wd(m3);
    cr_assert_eq(tg_nn_load(m3, mp), TG_OK, "%s", tg_last_error());
    cr_assert_eq(tg_nn_optim_load(o3, op), TG_OK, "%s", tg_last_error());
    cr_expect_eq(tg_nn_optim_steps(o3), 2);
    quadratic_steps(m3, o3, 3);
    expect_close_t(tg_nn_find(m3, "weight")->tensor, tg_nn_find(m1, "weight")->tensor, 0, 0);

    tg_nn_optim *sgd = o_sgd_mom(m3);
    expect_error(tg_nn_optim_load(sgd, op) == TG_ERR_FORMAT, "tg_nn_optim_load", "\"adam\"",
                 "\"sgd\"");
    unlink(mp);
    unlink(op);
    tg_nn_optim_free(sgd);
    tg_nn_optim_free(o1);
    tg_nn_optim_free(o3);
    tg_nn_module_free(m1);
    tg_nn_module_free(m3);
}

/* ---- Data ---- */

static void write_idx(const char *path, const unsigned char *hdr, size_t hn, const unsigned char *d,
                      size_t dn)
{
    FILE *f = fopen(path, "wb");
    fwrite(hdr, 1, hn, f);
    fwrite(d, 1, dn, f);
    fclose(f);
}

Test(nn_data, mnist_loader_normalises_and_shuffles_by_seed)
{
    char ip[256], lp[256];
    snprintf(ip, sizeof ip, "%s", tmp_path("img.idx"));
    snprintf(lp, sizeof lp, "%s", tmp_path("lbl.idx"));
    unsigned char ih[] = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0, 0, 2};
    unsigned char lh[] = {0, 0, 8, 1, 0, 0, 0, 10};
    unsigned char img[40], lbl[10];
    for (int i = 0; i < 40; i++)
        img[i] = (unsigned char)(i * 6);
    for (int i = 0; i < 10; i++)
        lbl[i] = (unsigned char)i;
    write_idx(ip, ih, sizeof ih, img, sizeof img);
    write_idx(lp, lh, sizeof lh, lbl, sizeof lbl);
    tg_nn_dataset ds;
    cr_assert_eq(tg_nn_mnist_load(&ds, ip, lp, 0.5, 0.25), TG_OK, "%s", tg_last_error());
    cr_expect_eq(ds.n, 10);
    cr_expect_eq(ds.h, 2);
    cr_expect_eq(ds.pixels[5], 30);

    tg_nn_loader *a = tg_nn_loader_new(&ds, 4, true, 7), *b = tg_nn_loader_new(&ds, 4, true, 7);
    cr_expect_eq(tg_nn_loader_n_batches(a), 3);
    tg_graph *g = tg_graph_new();
    const int64_t *la, *lb;
    int seen[10] = {0}, batches = 0;
    for (;;) {
        tg_tensor *xa = tg_nn_loader_next(a, g, &la);
        tg_tensor *xb = tg_nn_loader_next(b, g, &lb);
        if (!xa) {
            cr_expect_null(xb);
            break;
        }
        batches++;
        int64_t bs = tg_tensor_shape(xa)[0];
        cr_expect_eq(bs, batches < 3 ? 4 : 2, "the last partial batch is kept");
        for (int64_t i = 0; i < bs; i++) {
            cr_expect_eq(la[i], lb[i]);
            seen[la[i]]++;
            /* the image matches its label and is normalised: (x / 255 - 0.5) / 0.25 */
            double want = ((double)ds.pixels[la[i] * 4] / 255.0 - 0.5) / 0.25;
            cr_expect(fabs(tg_tensor_get(xa, i * 4) - want) < 1e-6, "got %g want %g",
                      tg_tensor_get(xa, i * 4), want);
        }
    }
    for (int i = 0; i < 10; i++)
        cr_expect_eq(seen[i], 1, "each image once per epoch");
    tg_graph_free(g);
    tg_nn_loader_free(a);
    tg_nn_loader_free(b);
    tg_nn_dataset_free(&ds);

    unsigned char bad_lbl[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 12};
    write_idx(lp, lh, sizeof lh, bad_lbl, sizeof bad_lbl);
    expect_error(tg_nn_mnist_load(&ds, ip, lp, 0.5, 0.25) == TG_ERR_FORMAT, "tg_nn_mnist_load",
                 "label 12");
    unlink(ip);
    unlink(lp);
}

/* ---- Determinism: the same seed gives bitwise identical losses ---- */

static void train_losses(double *out, int steps)
{
    tg_nn_module *m = small_cnn(42, TG_F32);
    tg_nn_optim *o = tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = 0.05, .momentum = 0.9});
    int64_t xs[] = {8, 1, 8, 8};
    tg_tensor *x = tgt_random(TG_F32, 4, xs, -1, 1, 77);
    int64_t labels[8] = {0, 1, 2, 3, 4, 0, 1, 2};
    tg_graph *g = tg_graph_new();
    for (int s = 0; s < steps; s++) {
        tg_graph_reset(g);
        tg_nn_optim_zero_grad(o);
        tg_tensor *loss = tg_cross_entropy(g, tg_nn_forward(m, g, x), labels);
        cr_assert(loss, "%s", tg_last_error());
        tg_backward(g, loss);
        tg_nn_optim_step(o);
        out[s] = tg_tensor_get(loss, 0);
    }
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_nn_optim_free(o);
    tg_nn_module_free(m);
}

Test(nn_train, same_seed_gives_bitwise_identical_losses)
{
    double a[20], b[20];
    train_losses(a, 20);
    train_losses(b, 20);
    cr_expect(memcmp(a, b, sizeof a) == 0);
    cr_expect(a[19] < a[0], "the loss goes down: %g -> %g", a[0], a[19]);
}
