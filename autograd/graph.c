/* The graph: its chunked arena, reset, backward (iterative topological sort and
 * VJPs in reverse order) and detach. tg_apply, which records nodes, is in apply.c. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ arena */

/* Under AddressSanitizer the unused and reset parts of the arena are poisoned,
 * so reading a tensor after tg_graph_reset is reported as a use-after-free. */
#if defined(__SANITIZE_ADDRESS__)
#define TG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_ASAN 1
#endif
#endif
#ifdef TG_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define POISON(p, n) __asan_poison_memory_region((p), (n))
#define UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK_MIN ((size_t)1 << 16)

static tg__chunk *chunk_new(size_t size)
{
    tg__chunk *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    size = (size + TG_ALIGN - 1) / TG_ALIGN * TG_ALIGN;
    c->mem = aligned_alloc(TG_ALIGN, size);
    if (!c->mem) {
        free(c);
        return NULL;
    }
    c->size = size;
    c->used = 0;
    c->next = NULL;
    POISON(c->mem, size);
    return c;
}

static void chunk_free(tg__chunk *c)
{
    if (!c)
        return;
    UNPOISON(c->mem, c->size);
    free(c->mem);
    free(c);
}

void *tg__arena_alloc(tg_graph *g, size_t bytes, size_t align)
{
    tg__chunk *c = g->cur;
    for (;;) {
        size_t at = (c->used + align - 1) & ~(align - 1);
        if (at <= c->size && bytes <= c->size - at) {
            c->used = at + bytes;
            UNPOISON(c->mem + at, bytes ? bytes : 1);
            g->cur = c;
            return c->mem + at;
        }
        if (!c->next)
            break;
        c = c->next; /* chunks after cur are empty (kept from before a reset) */
    }
    /* Grow: a new chunk at least twice the last one, and big enough. */
    size_t want = c->size > SIZE_MAX / 2 ? SIZE_MAX : c->size * 2;
    if (bytes > SIZE_MAX - 2 * TG_ALIGN) {
        tg_set_error(TG_ERR_NOMEM, "arena: allocation of %zu bytes is too large", bytes);
        return NULL;
    }
    if (want < bytes + align)
        want = bytes + align;
    tg__chunk *n = chunk_new(want);
    if (!n) {
        tg_set_error(TG_ERR_NOMEM, "arena: out of memory growing by %zu bytes", want);
        return NULL;
    }
    c->next = n;
    g->reserved += n->size;
    g->cur = n;
    n->used = bytes;
    UNPOISON(n->mem, bytes ? bytes : 1);
    return n->mem;
}

tg_graph *tg_graph_new(void)
{
    tg_graph *g = calloc(1, sizeof *g);
    if (!g) {
        tg_set_error(TG_ERR_NOMEM, "tg_graph_new: out of memory");
        return NULL;
    }
    g->first = g->cur = chunk_new(CHUNK_MIN);
    if (!g->first) {
        free(g);
        tg_set_error(TG_ERR_NOMEM, "tg_graph_new: out of memory");
        return NULL;
    }
    g->reserved = g->first->size;
    g->epoch = 1;
    return g;
}

void tg_graph_reset(tg_graph *g)
{
    if (!g)
        return;
    /* Rewind every chunk and keep them all: a pass that repeats the previous
     * one's requests lands in the same chunks and allocates nothing. (Merging
     * the chunks into one would cost an allocation in the second pass.) */
    for (tg__chunk *c = g->first; c; c = c->next) {
        c->used = 0;
        POISON(c->mem, c->size);
    }
    g->cur = g->first;
    g->n_nodes = 0;
    g->failed = false;
}

void tg_graph_free(tg_graph *g)
{
    if (!g)
        return;
    for (tg__chunk *c = g->first, *next; c; c = next) {
        next = c->next;
        chunk_free(c);
    }
    free(g->order);
    free(g->stack);
    free(g);
}

bool tg_graph_set_no_grad(tg_graph *g, bool no_grad)
{
    if (!g)
        return false;
    bool old = g->no_grad;
    g->no_grad = no_grad;
    return old;
}

bool tg_graph_no_grad(const tg_graph *g) { return g && g->no_grad; }
int64_t tg_graph_n_nodes(const tg_graph *g) { return g ? g->n_nodes : 0; }
size_t tg_graph_arena_bytes(const tg_graph *g) { return g ? g->reserved : 0; }

void *tg_graph_alloc(tg_graph *g, size_t bytes)
{
    if (!g) {
        tg_set_error(TG_ERR_NULL, "tg_graph_alloc: graph is NULL");
        return NULL;
    }
    return tg__arena_alloc(g, bytes, TG_ALIGN);
}

