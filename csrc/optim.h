// Fused in-place parameter updates over lists of tensors: weight clipping and the
// RMSprop step followed by the clamp (WGAN). One call per dtype group: every tensor
// of a call has the same dtype and device and is contiguous.
#pragma once

#include <ATen/core/Tensor.h>

namespace fastgan {

// params[i].clamp_(-c, c) for every i.
void clip_(at::TensorList params, double c);

// torch.optim.RMSprop's step (weight decay, centered, momentum as torch has them) and
// then clamp_(-clip, clip), in one pass over each tensor. grad_avgs is empty unless
// centered, momentum_buffers empty unless momentum > 0.
void clipped_rmsprop_(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                      at::TensorList grad_avgs, at::TensorList momentum_buffers, double lr,
                      double alpha, double eps, double weight_decay, double momentum,
                      bool centered, double clip);

}  // namespace fastgan
