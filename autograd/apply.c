/* tg_apply: the one path every op takes. Checks the inputs, runs the op's shape
 * rule, allocates the output, records a node when a gradient is needed and runs
 * the forward. Node layout and backward are in graph.c. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void prefix_op(const tg_op *op)
{
    char prefix[96];
    snprintf(prefix, sizeof prefix, "tg_%s: ", op->name);
    tg_error_prefix(prefix);
}

/* "a float32 [2, 3], b float64 [3]" for the dtype message. */
static void describe_inputs(char *buf, size_t size, tg_tensor *const *in, int n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at < size; i++) {
        char s[TG_SHAPE_STR_MAX];
        at += (size_t)snprintf(buf + at, size - at, "%sinput %d %s %s", i ? ", " : "", i,
                               tg_dtype_name(in[i]->dtype),
                               tg_shape_format(s, sizeof s, in[i]->ndim, in[i]->shape));
    }
}

tg_tensor *tg_apply(tg_graph *g, const tg_op *op, tg_tensor *const *inputs, int n_inputs,
                    const void *attrs)
{
    if (!op) {
        tg_set_error(TG_ERR_NULL, "tg_apply: op is NULL");
        return NULL;
    }
    if (n_inputs < 1 || (op->n_inputs != TG_VARIADIC && n_inputs != op->n_inputs)) {
        if (op->n_inputs == TG_VARIADIC)
            tg_set_error(TG_ERR_ARG, "tg_%s: takes at least 1 input, got %d", op->name, n_inputs);
        else
            tg_set_error(TG_ERR_ARG, "tg_%s: takes %d inputs, got %d", op->name, op->n_inputs,
                         n_inputs);
        return NULL;
    }
    if (!inputs) {
        tg_set_error(TG_ERR_NULL, "tg_%s: inputs array is NULL", op->name);
        return NULL;
    }
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i]) {
            /* Propagate: keep the first error of a chain. */
            if (tg_last_status() == TG_OK)
                tg_set_error(TG_ERR_NULL, "tg_%s: input %d is NULL", op->name, i);
            return NULL;
        }
    }
    if (!g) {
        tg_set_error(TG_ERR_NULL, "tg_%s: graph is NULL", op->name);
        return NULL;
    }
    if (op->attr_size && !attrs) {
        tg_set_error(TG_ERR_NULL, "tg_%s: attributes are NULL", op->name);
        return NULL;
    }
    bool record = false;
    for (int i = 0; i < n_inputs; i++) {
        const tg_tensor *t = inputs[i];
        if (t->graph && t->graph != g) {
            char s[TG_SHAPE_STR_MAX];
            tg_set_error(TG_ERR_ARG, "tg_%s: input %d %s belongs to another graph", op->name, i,
                         tg_shape_format(s, sizeof s, t->ndim, t->shape));
            return NULL;
        }
        if (!(op->flags & TG_OP_MIXED_DTYPES) && t->dtype != inputs[0]->dtype) {
            char d[1024];
            describe_inputs(d, sizeof d, inputs, n_inputs);
            tg_set_error(TG_ERR_DTYPE, "tg_%s: dtypes differ: %s", op->name, d);
            return NULL;
        }
        record |= t->requires_grad;
    }
    record &= !g->no_grad;

    tg_node tmp = {.op = op, .graph = g, .inputs = (tg_tensor **)inputs, .n_inputs = n_inputs,
                   .attrs = op->attr_size ? (void *)attrs : NULL};
    tg_shape shape = {.dtype = inputs[0]->dtype, .ndim = 0};
    int rc = op->shape(&tmp, &shape);
    if (rc != TG_OK) {
        prefix_op(op);
        return NULL;
    }
    tg_tensor *out = tg__arena_tensor(g, shape.dtype, shape.ndim, shape.dims, false);
    if (!out) {
        prefix_op(op);
        return NULL;
    }
    tg_node *node = &tmp;
    if (record) {
        node = tg__arena_alloc(g, sizeof *node, 16);
        tg_tensor **in = node ? tg__arena_alloc(g, (size_t)n_inputs * sizeof *in, 16) : NULL;
        void *at = (in && op->attr_size) ? tg__arena_alloc(g, op->attr_size, 16) : NULL;
        if (!node || !in || (op->attr_size && !at)) {
            prefix_op(op);
            return NULL;
        }
        memcpy(in, inputs, (size_t)n_inputs * sizeof *in);
        if (op->attr_size)
            memcpy(at, attrs, op->attr_size);
        *node = tmp;
        node->inputs = in;
        node->attrs = op->attr_size ? at : NULL;
        out->node = node;
        out->requires_grad = true;
        g->n_nodes++;
    }
    node->out = out;
    rc = op->forward(node);
    if (rc != TG_OK) {
        prefix_op(op);
        return NULL;
    }
    return out;
}

void *tg_node_save(tg_node *n, size_t bytes)
{
    n->saved = tg__arena_alloc(n->graph, bytes, TG_ALIGN);
    return n->saved;
}