tg_tensor *tg__arena_tensor(tg_graph *g, tg_dtype dtype, int ndim, const int64_t *shape, bool zero)
{
    int64_t numel;
    if (tg__check_shape("tg_graph_tensor", ndim, shape, &numel))
        return NULL;
    tg_tensor *t = tg__arena_alloc(g, sizeof *t, 16);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    size_t bytes = (size_t)numel * tg_dtype_size(dtype);
    t->data = tg__arena_alloc(g, bytes, TG_ALIGN);
    if (!t->data)
        return NULL;
    if (zero)
        memset(t->data, 0, bytes);
    t->dtype = dtype;
    t->ndim = ndim;
    if (ndim > 0)
        memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    t->graph = g;
    return t;
}

tg_tensor *tg_graph_tensor(tg_graph *g, tg_dtype dtype, int ndim, const int64_t *shape)
{
    if (!g) {
        tg_set_error(TG_ERR_NULL, "tg_graph_tensor: graph is NULL");
        return NULL;
    }
    if (dtype != TG_F32 && dtype != TG_F64) {
        tg_set_error(TG_ERR_DTYPE, "tg_graph_tensor: unknown dtype %d", (int)dtype);
        return NULL;
    }
    return tg__arena_tensor(g, dtype, ndim, shape, true);
}

tg_tensor *tg_detach(tg_graph *g, tg_tensor *x)
{
    if (!x) {
        if (tg_last_status() == TG_OK)
            tg_set_error(TG_ERR_NULL, "tg_detach: input is NULL");
        return NULL;
    }
    if (!g) {
        tg_set_error(TG_ERR_NULL, "tg_detach: graph is NULL");
        return NULL;
    }
    tg_tensor *t = tg__arena_alloc(g, sizeof *t, 16);
    if (!t)
        return NULL;
    *t = *x;
    t->grad = NULL;
    t->grad_stale = false;
    t->node = NULL;
    t->graph = g;
    t->requires_grad = false;
    return t;
}

/* --------------------------------------------------------------- backward */

/* Input i's gradient buffer. A buffer with no contributions yet in this
 * backward (new, or an intermediate's from an earlier backward) is handed out
 * unfilled with *fresh = true when the caller takes that, else zero-filled. */
static tg_tensor *node_grad(tg_node *n, int i, bool *fresh)
{
    tg_tensor *t = n->inputs[i];
    if (fresh)
        *fresh = false;
    if (!t->requires_grad)
        return NULL;
    if (!t->grad) {
        t->grad = t->graph ? tg__arena_tensor(n->graph, t->dtype, t->ndim, t->shape, !fresh)
                           : tg__heap_grad(t);
        if (!t->grad) {
            n->graph->failed = true;
            return NULL;
        }
        if (fresh)
            *fresh = t->graph != NULL;
    } else if (t->grad_stale) {
        if (fresh)
            *fresh = true;
        else
            memset(t->grad->data, 0, (size_t)t->numel * tg_dtype_size(t->dtype));
    }
    t->grad_stale = false;
    return t->grad;
}

tg_tensor *tg_node_grad(tg_node *n, int i) { return node_grad(n, i, NULL); }

tg_tensor *tg_node_grad_fresh(tg_node *n, int i, bool *fresh)
{
    bool dummy;
    return node_grad(n, i, fresh ? fresh : &dummy);
}

bool tg_node_needs_grad(const tg_node *n, int i)
{
    return i >= 0 && i < n->n_inputs && n->inputs[i]->requires_grad;
}

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return TG_OK;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    void *p = realloc(*buf, n * elem);
    if (!p)
        return tg_set_error(TG_ERR_NOMEM, "tg_backward: out of memory sorting %zu nodes", need);
    *buf = p;
    *cap = n;
    return TG_OK;
}

/* Post-order DFS from root's node with an explicit stack: each node is listed
 * after every node it depends on. Returns the count or a negative error. */
static int64_t topo_sort(tg_graph *g, tg_node *root)
{
    size_t n_order = 0, depth = 0;
    if (grow((void **)&g->stack, &g->stack_cap, 1, sizeof *g->stack))
        return TG_ERR_NOMEM;
    root->mark = g->epoch;
    g->stack[depth++] = (tg__frame){root, 0};
    while (depth) {
        tg__frame *f = &g->stack[depth - 1];
        if (f->next_input < f->node->n_inputs) {
            tg_tensor *in = f->node->inputs[f->next_input++];
            tg_node *m = in->node;
            if (m && in->requires_grad && m->mark != g->epoch) {
                m->mark = g->epoch;
                if (grow((void **)&g->stack, &g->stack_cap, depth + 1, sizeof *g->stack))
                    return TG_ERR_NOMEM;
                g->stack[depth++] = (tg__frame){m, 0};
            }
        } else {
            if (grow((void **)&g->order, &g->order_cap, n_order + 1, sizeof *g->order))
                return TG_ERR_NOMEM;
            g->order[n_order++] = f->node;
            depth--;
        }
    }
    return (int64_t)n_order;
}

