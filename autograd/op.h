/* The op-definition struct and tg_apply: the one path every op takes,
 * the built-ins and a user's own alike.
 *
 * An op is one `const tg_op` value: a shape rule, a forward and a VJP.
 * tg_apply checks the inputs (NULL, dtypes), copies the attributes, runs the
 * shape rule, allocates the output in the graph's arena, records a node when an
 * input requires grad (and the graph is not in no-grad mode), and runs forward.
 *
 * Conventions for op writers (fixed names: N batch, C channels, H height,
 * W width, K kernel size, S stride):
 *  - shape(n, out): validate n's inputs and attributes, fill out->ndim and
 *    out->dims (out->dtype arrives as the inputs' dtype). On bad input return
 *    tg_set_error(TG_ERR_SHAPE, "...") describing the problem and the shapes;
 *    tg_apply prefixes "tg_<name>: ".
 *  - forward(n): write every element of n->out; may keep data for backward with
 *    tg_node_save. Returns 0 or a negative TG_ERR_*.
 *  - backward(n, dout): for each input i with tg_node_grad(n, i) != NULL,
 *    accumulate (+=, never assign) dL/dinput_i. dout has n->out's shape.
 *    Returns 0 or a negative TG_ERR_*. A VJP that can write every element
 *    may take the buffer with tg_node_grad_fresh instead and assign (=) when
 *    it is the first contribution, saving the zero-fill and a read. */
#ifndef TG_OP_H
#define TG_OP_H

#include "error.h"
#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_node tg_node;

typedef struct tg_shape {
    tg_dtype dtype;
    int ndim;
    int64_t dims[TG_MAX_DIMS];
} tg_shape;

#define TG_VARIADIC (-1) /* tg_op.n_inputs for ops taking any count >= 1 */

enum tg_op_flags {
    TG_OP_MIXED_DTYPES = 1 /* inputs may differ in dtype (the rule checks them) */
};

typedef struct tg_op {
    const char *name;  /* "matmul": messages read "tg_matmul: ..." */
    int n_inputs;      /* fixed count, or TG_VARIADIC */
    size_t attr_size;  /* bytes of the attribute struct tg_apply copies, or 0 */
    unsigned flags;    /* tg_op_flags */
    int (*shape)(const tg_node *n, tg_shape *out);
    int (*forward)(tg_node *n);
    int (*backward)(tg_node *n, const tg_tensor *dout);
    /* Optional: writes the attributes for graph dumps ("axis=1"). */
    void (*print_attrs)(const tg_node *n, char *buf, size_t size);
} tg_op;

/* One recorded application of an op. Ops read these fields; only the library
 * writes them (saved through tg_node_save). */
struct tg_node {
    const tg_op *op;
    tg_graph *graph;
    tg_tensor *out;
    tg_tensor **inputs;
    int n_inputs;
    void *attrs; /* the op's attribute struct (attr_size bytes), or NULL */
    void *saved; /* what forward kept for backward, or NULL */
    uint32_t mark; /* private to backward */
};

/* Runs `op` on the inputs. Returns the output tensor (in g's arena) or NULL
 * with tg_last_error() set. A NULL input gives NULL and keeps an earlier
 * error's message. */
tg_tensor *tg_apply(tg_graph *g, const tg_op *op, tg_tensor *const *inputs, int n_inputs,
                    const void *attrs);

/* For forward: `bytes` of 64-byte aligned arena memory, kept in n->saved and
 * returned (NULL on allocation failure, with the error set). */
void *tg_node_save(tg_node *n, size_t bytes);
/* For backward: the gradient buffer of input i (zero-filled the first time),
 * or NULL if input i needs no gradient. */
tg_tensor *tg_node_grad(tg_node *n, int i);
/* As tg_node_grad, but when input i's gradient has no contribution yet in
 * this backward the buffer is returned unfilled and *fresh is set: the VJP
 * must then write (=) every element. Otherwise *fresh is false and the VJP
 * accumulates (+=). A leaf's gradient (it accumulates across backwards) is
 * never fresh once it exists. */
tg_tensor *tg_node_grad_fresh(tg_node *n, int i, bool *fresh);
/* True when backward must produce a gradient for input i. */
bool tg_node_needs_grad(const tg_node *n, int i);

#ifdef __cplusplus
}
#endif
#endif
