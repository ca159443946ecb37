/* Parameter initialisation with PyTorch's formulas (torch.nn.init), drawing
 * from the library's seeded generator. The numbers differ from PyTorch's (its
 * generator is another), the distributions do not. */
#include "nn.h"

#include <math.h>

void tg_nn_init_uniform(tg_tensor *t, double lo, double hi, tg_rng *rng)
{
    if (!t || !rng)
        return;
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i, lo + (hi - lo) * tg_rng_uniform(rng));
}

static void init_normal(tg_tensor *t, double std, tg_rng *rng)
{
    if (!t || !rng)
        return;
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i, std * tg_rng_normal(rng));
}

/* calculate_gain('leaky_relu', a) */
static double leaky_gain(double a) { return sqrt(2.0 / (1.0 + a * a)); }

void tg_nn_init_kaiming_uniform(tg_tensor *t, double a, int64_t fan_in, tg_rng *rng)
{
    double bound = sqrt(3.0) * leaky_gain(a) / sqrt((double)(fan_in > 0 ? fan_in : 1));
    tg_nn_init_uniform(t, -bound, bound, rng);
}

void tg_nn_init_kaiming_normal(tg_tensor *t, double a, int64_t fan_in, tg_rng *rng)
{
    init_normal(t, leaky_gain(a) / sqrt((double)(fan_in > 0 ? fan_in : 1)), rng);
}

void tg_nn_init_xavier_uniform(tg_tensor *t, int64_t fan_in, int64_t fan_out, double gain,
                               tg_rng *rng)
{
    double b = gain * sqrt(6.0 / (double)(fan_in + fan_out > 0 ? fan_in + fan_out : 1));
    tg_nn_init_uniform(t, -b, b, rng);
}

void tg_nn_init_xavier_normal(tg_tensor *t, int64_t fan_in, int64_t fan_out, double gain,
                              tg_rng *rng)
{
    init_normal(t, gain * sqrt(2.0 / (double)(fan_in + fan_out > 0 ? fan_in + fan_out : 1)), rng);
}