static void add_into(tg_tensor *dst, const tg_tensor *src)
{
    if (dst->dtype == TG_F64) {
        double *d = dst->data;
        const double *s = src->data;
        for (int64_t i = 0; i < dst->numel; i++)
            d[i] += s[i];
    } else {
        float *d = dst->data;
        const float *s = src->data;
        for (int64_t i = 0; i < dst->numel; i++)
            d[i] += s[i];
    }
}

/* A gradient no path reached in this backward reads as zero, as before. */
static void clear_stale(tg_graph *g, int64_t n_order)
{
    for (int64_t k = 0; k < n_order; k++) {
        tg_tensor *o = g->order[k]->out;
        if (o->grad_stale) {
            memset(o->grad->data, 0, (size_t)o->numel * tg_dtype_size(o->dtype));
            o->grad_stale = false;
        }
    }
}

static int backward_run(tg_graph *g, tg_tensor *root, const tg_tensor *cot, const char *who)
{
    char s1[TG_SHAPE_STR_MAX], s2[TG_SHAPE_STR_MAX];
    if (!g)
        return tg_set_error(TG_ERR_NULL, "%s: graph is NULL", who);
    if (!root) {
        if (tg_last_status() == TG_OK)
            tg_set_error(TG_ERR_NULL, "%s: root is NULL", who);
        return tg_last_status();
    }
    if (root->graph && root->graph != g)
        return tg_set_error(TG_ERR_ARG, "%s: root %s belongs to another graph", who,
                            tg_shape_format(s1, sizeof s1, root->ndim, root->shape));
    if (!root->requires_grad)
        return tg_set_error(TG_ERR_GRAD,
                            "%s: root %s does not require grad (no input of its graph does, or "
                            "no-grad mode was on)",
                            who, tg_shape_format(s1, sizeof s1, root->ndim, root->shape));
    if (cot) {
        if (cot->dtype != root->dtype || cot->ndim != root->ndim ||
            memcmp(cot->shape, root->shape, (size_t)root->ndim * sizeof *root->shape) != 0)
            return tg_set_error(TG_ERR_SHAPE, "%s: cotangent %s %s does not match root %s %s", who,
                                tg_dtype_name(cot->dtype),
                                tg_shape_format(s1, sizeof s1, cot->ndim, cot->shape),
                                tg_dtype_name(root->dtype),
                                tg_shape_format(s2, sizeof s2, root->ndim, root->shape));
    } else if (root->numel != 1) {
        return tg_set_error(TG_ERR_GRAD,
                            "%s: root %s has %lld elements; use tg_backward_with and a cotangent",
                            who, tg_shape_format(s1, sizeof s1, root->ndim, root->shape),
                            (long long)root->numel);
    }

    g->failed = false;
    if (++g->epoch == 0)
        g->epoch = 1;
    int64_t n_order = 0;
    if (root->node) {
        n_order = topo_sort(g, root->node);
        if (n_order < 0)
            return (int)n_order;
    }
    /* Intermediate gradients start over on every backward: an earlier
     * backward's buffer is marked stale and rewritten on first use. */
    for (int64_t k = 0; k < n_order; k++) {
        tg_tensor *o = g->order[k]->out;
        o->grad_stale = o->grad != NULL;
    }
    if (!root->grad) {
        root->grad = root->graph ? tg__arena_tensor(g, root->dtype, root->ndim, root->shape, true)
                                 : tg__heap_grad(root);
        if (!root->grad) {
            tg_error_prefix("tg_backward: ");
            return tg_last_status();
        }
    } else if (root->grad_stale) {
        memset(root->grad->data, 0, (size_t)root->numel * tg_dtype_size(root->dtype));
    }
    root->grad_stale = false;
    if (cot) {
        add_into(root->grad, cot);
    } else if (root->dtype == TG_F64) {
        ((double *)root->grad->data)[0] += 1.0;
    } else {
        ((float *)root->grad->data)[0] += 1.0f;
    }
    for (int64_t k = n_order - 1; k >= 0; k--) {
        tg_node *n = g->order[k];
        if (!n->out->grad || n->out->grad_stale)
            continue; /* nothing reached it: its gradient is zero */
        int rc = n->op->backward(n, n->out->grad);
        if (rc == TG_OK && g->failed)
            rc = tg_last_status();
        if (rc != TG_OK) {
            char prefix[96];
            snprintf(prefix, sizeof prefix, "%s: in the VJP of tg_%s: ", who, n->op->name);
            tg_error_prefix(prefix);
            clear_stale(g, n_order);
            return rc;
        }
    }
    clear_stale(g, n_order);
    return TG_OK;
}

int tg_backward(tg_graph *g, tg_tensor *root) { return backward_run(g, root, NULL, "tg_backward"); }

int tg_backward_with(tg_graph *g, tg_tensor *root, const tg_tensor *cotangent)
{
    if (!cotangent)
        return tg_set_error(TG_ERR_NULL, "tg_backward_with: cotangent is NULL");
    return backward_run(g, root, cotangent, "tg_backward_with");
}
