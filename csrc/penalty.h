// The gradient penalty's row op: per-sample norms of a batch of gradients, the mean of
// phi over the batch, and its gradient with respect to the gradients.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace fastgan {

// g: (B, ...) per-sample gradients. Returns mean_i phi(||g_i||), with
// phi(n) = (n - center)^2 or max(0, n - center)^2, and u = d(mean phi)/dg =
// phi'(||g_i||) g_i / (B ||g_i||) (0 where ||g_i|| = 0), shaped like g.
std::tuple<at::Tensor, at::Tensor> row_penalty(const at::Tensor& g, double center, bool one_sided);

}  // namespace fastgan
