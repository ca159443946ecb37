/* The main job's LeNet-style CNN, shared by the examples and the benchmarks:
 *   conv 1->32 3x3 pad 1, relu, maxpool 2; conv 32->64 3x3 pad 1, relu,
 *   maxpool 2; flatten; linear 3136->128, relu; linear 128->10
 * the same layers (and state-dict names) as PyTorch's
 *   nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
 *                 nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
 *                 nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10)) */
#ifndef TG_EXAMPLES_LENET_H
#define TG_EXAMPLES_LENET_H

#include "nn/nn.h"

/* NULL with tg_last_error() on failure. */
static inline tg_nn_module *lenet_new(uint64_t seed, tg_dtype dtype)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed, 0);
    tg_conv2d_args pad1 = {.padding = {1, 1}};
    tg_pool2d_args pool2 = {.kernel = {2, 2}};
    tg_nn_module *layers[] = {
        tg_nn_conv2d_new(1, 32, 3, 3, pad1, true, dtype, &rng),
        tg_nn_relu_new(),
        tg_nn_maxpool2d_new(pool2),
        tg_nn_conv2d_new(32, 64, 3, 3, pad1, true, dtype, &rng),
        tg_nn_relu_new(),
        tg_nn_maxpool2d_new(pool2),
        tg_nn_flatten_new(1),
        tg_nn_linear_new(3136, 128, true, dtype, &rng),
        tg_nn_relu_new(),
        tg_nn_linear_new(128, 10, true, dtype, &rng),
    };
    return tg_nn_sequential_new((int)(sizeof layers / sizeof layers[0]), layers);
}

#endif
