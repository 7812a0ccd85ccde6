// The fused critic step of a chain of layers: linear, conv2d, bias_act, flatten,
// avgpool and layernorm (fused-gp-math.md, "Convolutional layers"). One device-generic
// orchestration: ATen for GEMMs, convolutions, pooling and LayerNorm's row statistics,
// fastgan's bias_act kernels for the activations.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Optional.h>

#include <tuple>
#include <vector>

namespace fastgan {

// Layer kinds, and the width of a layer's records in `ints` and `floats`.
enum class LayerKind : int64_t { Linear = 0, Conv2d = 1, Act = 2, Flatten = 3, AvgPool = 4, LayerNorm = 5 };
constexpr int64_t kLayerInts = 8;
constexpr int64_t kLayerFloats = 3;

// The losses of a chain step.
//   0 wgan:    mean D(fake) - mean D(real)
//   1 wgan-gp: the same + lam * mean phi(|grad D(x^)|), x^ = eps real + (1 - eps) fake
//   2 r1:      mean softplus(D(fake)) + mean softplus(-D(real)) + lam * mean |grad D(real)|^2
//              (lam = gamma / 2; center and one_sided unused)
enum class ChainLoss : int64_t { WGAN = 0, WGANGP = 1, R1 = 2 };

// One critic step of the chain described by `ints` (kLayerInts per layer) and `floats`
// (kLayerFloats per layer), its parameters in `params` in layer order (weight, then
// bias, where the layer has them). Records:
//   linear    [0, has_bias]
//   conv2d    [1, has_bias, stride h, w, padding h, w, dilation h, w]
//   act       [2, has_bias, activation code (activation_math.h)]  floats [alpha, gain, clamp]
//   flatten   [3]
//   avgpool   [4, ceil_mode | count_include_pad << 1, kernel h, w, stride h, w, padding h, w]
//   layernorm [5, has_weight | has_bias << 1]  floats [eps]
// The chain's output must be one value per sample. `eps` (B,) is given for wgan-gp
// only. Returns (loss, wasserstein = mean D(real) - mean D(fake), penalty = mean phi
// or mean |grad D(real)|^2, the loss's gradients with respect to params, or an empty
// list when param_grads is false). With `triton` the elementwise kernels are the Triton
// ones registered by fastgan/kernels/chain_elementwise.py (imported first).
std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>> chain_step(
    const at::Tensor& real, const at::Tensor& fake, const c10::optional<at::Tensor>& eps,
    at::TensorList params, at::IntArrayRef ints, at::ArrayRef<double> floats, int64_t loss,
    double lam, double center, bool one_sided, bool param_grads, bool triton);

}  // namespace fastgan
