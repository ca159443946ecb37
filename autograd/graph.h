/* The graph: one recorded forward pass, its arena, backward and detach.
 *
 * Every op takes the graph first. Tensors, nodes and saved data that ops create
 * live in the graph's arena: tg_graph_reset drops them all at once (keeping the
 * memory for the next pass) and tg_graph_free releases everything. The arena
 * grows in chunks as needed; it never fails because a fixed size ran out.
 *
 * Backward: tg_backward / tg_backward_with sort the nodes reachable from the
 * root (iteratively, no recursion) and run their VJPs in reverse topological
 * order, accumulating gradients with +=. Calling backward again on the same
 * graph is defined: the intermediate gradients are recomputed from zero and the
 * leaf gradients accumulate again (as PyTorch with retain_graph=True). */
#ifndef TG_GRAPH_H
#define TG_GRAPH_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_graph tg_graph;

tg_graph *tg_graph_new(void);
/* Drops every tensor and node the graph's ops created; keeps the arena memory. */
void tg_graph_reset(tg_graph *g);
void tg_graph_free(tg_graph *g);

/* No-grad switch: while on, ops record no nodes and outputs need no gradient.
 * Returns the previous setting. */
bool tg_graph_set_no_grad(tg_graph *g, bool no_grad);
bool tg_graph_no_grad(const tg_graph *g);

/* Number of nodes recorded since the last reset. */
int64_t tg_graph_n_nodes(const tg_graph *g);
/* Bytes the arena holds (reserved, used or not). */
size_t tg_graph_arena_bytes(const tg_graph *g);

/* A zero-filled tensor owned by the graph's arena (a constant in a pass). */
tg_tensor *tg_graph_tensor(tg_graph *g, tg_dtype dtype, int ndim, const int64_t *shape);
/* `bytes` of 64-byte aligned scratch from the arena, valid until reset. */
void *tg_graph_alloc(tg_graph *g, size_t bytes);

/* Backward from a root with one element (dL/droot = 1). */
int tg_backward(tg_graph *g, tg_tensor *root);
/* Backward from any root with dL/droot = cotangent (same shape and dtype). */
int tg_backward_with(tg_graph *g, tg_tensor *root, const tg_tensor *cotangent);

/* A tensor with x's values (storage shared, valid while x is) that records no
 * node and needs no gradient: gradients stop here. */
tg_tensor *tg_detach(tg_graph *g, tg_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
