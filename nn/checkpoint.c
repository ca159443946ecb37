/* Checkpoints: a module's state dict and an optimizer's state, saved in the
 * safetensors layout (nn/safetensors.c does the format, the CRC and the atomic
 * write) and loaded with every name, dtype and shape checked against the
 * module before anything is copied, so a failed load changes nothing. */
#include "optim.h"
#include "safetensors.h"

#include <stdlib.h>
#include <string.h>

static tg_st_dtype st_dtype(tg_dtype d) { return d == TG_F64 ? TG_ST_F64 : TG_ST_F32; }

static tg_st_tensor st_of_tensor(const char *name, const tg_tensor *t)
{
    tg_st_tensor s = {.name = name, .dtype = st_dtype(tg_tensor_dtype(t)),
                      .ndim = tg_tensor_ndim(t), .data = tg_tensor_data(t)};
    memcpy(s.shape, tg_tensor_shape(t), (size_t)s.ndim * sizeof(int64_t));
    return s;
}

/* The file's entry `name` must have t's dtype and shape. */
static int check_against(const tg_st_file *f, const char *path, const char *who, const char *name,
                         tg_st_dtype dtype, int ndim, const int64_t *shape)
{
    const tg_st_tensor *s = tg_st_find(f, name);
    char want[TG_SHAPE_STR_MAX], got[TG_SHAPE_STR_MAX];
    tg_shape_format(want, sizeof want, ndim, shape);
    if (!s)
        return tg_set_error(TG_ERR_FORMAT, "%s: %s: missing \"%s\" (%s %s)", who, path, name,
                            tg_st_dtype_name(dtype), want);
    tg_shape_format(got, sizeof got, s->ndim, s->shape);
    if (s->dtype != dtype || s->ndim != ndim ||
        (ndim > 0 && memcmp(s->shape, shape, (size_t)ndim * sizeof(int64_t)) != 0))
        return tg_set_error(TG_ERR_FORMAT, "%s: %s: \"%s\" is %s %s, the module has %s %s", who,
                            path, name, tg_st_dtype_name(s->dtype), got, tg_st_dtype_name(dtype), want);
    return TG_OK;
}

/* ---------------------------------------------------------------- modules */

int tg_nn_save(const tg_nn_module *m, const char *path)
{
    if (!m || !path)
        return tg_set_error(TG_ERR_NULL, "tg_nn_save: module or path is NULL");
    int n = tg_nn_n_entries(m);
    tg_st_tensor *ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    if (!ts)
        return tg_set_error(TG_ERR_NOMEM, "tg_nn_save: out of memory");
    for (int i = 0; i < n; i++) {
        const tg_nn_entry *e = tg_nn_entry_at(m, i);
        if (e->kind == TG_NN_COUNTER)
            ts[i] = (tg_st_tensor){.name = e->name, .dtype = TG_ST_I64, .ndim = 0,
                                   .data = e->counter};
        else
            ts[i] = st_of_tensor(e->name, e->tensor);
    }
    int rc = tg_st_write(path, ts, n, NULL, 0);
    free(ts);
    if (rc != TG_OK)
        tg_error_prefix("tg_nn_save: ");
    return rc;
}

