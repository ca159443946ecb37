/* Internal to nn/: the module struct, shared by module.c (generic parts,
 * Sequential, summary) and layers.c (each layer kind). Not installed. */
#ifndef TG_NN_MODULE_H
#define TG_NN_MODULE_H

#include "nn.h"

typedef struct tg_nn_vt {
    const char *kind;
    tg_tensor *(*forward)(tg_nn_module *m, tg_graph *g, tg_tensor *x);
    void (*describe)(const tg_nn_module *m, char *buf, size_t size);
} tg_nn_vt;

struct tg_nn_module {
    const tg_nn_vt *vt;
    bool training;
    /* The state dict. Leaf modules own the tensors and counter behind their
     * entries; a Sequential's entries are prefixed copies of its children's. */
    tg_nn_entry *entries;
    int n_entries;
    tg_nn_module **children;
    int n_children;
    /* Kind-specific settings (one struct for every kind keeps this simple). */
    int64_t in, out, kh, kw;
    tg_conv2d_args conv;
    tg_pool2d_args pool;
    int start_dim;
    double p;
    tg_rng rng;
    int64_t num_batches_tracked;
};

/* A module of the given kind with room for n_entries (zeroed). */
tg_nn_module *tg__nn_alloc(const tg_nn_vt *vt, int n_entries);
/* Adds a heap tensor entry (owned by the module); false on failure. */
bool tg__nn_add_tensor(tg_nn_module *m, int slot, const char *name, tg_nn_entry_kind kind,
                       tg_dtype dtype, int ndim, const int64_t *shape);

#endif
