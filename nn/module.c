/* Modules, the generic part: allocation, the state dict, train/eval, free,
 * Sequential (which prefixes its children's entries with their index, as
 * PyTorch's state_dict does) and the one-call summary. Layers are in layers.c. */
#include "module.h"

#include <stdlib.h>
#include <string.h>

tg_nn_module *tg__nn_alloc(const tg_nn_vt *vt, int n_entries)
{
    tg_nn_module *m = calloc(1, sizeof *m);
    if (!m) {
        tg_set_error(TG_ERR_NOMEM, "tg_nn_%s: out of memory", vt->kind);
        return NULL;
    }
    m->vt = vt;
    m->training = true;
    if (n_entries > 0) {
        m->entries = calloc((size_t)n_entries, sizeof *m->entries);
        if (!m->entries) {
            free(m);
            tg_set_error(TG_ERR_NOMEM, "tg_nn_%s: out of memory", vt->kind);
            return NULL;
        }
    }
    return m;
}

bool tg__nn_add_tensor(tg_nn_module *m, int slot, const char *name, tg_nn_entry_kind kind,
                       tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    if (!t)
        return false;
    if (kind == TG_NN_PARAM)
        tg_tensor_set_requires_grad(t, true);
    tg_nn_entry *e = &m->entries[slot];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kind = kind;
    e->tensor = t;
    if (slot >= m->n_entries)
        m->n_entries = slot + 1;
    return true;
}

void tg_nn_module_free(tg_nn_module *m)
{
    if (!m)
        return;
    if (m->children) {
        for (int i = 0; i < m->n_children; i++)
            tg_nn_module_free(m->children[i]);
        free(m->children);
    } else {
        for (int i = 0; i < m->n_entries; i++)
            tg_tensor_free(m->entries[i].tensor);
    }
    free(m->entries);
    free(m);
}

tg_tensor *tg_nn_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    if (!m) {
        tg_set_error(TG_ERR_NULL, "tg_nn_forward: module is NULL");
        return NULL;
    }
    if (!x) {
        if (tg_last_status() == TG_OK)
            tg_set_error(TG_ERR_NULL, "tg_nn_forward: %s: input is NULL", m->vt->kind);
        return NULL;
    }
    return m->vt->forward(m, g, x);
}

void tg_nn_train(tg_nn_module *m, bool training)
{
    if (!m)
        return;
    m->training = training;
    for (int i = 0; i < m->n_children; i++)
        tg_nn_train(m->children[i], training);
}

bool tg_nn_training(const tg_nn_module *m) { return m && m->training; }
const char *tg_nn_kind(const tg_nn_module *m) { return m ? m->vt->kind : ""; }

void tg_nn_describe(const tg_nn_module *m, char *buf, size_t size)
{
    if (!m || size == 0)
        return;
    if (m->vt->describe)
        m->vt->describe(m, buf, size);
    else
        snprintf(buf, size, "%s()", m->vt->kind);
}

int tg_nn_n_entries(const tg_nn_module *m) { return m ? m->n_entries : 0; }

const tg_nn_entry *tg_nn_entry_at(const tg_nn_module *m, int i)
{
    return (m && i >= 0 && i < m->n_entries) ? &m->entries[i] : NULL;
}

const tg_nn_entry *tg_nn_find(const tg_nn_module *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (int i = 0; i < m->n_entries; i++)
        if (strcmp(m->entries[i].name, name) == 0)
            return &m->entries[i];
    return NULL;
}

int64_t tg_nn_param_count(const tg_nn_module *m)
{
    int64_t n = 0;
    for (int i = 0; m && i < m->n_entries; i++)
        if (m->entries[i].kind == TG_NN_PARAM)
            n += tg_tensor_numel(m->entries[i].tensor);
    return n;
}

void tg_nn_zero_grad(tg_nn_module *m)
{
    for (int i = 0; m && i < m->n_entries; i++)
        if (m->entries[i].kind == TG_NN_PARAM)
            tg_tensor_zero_grad(m->entries[i].tensor);
}

/* ------------------------------------------------------------ Sequential */

static bool is_kind(const tg_nn_module *m, const char *kind) { return !strcmp(m->vt->kind, kind); }

/* A pool whose every window holds at least one input pixel: without dilation
 * (padding <= kernel / 2 is checked by the op). A dilated window can lie all
 * in the padding, giving -inf, which relu would turn into 0. */
static bool no_empty_windows(const tg_nn_module *pool)
{
    return pool->pool.dilation[0] <= 1 && pool->pool.dilation[1] <= 1;
}

