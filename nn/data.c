/* Data: MNIST / Fashion-MNIST from IDX files (nn/idx.c parses and validates
 * them) into a normalised float32 dataset, and the mini-batch loader with a
 * seeded shuffle (Fisher-Yates on the library's generator). */
#include "idx.h"
#include "nn.h"

#include <stdlib.h>
#include <string.h>

int tg_nn_mnist_load(tg_nn_dataset *ds, const char *images_path, const char *labels_path,
                     double mean, double std)
{
    const char *who = "tg_nn_mnist_load";
    if (!ds || !images_path || !labels_path)
        return tg_set_error(TG_ERR_NULL, "%s: dataset or path is NULL", who);
    memset(ds, 0, sizeof *ds);
    if (!(std > 0))
        return tg_set_error(TG_ERR_ARG, "%s: std must be positive, got %g", who, std);
    tg_idx *im = tg_idx_read(images_path);
    tg_idx *lb = im ? tg_idx_read(labels_path) : NULL;
    int rc = TG_OK;
    if (!im || !lb) {
        tg_error_prefix("tg_nn_mnist_load: ");
        rc = tg_last_status();
    } else if (im->ndim != 3 || lb->ndim != 1 || im->dims[0] != lb->dims[0]) {
        char a[TG_SHAPE_STR_MAX], b[TG_SHAPE_STR_MAX];
        rc = tg_set_error(TG_ERR_FORMAT,
                          "%s: images %s have shape %s and labels %s have shape %s; expected [N, "
                          "H, W] and [N]",
                          who, images_path, tg_shape_format(a, sizeof a, im->ndim, im->dims),
                          labels_path, tg_shape_format(b, sizeof b, lb->ndim, lb->dims));
    }
    for (int64_t i = 0; rc == TG_OK && i < lb->numel; i++)
        if (lb->data[i] > 9)
            rc = tg_set_error(TG_ERR_FORMAT, "%s: %s: label %d at index %lld is not a class 0..9",
                              who, labels_path, lb->data[i], (long long)i);
    if (rc == TG_OK) {
        ds->n = im->dims[0];
        ds->c = 1;
        ds->h = im->dims[1];
        ds->w = im->dims[2];
        ds->mean = mean;
        ds->std = std;
        ds->labels = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ds->labels);
        if (!ds->labels) {
            tg_nn_dataset_free(ds);
            rc = tg_set_error(TG_ERR_NOMEM, "%s: out of memory", who);
        }
    }
    if (rc == TG_OK) {
        /* Keep the image bytes: take them over from the IDX buffer. */
        ds->pixels = im->data;
        im->data = NULL;
        for (int64_t i = 0; i < ds->n; i++)
            ds->labels[i] = lb->data[i];
    }
    tg_idx_free(im);
    tg_idx_free(lb);
    return rc;
}

void tg_nn_dataset_free(tg_nn_dataset *ds)
{
    if (!ds)
        return;
    free(ds->pixels);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

struct tg_nn_loader {
    const tg_nn_dataset *ds;
    int64_t batch;
    bool shuffle;
    tg_rng rng;
    int64_t *perm;
    int64_t *labels; /* the current batch's labels */
    int64_t pos;
};

tg_nn_loader *tg_nn_loader_new(const tg_nn_dataset *ds, int64_t batch, bool shuffle, uint64_t seed)
{
    if (!ds || !ds->pixels || batch <= 0) {
        tg_set_error(TG_ERR_ARG, "tg_nn_loader_new: needs a loaded dataset and batch > 0 (batch %lld)",
                     (long long)batch);
        return NULL;
    }
    tg_nn_loader *l = calloc(1, sizeof *l);
    int64_t n = ds->n ? ds->n : 1;
    if (l) {
        l->perm = malloc((size_t)n * sizeof *l->perm);
        l->labels = malloc((size_t)(batch < n ? batch : n) * sizeof *l->labels);
    }
    if (!l || !l->perm || !l->labels) {
        tg_nn_loader_free(l);
        tg_set_error(TG_ERR_NOMEM, "tg_nn_loader_new: out of memory");
        return NULL;
    }
    l->ds = ds;
    l->batch = batch;
    l->shuffle = shuffle;
    tg_rng_seed(&l->rng, seed, 0x6c6f6164);
    tg_nn_loader_reset(l);
    return l;
}

void tg_nn_loader_free(tg_nn_loader *l)
{
    if (!l)
        return;
    free(l->perm);
    free(l->labels);
    free(l);
}

void tg_nn_loader_reset(tg_nn_loader *l)
{
    if (!l)
        return;
    int64_t n = l->ds->n;
    for (int64_t i = 0; i < n; i++)
        l->perm[i] = i;
    if (l->shuffle)
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)tg_rng_below(&l->rng, (uint64_t)i + 1);
            int64_t t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
    l->pos = 0;
}

int64_t tg_nn_loader_n_batches(const tg_nn_loader *l)
{
    return l ? (l->ds->n + l->batch - 1) / l->batch : 0;
}

tg_tensor *tg_nn_loader_next(tg_nn_loader *l, tg_graph *g, const int64_t **labels)
{
    if (!l || !g) {
        tg_set_error(TG_ERR_NULL, "tg_nn_loader_next: loader or graph is NULL");
        return NULL;
    }
    if (l->pos >= l->ds->n)
        return NULL;
    const tg_nn_dataset *ds = l->ds;
    int64_t b = ds->n - l->pos < l->batch ? ds->n - l->pos : l->batch;
    int64_t shape[] = {b, ds->c, ds->h, ds->w};
    tg_tensor *x = tg_graph_tensor(g, TG_F32, 4, shape);
    if (!x)
        return NULL;
    int64_t per = ds->c * ds->h * ds->w;
    float *dst = tg_tensor_data(x);
    const float scale = (float)(1.0 / (255.0 * ds->std)), shift = (float)(ds->mean / ds->std);
    for (int64_t i = 0; i < b; i++) {
        int64_t k = l->perm[l->pos + i];
        const uint8_t *src = ds->pixels + k * per;
        for (int64_t j = 0; j < per; j++)
            dst[i * per + j] = (float)src[j] * scale - shift;
        l->labels[i] = ds->labels[k];
    }
    l->pos += b;
    if (labels)
        *labels = l->labels;
    return x;
}
