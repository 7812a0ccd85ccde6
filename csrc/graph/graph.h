// The fused critic step of a graph of layer nodes (shared/docs/fused-gp-math.md,
// "Graphs of layers"): every per-sample critic fastgan runs fused, from an MLP to a
// residual network, is one such graph. One device-generic orchestration (graph.cpp)
// walks the nodes; each node kind is one unit of this folder (unit.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Optional.h>

#include <tuple>
#include <vector>

namespace fastgan {

// The losses of a graph step.
//   0 wgan:    mean D(fake) - mean D(real)
//   1 wgan-gp: the same + lam * mean phi(|grad D(x^)|), x^ = eps real + (1 - eps) fake
//   2 r1:      mean softplus(D(fake)) + mean softplus(-D(real)) + lam * mean |grad D(real)|^2
//              + lam2 * mean |grad D(fake)|^2 (R2, when lam2 > 0); center and one_sided unused
enum class GraphLoss : int64_t { WGAN = 0, WGANGP = 1, R1 = 2 };

// One critic step of the graph described by `ints` (graph::kNodeInts per node: kind,
// input values, flags, 8 kind-specific integers) and `floats` (graph::kNodeFloats per
// node), the nodes in topological order, the last one the critic's output (one value
// per sample); value 0 is the batch, node i's output value i + 1. Its parameters are
// `params`, in node order. `eps` (B,) is given for wgan-gp only; `labels` (2B,), the
// real then the fake batch's int64 classes, for a graph with a projection node (the
// interpolates take their real sample's class). Returns (loss,
// wasserstein = mean D(real) - mean D(fake), penalty = mean phi, or for r1 mean
// |grad D(real)|^2 plus, with R2, mean |grad D(fake)|^2, the loss's gradients with
// respect to params, or an empty list when param_grads is false). With `triton` the
// elementwise kernels are the Triton ones registered by
// fastgan/kernels/chain_elementwise.py (imported first).
std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>> graph_step(
    const at::Tensor& real, const at::Tensor& fake, const c10::optional<at::Tensor>& eps,
    const c10::optional<at::Tensor>& labels, at::TensorList params, at::IntArrayRef ints,
    at::ArrayRef<double> floats, int64_t loss,
    double lam, double lam2, double center, bool one_sided, bool param_grads, bool triton);

}  // namespace fastgan