/* ReLU followed by MaxPool2d (with no all-padding window) runs as MaxPool2d
 * then ReLU. relu is monotone, so max(relu(x)) = relu(max(x)), and the
 * gradients agree: each window sends dy to the same argmax when its max is
 * positive, and nothing when it is <= 0. The relu then reads and writes a
 * quarter of the elements (2x2 pooling) forward and backward. Only the sign of
 * a zero output can differ. */
static tg_tensor *sequential_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    tg_nn_module *const *c = m->children;
    for (int i = 0; i < m->n_children && x; i++) {
        if (i + 1 < m->n_children && is_kind(c[i], "ReLU") && is_kind(c[i + 1], "MaxPool2d") &&
            no_empty_windows(c[i + 1])) {
            x = tg_nn_forward(c[i], g, tg_nn_forward(c[i + 1], g, x));
            i++;
        } else {
            x = tg_nn_forward(c[i], g, x);
        }
    }
    return x;
}

static const tg_nn_vt sequential_vt = {.kind = "Sequential", .forward = sequential_forward};

tg_nn_module *tg_nn_sequential_new(int n, tg_nn_module *const *mods)
{
    bool ok = n >= 1 && mods;
    for (int i = 0; ok && i < n; i++)
        ok = mods[i] != NULL;
    if (!ok) {
        /* Keep the first error of a failed child's constructor. */
        if (tg_last_status() == TG_OK || n < 1 || !mods)
            tg_set_error(n < 1 || !mods ? TG_ERR_ARG : TG_ERR_NULL,
                         "tg_nn_sequential_new: needs n >= 1 non-NULL modules (n = %d)", n);
        for (int i = 0; mods && i < n; i++)
            tg_nn_module_free(mods[i]);
        return NULL;
    }
    int total = 0;
    for (int i = 0; i < n; i++)
        total += mods[i]->n_entries;
    tg_nn_module *m = tg__nn_alloc(&sequential_vt, total);
    tg_nn_module **kids = m ? malloc((size_t)n * sizeof *kids) : NULL;
    if (!kids) {
        if (m)
            tg_set_error(TG_ERR_NOMEM, "tg_nn_sequential_new: out of memory");
        free(m ? m->entries : NULL);
        free(m);
        for (int i = 0; i < n; i++)
            tg_nn_module_free(mods[i]);
        return NULL;
    }
    memcpy(kids, mods, (size_t)n * sizeof *kids);
    m->children = kids;
    m->n_children = n;
    m->n_entries = total;
    for (int i = 0, k = 0; i < n; i++) {
        for (int j = 0; j < kids[i]->n_entries; j++, k++) {
            m->entries[k] = kids[i]->entries[j];
            int len = snprintf(m->entries[k].name, TG_NN_NAME_MAX, "%d.%s", i,
                               kids[i]->entries[j].name);
            if (len < 0 || len >= TG_NN_NAME_MAX) {
                tg_set_error(TG_ERR_ARG, "tg_nn_sequential_new: name \"%d.%s\" is longer than %d bytes",
                             i, kids[i]->entries[j].name, TG_NN_NAME_MAX - 1);
                tg_nn_module_free(m);
                return NULL;
            }
        }
    }
    return m;
}

/* --------------------------------------------------------------- summary */

static int64_t own_params(const tg_nn_module *m)
{
    return tg_nn_param_count(m);
}

int tg_nn_summary(tg_nn_module *m, FILE *out, tg_dtype dtype, int ndim, const int64_t *shape)
{
    if (!m || !out)
        return tg_set_error(TG_ERR_NULL, "tg_nn_summary: module or stream is NULL");
    tg_graph *g = tg_graph_new();
    if (!g)
        return tg_last_status();
    tg_graph_set_no_grad(g, true);
    bool was_training = m->training;
    tg_nn_train(m, false);
    tg_tensor *x = tg_graph_tensor(g, dtype, ndim, shape);
    int rc = x ? TG_OK : tg_last_status();
    char sh[TG_SHAPE_STR_MAX], desc[256];
    fprintf(out, "%-5s %-68s %-20s %10s\n", "layer", "module", "output shape", "params");
    int n = m->n_children ? m->n_children : 1;
    for (int i = 0; i < n && rc == TG_OK; i++) {
        tg_nn_module *c = m->n_children ? m->children[i] : m;
        x = tg_nn_forward(c, g, x);
        if (!x) {
            rc = tg_last_status();
            break;
        }
        tg_nn_describe(c, desc, sizeof desc);
        fprintf(out, "%-5d %-68s %-20s %10lld\n", i, desc,
                tg_shape_format(sh, sizeof sh, tg_tensor_ndim(x), tg_tensor_shape(x)),
                (long long)own_params(c));
    }
    if (rc == TG_OK)
        fprintf(out, "total trainable parameters: %lld\n", (long long)tg_nn_param_count(m));
    tg_nn_train(m, was_training);
    tg_graph_free(g);
    return rc;
}
