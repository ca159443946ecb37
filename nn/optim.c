/* Optimizers with PyTorch 1.13's update rules (torch.optim.SGD, Adam, AdamW,
 * single-tensor path), learning-rate schedules and gradient clipping.
 * Arithmetic runs in the parameter's dtype, as PyTorch's does. Saving and
 * loading the optimizer state is in checkpoint.c. */
#include "optim.h"
#include "ops/kernels/simd.h" /* no FP contraction, as the kernels */
#include "ops/kernels/threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static tg_nn_optim *optim_new(tg_nn_module *m, tg_nn_optim_kind kind, const char *who)
{
    if (!m) {
        tg_set_error(TG_ERR_NULL, "%s: module is NULL", who);
        return NULL;
    }
    tg_nn_optim *o = calloc(1, sizeof *o);
    if (!o) {
        tg_set_error(TG_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    o->kind = kind;
    o->module = m;
    int n = 0;
    for (int i = 0; i < tg_nn_n_entries(m); i++)
        n += tg_nn_entry_at(m, i)->kind == TG_NN_PARAM;
    o->n = n;
    o->slots = calloc((size_t)(n ? n : 1), sizeof *o->slots);
    if (!o->slots) {
        free(o);
        tg_set_error(TG_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    int n_bufs = kind == TG_NN_OPTIM_SGD ? 1 : 3;
    for (int i = 0, k = 0; i < tg_nn_n_entries(m); i++) {
        const tg_nn_entry *e = tg_nn_entry_at(m, i);
        if (e->kind != TG_NN_PARAM)
            continue;
        tg__optim_slot *s = &o->slots[k++];
        s->param = e->tensor;
        s->name = e->name;
        for (int b = 0; b < n_bufs; b++) {
            s->buf[b] = tg_tensor_new(tg_tensor_dtype(e->tensor), tg_tensor_ndim(e->tensor),
                                      tg_tensor_shape(e->tensor));
            if (!s->buf[b]) {
                tg_nn_optim_free(o);
                return NULL;
            }
        }
    }
    return o;
}

tg_nn_optim *tg_nn_sgd_new(tg_nn_module *m, tg_nn_sgd_args a)
{
    if (!(a.lr > 0) || a.momentum < 0 || a.weight_decay < 0 || (a.nesterov && (a.momentum <= 0 || a.dampening != 0))) {
        tg_set_error(TG_ERR_ARG,
                     "tg_nn_sgd_new: need lr > 0, momentum >= 0, weight_decay >= 0, and for "
                     "nesterov momentum > 0 with zero dampening (lr %g, momentum %g, dampening %g, "
                     "weight_decay %g)",
                     a.lr, a.momentum, a.dampening, a.weight_decay);
        return NULL;
    }
    tg_nn_optim *o = optim_new(m, TG_NN_OPTIM_SGD, "tg_nn_sgd_new");
    if (o) {
        o->sgd = a;
        o->lr = a.lr;
    }
    return o;
}

static tg_nn_optim *adam_new(tg_nn_module *m, tg_nn_adam_args a, tg_nn_optim_kind kind,
                             const char *who)
{
    if (a.lr == 0)
        a.lr = 1e-3;
    if (a.beta1 == 0)
        a.beta1 = 0.9;
    if (a.beta2 == 0)
        a.beta2 = 0.999;
    if (a.eps == 0)
        a.eps = 1e-8;
    if (a.weight_decay == 0 && kind == TG_NN_OPTIM_ADAMW)
        a.weight_decay = 1e-2;
    if (!(a.lr > 0) || !(a.beta1 > 0 && a.beta1 < 1) || !(a.beta2 > 0 && a.beta2 < 1) ||
        !(a.eps > 0) || a.weight_decay < 0) {
        tg_set_error(TG_ERR_ARG,
                     "%s: need lr > 0, betas in (0, 1), eps > 0, weight_decay >= 0 (lr %g, "
                     "betas (%g, %g), eps %g, weight_decay %g)",
                     who, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay);
        return NULL;
    }
    tg_nn_optim *o = optim_new(m, kind, who);
    if (o) {
        o->adam = a;
        o->lr = a.lr;
    }
    return o;
}

tg_nn_optim *tg_nn_adam_new(tg_nn_module *m, tg_nn_adam_args a)
{
    return adam_new(m, a, TG_NN_OPTIM_ADAM, "tg_nn_adam_new");
}

tg_nn_optim *tg_nn_adamw_new(tg_nn_module *m, tg_nn_adam_args a)
{
    return adam_new(m, a, TG_NN_OPTIM_ADAMW, "tg_nn_adamw_new");
}

void tg_nn_optim_free(tg_nn_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n; i++)
        for (int b = 0; b < 3; b++)
            tg_tensor_free(o->slots[i].buf[b]);
    free(o->slots);
    free(o);
}

/* ------------------------------------------------------------ the updates */

/* The update loops are elementwise: each runs over the parameter in chunks
 * of OPT_CHUNK shared among the kernel threads (bitwise the same for any
 * count). Each combination of settings gets its own loop, the settings
 * spelled as 0/1 literals, so no loop has a branch and each vectorises; this file is built with -fno-math-errno so that Adam's
 * sqrt does too (its argument is never negative; the results are the same). */
#define OPT_CHUNK 16384
#define OPT_LOOP(n, ...)                                                                       \
    do {                                                                                       \
        const int64_t nc_ = ((n) + OPT_CHUNK - 1) / OPT_CHUNK;                                 \
        const int nt_ = nc_ > 1 ? tg__threads() : 1;                                           \
        TG_OMP("omp parallel for schedule(static) num_threads(nt_) if (nt_ > 1)")              \
        for (int64_t c_ = 0; c_ < nc_; c_++) {                                                 \
            const int64_t hi_ = (c_ + 1) * OPT_CHUNK < (n) ? (c_ + 1) * OPT_CHUNK : (n);       \
            TG_OMP("omp simd")                                                                 \
            for (int64_t i = c_ * OPT_CHUNK; i < hi_; i++) {                                   \
                __VA_ARGS__                                                                    \
            }                                                                                  \
        }                                                                                      \
    } while (0)
/* SGD (torch.optim.SGD): d = g + wd p; buf = d on the first step, else
 * momentum buf + (1 - dampening) d; d = d + momentum buf (Nesterov) or buf;
 * p -= lr d. */
#define SGD_BODY(T, WD, MOM, FIRST, NEST)                                                      \
    OPT_LOOP(n, {                                                                              \
        T d = WD ? gr[i] + wd * p[i] : gr[i];                                                  \
        if (MOM) {                                                                             \
            const T b = FIRST ? d : mom * buf[i] + damp1 * d;                                  \
            buf[i] = b;                                                                        \
            d = NEST ? d + mom * b : b;                                                        \
        }                                                                                      \
        p[i] = p[i] - lr * d;                                                                  \
    })
#define SGD_MOM(T, WD)                                                                         \
    do {                                                                                       \
        if (!buf)                                                                              \
            SGD_BODY(T, WD, 0, 0, 0);                                                          \
        else if (!s->has_state && a->nesterov)                                                 \
            SGD_BODY(T, WD, 1, 1, 1);                                                          \
        else if (!s->has_state)                                                                \
            SGD_BODY(T, WD, 1, 1, 0);                                                          \
        else if (a->nesterov)                                                                  \
            SGD_BODY(T, WD, 1, 0, 1);                                                          \
        else                                                                                   \
            SGD_BODY(T, WD, 1, 0, 0);                                                          \
    } while (0)
#define SGD_LOOP(T)                                                                            \
    do {                                                                                       \
        T *restrict p = tg_tensor_data(s->param);                                              \
        const T *restrict gr = tg_tensor_data(tg_tensor_grad(s->param));                       \
        T *restrict buf = a->momentum != 0 ? tg_tensor_data(s->buf[0]) : NULL;                 \
        const T lr = (T)o->lr, wd = (T)a->weight_decay, mom = (T)a->momentum;                  \
        const T damp1 = (T)(1.0 - a->dampening);                                               \
        if (a->weight_decay != 0)                                                              \
            SGD_MOM(T, 1);                                                                     \
        else                                                                                   \
            SGD_MOM(T, 0);                                                                     \
    } while (0)

/* Adam / AdamW (torch.optim.Adam, AdamW): AdamW first decays p *= 1 - lr wd;
 * Adam adds wd p to the gradient. m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; denom = sqrt(v or max(v)) / sqrt(1 - b2^t) + eps;
 * p -= lr / (1 - b1^t) * m / denom. */
#define ADAM_BODY(T, DECAY, WD, AMS)                                                           \
    OPT_LOOP(n, {                                                                              \
        const T pi = DECAY ? p[i] * decay : p[i];                                              \
        const T g = WD ? gr[i] + wd * pi : gr[i];                                              \
        const T mi = m1[i] * b1 + one_b1 * g, v = m2[i] * b2 + one_b2 * g * g;                 \
        m1[i] = mi;                                                                            \
        m2[i] = v;                                                                             \
        T vm = v;                                                                              \
        if (AMS) {                                                                             \
            vm = vmax[i] > v ? vmax[i] : v;                                                    \
            vmax[i] = vm;                                                                      \
        }                                                                                      \
        p[i] = pi - step_size * (mi / ((T)sqrt((double)vm) / bc2_sqrt + eps));                 \
    })
#define ADAM_AMS(T, DECAY, WD)                                                                 \
    do {                                                                                       \
        if (vmax)                                                                              \
            ADAM_BODY(T, DECAY, WD, 1);                                                        \
        else                                                                                   \
            ADAM_BODY(T, DECAY, WD, 0);                                                        \
    } while (0)
#define ADAM_LOOP(T)                                                                           \
    do {                                                                                       \
        T *restrict p = tg_tensor_data(s->param);                                              \
        const T *restrict gr = tg_tensor_data(tg_tensor_grad(s->param));                       \
        T *restrict m1 = tg_tensor_data(s->buf[0]), *restrict m2 = tg_tensor_data(s->buf[1]);  \
        T *restrict vmax = a->amsgrad ? tg_tensor_data(s->buf[2]) : NULL;                      \
        const T b1 = (T)a->beta1, b2 = (T)a->beta2, eps = (T)a->eps;                           \
        const T wd = (T)a->weight_decay, decay = (T)(1.0 - o->lr * a->weight_decay);           \
        const T one_b1 = (T)(1.0 - a->beta1), one_b2 = (T)(1.0 - a->beta2);                    \
        const T step_size = (T)step_size_d, bc2_sqrt = (T)bc2_sqrt_d;                          \
        if (adamw)                                                                             \
            ADAM_AMS(T, 1, 0);                                                                 \
        else if (a->weight_decay != 0)                                                         \
            ADAM_AMS(T, 0, 1);                                                                 \
        else                                                                                   \
            ADAM_AMS(T, 0, 0);                                                                 \
    } while (0)

int tg_nn_optim_step(tg_nn_optim *o)
{
    if (!o)
        return tg_set_error(TG_ERR_NULL, "tg_nn_optim_step: optimizer is NULL");
    for (int k = 0; k < o->n; k++) {
        tg__optim_slot *s = &o->slots[k];
        if (!tg_tensor_grad(s->param))
            continue; /* as PyTorch: a parameter without a gradient is not updated */
        int64_t n = tg_tensor_numel(s->param);
        bool f64 = tg_tensor_dtype(s->param) == TG_F64;
        if (o->kind == TG_NN_OPTIM_SGD) {
            const tg_nn_sgd_args *a = &o->sgd;
            if (f64)
                SGD_LOOP(double);
            else
                SGD_LOOP(float);
        } else {
            const tg_nn_adam_args *a = &o->adam;
            bool adamw = o->kind == TG_NN_OPTIM_ADAMW;
            s->steps++;
            double t = (double)s->steps;
            double step_size_d = o->lr / (1.0 - pow(a->beta1, t));
            double bc2_sqrt_d = sqrt(1.0 - pow(a->beta2, t));
            if (f64)
                ADAM_LOOP(double);
            else
                ADAM_LOOP(float);
        }
        s->has_state = true;
    }
    o->n_steps++;
    return TG_OK;
}

void tg_nn_optim_zero_grad(tg_nn_optim *o)
{
    for (int k = 0; o && k < o->n; k++)
        tg_tensor_zero_grad(o->slots[k].param);
}

double tg_nn_optim_lr(const tg_nn_optim *o) { return o ? o->lr : 0.0; }

void tg_nn_optim_set_lr(tg_nn_optim *o, double lr)
{
    if (o)
        o->lr = lr;
}

int64_t tg_nn_optim_steps(const tg_nn_optim *o) { return o ? o->n_steps : 0; }

/* ------------------------------------------------- schedules and clipping */

double tg_nn_lr_step(double base, int64_t epoch, int64_t step_size, double gamma)
{
    if (step_size <= 0 || epoch < 0)
        return base;
    return base * pow(gamma, (double)(epoch / step_size));
}

double tg_nn_lr_cosine(double base, double eta_min, int64_t t, int64_t t_max)
{
    if (t_max <= 0)
        return base;
    const double pi = 3.14159265358979323846;
    return eta_min + (base - eta_min) * (1.0 + cos(pi * (double)t / (double)t_max)) / 2.0;
}

double tg_nn_clip_grad_norm(tg_nn_module *m, double max_norm)
{
    double sq = 0.0;
    for (int i = 0; i < tg_nn_n_entries(m); i++) {
        const tg_nn_entry *e = tg_nn_entry_at(m, i);
        tg_tensor *gr = e->kind == TG_NN_PARAM ? tg_tensor_grad(e->tensor) : NULL;
        for (int64_t j = 0; gr && j < tg_tensor_numel(gr); j++) {
            double v = tg_tensor_get(gr, j);
            sq += v * v;
        }
    }
    double total = sqrt(sq);
    double coef = max_norm / (total + 1e-6); /* clip_grad_norm_'s formula */
    if (coef < 1.0) {
        for (int i = 0; i < tg_nn_n_entries(m); i++) {
            const tg_nn_entry *e = tg_nn_entry_at(m, i);
            tg_tensor *gr = e->kind == TG_NN_PARAM ? tg_tensor_grad(e->tensor) : NULL;
            for (int64_t j = 0; gr && j < tg_tensor_numel(gr); j++)
                tg_tensor_set(gr, j, tg_tensor_get(gr, j) * coef);
        }
    }
    return total;
}
