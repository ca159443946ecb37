/* Internal to the library (not installed): the tensor and graph structs and the
 * helpers autograd/ shares between its files. ops/ uses only the public API. */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include "error.h"
#include "op.h"

struct tg_tensor {
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    void *data;
    tg_tensor *grad;    /* dL/dself, or NULL until a backward reaches it */
    tg_node *node;      /* the node that produced it, NULL for a leaf */
    tg_graph *graph;    /* owning arena, NULL for a heap leaf */
    bool requires_grad;
    bool grad_stale; /* grad holds an earlier backward's values: rewrite before use */
};

typedef struct tg__chunk {
    struct tg__chunk *next;
    unsigned char *mem; /* 64-byte aligned */
    size_t size;
    size_t used;
} tg__chunk;

typedef struct tg__frame {
    tg_node *node;
    int next_input;
} tg__frame;

struct tg_graph {
    tg__chunk *first; /* chunks in order; cur is the one being filled */
    tg__chunk *cur;
    size_t reserved;
    bool no_grad;
    bool failed;      /* an allocation failed inside backward */
    uint32_t epoch;   /* visit mark of the current backward */
    int64_t n_nodes;
    /* Backward's scratch, heap, kept across passes. */
    tg_node **order;
    size_t order_cap;
    tg__frame *stack;
    size_t stack_cap;
};

/* Arena allocation with the given power-of-two alignment (<= 64); NULL on OOM
 * with the error set. */
void *tg__arena_alloc(tg_graph *g, size_t bytes, size_t align);
/* Checks ndim and dims, returns numel through *numel; 0 or TG_ERR_*. The
 * message is prefixed with `who`. */
int tg__check_shape(const char *who, int ndim, const int64_t *shape, int64_t *numel);
/* A tensor in g's arena, data zeroed when `zero`. */
tg_tensor *tg__arena_tensor(tg_graph *g, tg_dtype dtype, int ndim, const int64_t *shape, bool zero);
/* A zeroed heap gradient for a heap leaf (same shape and dtype). */
tg_tensor *tg__heap_grad(const tg_tensor *t);

#endif