int tg_nn_load_ex(tg_nn_module *m, const char *path, unsigned flags)
{
    const char *who = "tg_nn_load";
    if (!m || !path)
        return tg_set_error(TG_ERR_NULL, "%s: module or path is NULL", who);
    tg_st_file *f =
        tg_st_read(path, (flags & TG_NN_LOAD_NO_CRC) ? 0u : (unsigned)TG_ST_REQUIRE_CRC);
    if (!f) {
        tg_error_prefix("tg_nn_load: ");
        return tg_last_status();
    }
    int rc = TG_OK, n = tg_nn_n_entries(m);
    /* Every check first; then the copy, which cannot fail. */
    for (int i = 0; i < n && rc == TG_OK; i++) {
        const tg_nn_entry *e = tg_nn_entry_at(m, i);
        if (e->kind == TG_NN_COUNTER)
            rc = check_against(f, path, who, e->name, TG_ST_I64, 0, NULL);
        else
            rc = check_against(f, path, who, e->name, st_dtype(tg_tensor_dtype(e->tensor)),
                               tg_tensor_ndim(e->tensor), tg_tensor_shape(e->tensor));
    }
    for (int i = 0; i < tg_st_count(f) && rc == TG_OK; i++) {
        const char *name = tg_st_at(f, i)->name;
        if (!tg_nn_find(m, name))
            rc = tg_set_error(TG_ERR_FORMAT, "%s: %s: unexpected \"%s\": the module has no such entry",
                              who, path, name);
    }
    for (int i = 0; i < n && rc == TG_OK; i++) {
        const tg_nn_entry *e = tg_nn_entry_at(m, i);
        const tg_st_tensor *s = tg_st_find(f, e->name);
        if (e->kind == TG_NN_COUNTER)
            memcpy(e->counter, s->data, sizeof(int64_t));
        else
            memcpy(tg_tensor_data(e->tensor), s->data,
                   (size_t)tg_tensor_numel(e->tensor) * tg_dtype_size(tg_tensor_dtype(e->tensor)));
    }
    tg_st_close(f);
    return rc;
}

int tg_nn_load(tg_nn_module *m, const char *path) { return tg_nn_load_ex(m, path, 0); }

/* ------------------------------------------------------------- optimizers */

static const char *kind_name(tg_nn_optim_kind k)
{
    return k == TG_NN_OPTIM_SGD ? "sgd" : k == TG_NN_OPTIM_ADAM ? "adam" : "adamw";
}

static const char *const buf_names[2][3] = {{"momentum_buffer", "", ""},
                                            {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}};

static int n_bufs(const tg_nn_optim *o) { return o->kind == TG_NN_OPTIM_SGD ? 1 : 3; }

/* File layout: "state.<param>.<buffer>" for each parameter with state,
 * "state.<param>.step" (I64) for Adam's per-parameter step, and "steps" (I64).
 * Metadata: optimizer kind and lr (as text, "%.17g"). */
int tg_nn_optim_save(const tg_nn_optim *o, const char *path)
{
    if (!o || !path)
        return tg_set_error(TG_ERR_NULL, "tg_nn_optim_save: optimizer or path is NULL");
    int cap = o->n * 4 + 1, k = 0;
    tg_st_tensor *ts = calloc((size_t)cap, sizeof *ts);
    char(*names)[TG_NN_NAME_MAX + 32] = calloc((size_t)cap, sizeof *names);
    if (!ts || !names) {
        free(ts);
        free(names);
        return tg_set_error(TG_ERR_NOMEM, "tg_nn_optim_save: out of memory");
    }
    int table = o->kind == TG_NN_OPTIM_SGD ? 0 : 1;
    for (int i = 0; i < o->n; i++) {
        const tg__optim_slot *s = &o->slots[i];
        if (!s->has_state)
            continue;
        for (int b = 0; b < n_bufs(o); b++) {
            snprintf(names[k], sizeof names[k], "state.%s.%s", s->name, buf_names[table][b]);
            ts[k] = st_of_tensor(names[k], s->buf[b]);
            k++;
        }
        if (o->kind != TG_NN_OPTIM_SGD) {
            snprintf(names[k], sizeof names[k], "state.%s.step", s->name);
            ts[k] = (tg_st_tensor){.name = names[k], .dtype = TG_ST_I64, .data = &s->steps};
            k++;
        }
    }
    ts[k++] = (tg_st_tensor){.name = "steps", .dtype = TG_ST_I64, .data = &o->n_steps};
    char lr[40];
    snprintf(lr, sizeof lr, "%.17g", o->lr);
    const char *meta[] = {"tgrad_optimizer", kind_name(o->kind), "lr", lr};
    int rc = tg_st_write(path, ts, k, meta, 2);
    free(ts);
    free(names);
    if (rc != TG_OK)
        tg_error_prefix("tg_nn_optim_save: ");
    return rc;
}

