/* torch_interop: checkpoints shared with PyTorch, both ways, for the main
 * job's LeNet. examples/torch_interop.py drives it:
 *
 *   torch_interop export DIR   writes DIR/tgrad_lenet.safetensors (tg_nn_save)
 *                              and DIR/tgrad_io.safetensors (a fixed input and
 *                              the logits tgrad computes for it)
 *   torch_interop import DIR   loads DIR/torch_lenet.safetensors (written by
 *                              PyTorch, no CRC) and checks tgrad's logits for
 *                              DIR/torch_io.safetensors' input against PyTorch's
 *
 *   make interop               runs both directions with Debian's python3-torch */
#include "lenet.h"
#include "nn/nn.h"
#include "nn/safetensors.h"
#include "tgrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Logits of the module for input x (eval mode, no graph recorded), copied out. */
static tg_tensor *logits_of(tg_nn_module *m, tg_tensor *x)
{
    tg_graph *g = tg_graph_new();
    tg_graph_set_no_grad(g, true);
    tg_nn_train(m, false);
    tg_tensor *z = tg_nn_forward(m, g, x);
    tg_tensor *out = z ? tg_tensor_copy(z, TG_F32) : NULL;
    tg_graph_free(g);
    return out;
}

static int export_dir(const char *dir)
{
    char path[1024];
    tg_nn_module *m = lenet_new(0, TG_F32);
    int64_t xs[] = {4, 1, 28, 28};
    tg_tensor *x = tg_tensor_new(TG_F32, 4, xs);
    for (int64_t i = 0; i < tg_tensor_numel(x); i++)
        tg_tensor_set(x, i, sin(0.37 * (double)i));
    tg_tensor *z = m ? logits_of(m, x) : NULL;
    int rc = z ? TG_OK : tg_last_status();
    if (rc == TG_OK) {
        snprintf(path, sizeof path, "%s/tgrad_lenet.safetensors", dir);
        rc = tg_nn_save(m, path);
    }
    if (rc == TG_OK) {
        tg_st_tensor io[2] = {{.name = "input", .dtype = TG_ST_F32, .ndim = 4, .data = tg_tensor_data(x)},
                              {.name = "logits", .dtype = TG_ST_F32, .ndim = 2, .data = tg_tensor_data(z)}};
        memcpy(io[0].shape, xs, sizeof xs);
        io[1].shape[0] = 4;
        io[1].shape[1] = 10;
        snprintf(path, sizeof path, "%s/tgrad_io.safetensors", dir);
        rc = tg_st_write(path, io, 2, NULL, 0);
    }
    if (rc != TG_OK)
        fprintf(stderr, "torch_interop export: %s\n", tg_last_error());
    else
        printf("tgrad: wrote %s/tgrad_lenet.safetensors and tgrad_io.safetensors\n", dir);
    tg_tensor_free(x);
    tg_tensor_free(z);
    tg_nn_module_free(m);
    return rc == TG_OK ? 0 : 1;
}

static int import_dir(const char *dir)
{
    char path[1024];
    tg_nn_module *m = lenet_new(123, TG_F32);
    snprintf(path, sizeof path, "%s/torch_lenet.safetensors", dir);
    int rc = m ? tg_nn_load_ex(m, path, TG_NN_LOAD_NO_CRC) : tg_last_status();
    snprintf(path, sizeof path, "%s/torch_io.safetensors", dir);
    tg_st_file *f = rc == TG_OK ? tg_st_read(path, 0) : NULL;
    const tg_st_tensor *in = f ? tg_st_find(f, "input") : NULL, *want = f ? tg_st_find(f, "logits") : NULL;
    if (rc == TG_OK && (!in || !want || in->dtype != TG_ST_F32 || want->dtype != TG_ST_F32 ||
                        in->ndim != 4 || want->ndim != 2)) {
        if (f)
            tg_set_error(TG_ERR_FORMAT, "%s: needs float32 \"input\" [N,1,28,28] and \"logits\" [N,10]", path);
        rc = tg_last_status() ? tg_last_status() : TG_ERR_FORMAT;
    }
    double max_diff = 0;
    if (rc == TG_OK) {
        tg_tensor *x = tg_tensor_from(TG_F32, 4, in->shape, in->data);
        tg_tensor *z = logits_of(m, x);
        if (!z || tg_tensor_numel(z) != want->shape[0] * want->shape[1]) {
            rc = TG_ERR_SHAPE;
        } else {
            const float *w = want->data;
            for (int64_t i = 0; i < tg_tensor_numel(z); i++)
                max_diff = fmax(max_diff, fabs(tg_tensor_get(z, i) - (double)w[i]));
        }
        tg_tensor_free(x);
        tg_tensor_free(z);
    }
    tg_st_close(f);
    tg_nn_module_free(m);
    if (rc != TG_OK) {
        fprintf(stderr, "torch_interop import: %s\n", tg_last_error());
        return 1;
    }
    printf("tgrad: PyTorch-written checkpoint loaded; logits max |tgrad - torch| = %.3g (%s 1e-5)\n",
           max_diff, max_diff <= 1e-5 ? "within" : "NOT within");
    return max_diff <= 1e-5 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "export"))
        return export_dir(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "import"))
        return import_dir(argv[2]);
    fprintf(stderr, "usage: torch_interop export|import DIR\n");
    return 2;
}
