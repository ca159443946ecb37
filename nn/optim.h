/* Internal to nn/: the optimizer struct, shared by optim.c (updates) and
 * checkpoint.c (saving and resuming the state). Not installed. */
#ifndef TG_NN_OPTIM_H
#define TG_NN_OPTIM_H

#include "nn.h"

typedef enum tg_nn_optim_kind {
    TG_NN_OPTIM_SGD = 0,
    TG_NN_OPTIM_ADAM = 1,
    TG_NN_OPTIM_ADAMW = 2
} tg_nn_optim_kind;

/* One parameter's state. SGD: buf[0] momentum_buffer. Adam/AdamW: buf[0]
 * exp_avg, buf[1] exp_avg_sq, buf[2] max_exp_avg_sq (PyTorch's state names). */
typedef struct tg__optim_slot {
    tg_tensor *param;
    const char *name; /* the module's state-dict name (borrowed) */
    tg_tensor *buf[3];
    bool has_state;   /* buffers hold state (PyTorch: the state entry exists) */
    int64_t steps;    /* Adam's per-parameter step */
} tg__optim_slot;

struct tg_nn_optim {
    tg_nn_optim_kind kind;
    tg_nn_module *module;
    tg__optim_slot *slots;
    int n;
    double lr;
    int64_t n_steps;
    tg_nn_sgd_args sgd;
    tg_nn_adam_args adam;
};

#endif