int tg_nn_optim_load(tg_nn_optim *o, const char *path)
{
    const char *who = "tg_nn_optim_load";
    if (!o || !path)
        return tg_set_error(TG_ERR_NULL, "%s: optimizer or path is NULL", who);
    tg_st_file *f = tg_st_read(path, TG_ST_REQUIRE_CRC);
    if (!f) {
        tg_error_prefix("tg_nn_optim_load: ");
        return tg_last_status();
    }
    int rc = TG_OK;
    const char *kind = tg_st_meta(f, "tgrad_optimizer"), *lr_text = tg_st_meta(f, "lr");
    char *end = NULL;
    double lr = lr_text ? strtod(lr_text, &end) : 0.0;
    if (!kind || strcmp(kind, kind_name(o->kind)) != 0)
        rc = tg_set_error(TG_ERR_FORMAT, "%s: %s: holds optimizer \"%s\", this one is \"%s\"", who,
                          path, kind ? kind : "(none)", kind_name(o->kind));
    else if (!lr_text || !end || *end != '\0' || !(lr > 0))
        rc = tg_set_error(TG_ERR_FORMAT, "%s: %s: bad or missing lr", who, path);
    if (rc == TG_OK)
        rc = check_against(f, path, who, "steps", TG_ST_I64, 0, NULL);
    /* Every parameter either has all its buffers or none (no state yet). */
    int table = o->kind == TG_NN_OPTIM_SGD ? 0 : 1, expected = 1;
    char name[TG_NN_NAME_MAX + 32];
    for (int i = 0; i < o->n && rc == TG_OK; i++) {
        const tg__optim_slot *s = &o->slots[i];
        snprintf(name, sizeof name, "state.%s.%s", s->name, buf_names[table][0]);
        if (!tg_st_find(f, name))
            continue;
        for (int b = 0; b < n_bufs(o) && rc == TG_OK; b++) {
            snprintf(name, sizeof name, "state.%s.%s", s->name, buf_names[table][b]);
            rc = check_against(f, path, who, name, st_dtype(tg_tensor_dtype(s->buf[b])),
                               tg_tensor_ndim(s->buf[b]), tg_tensor_shape(s->buf[b]));
            expected++;
        }
        if (o->kind != TG_NN_OPTIM_SGD && rc == TG_OK) {
            snprintf(name, sizeof name, "state.%s.step", s->name);
            rc = check_against(f, path, who, name, TG_ST_I64, 0, NULL);
            expected++;
        }
    }
    if (rc == TG_OK && tg_st_count(f) != expected)
        rc = tg_set_error(TG_ERR_FORMAT, "%s: %s: %d entries, expected %d for this optimizer", who,
                          path, tg_st_count(f), expected);
    for (int i = 0; i < o->n && rc == TG_OK; i++) {
        tg__optim_slot *s = &o->slots[i];
        snprintf(name, sizeof name, "state.%s.%s", s->name, buf_names[table][0]);
        s->has_state = tg_st_find(f, name) != NULL;
        for (int b = 0; b < n_bufs(o); b++) {
            snprintf(name, sizeof name, "state.%s.%s", s->name, buf_names[table][b]);
            const tg_st_tensor *t = tg_st_find(f, name);
            size_t bytes = (size_t)tg_tensor_numel(s->buf[b]) *
                           tg_dtype_size(tg_tensor_dtype(s->buf[b]));
            if (t)
                memcpy(tg_tensor_data(s->buf[b]), t->data, bytes);
            else
                memset(tg_tensor_data(s->buf[b]), 0, bytes);
        }
        s->steps = 0;
        snprintf(name, sizeof name, "state.%s.step", s->name);
        const tg_st_tensor *st = tg_st_find(f, name);
        if (st)
            memcpy(&s->steps, st->data, sizeof s->steps);
    }
    if (rc == TG_OK) {
        memcpy(&o->n_steps, tg_st_find(f, "steps")->data, sizeof o->n_steps);
        o->lr = lr;
    }
    tg_st_close(f);
    return rc;
}
