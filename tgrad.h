/* tgrad: reverse-mode automatic differentiation over a dynamic graph of tensors.
 * The one public header: tensors, the graph and backward, the op-definition
 * struct for custom ops, gradcheck, the generator and the built-in ops. */
#ifndef TGRAD_H
#define TGRAD_H

#include "autograd/error.h"
#include "autograd/tensor.h"
#include "autograd/graph.h"
#include "autograd/op.h"
#include "autograd/gradcheck.h"
#include "autograd/rng.h"
#include "ops/ops.h"

#endif
