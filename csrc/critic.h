// The fused MLP critic ops. One device-generic implementation: GEMMs go through ATen
// (MKL on the CPU, cuBLAS on the GPU) and the epilogues dispatch per device, so the CPU
// tests exercise the orchestration the CUDA path runs.
//
// `params` is the parameter list of nn.Sequential(Linear, act, ..., Linear(d, 1)):
// [W_1, b_1, ..., W_{L-1}, b_{L-1}, w_L, b_L], at least one hidden layer.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

#include <tuple>
#include <vector>

namespace fastgan {

// A critic's batch: exact_dim dimensions (2: an MLP's (batch, features)), or at least 2
// when exact_dim is 0; float or double (half and bfloat16 on CUDA too).
void check_batch(const at::Tensor& t, const char* name, int64_t exact_dim);

// A critic step's real and fake batches: each as above, alike in shape, dtype and
// device, not empty.
void check_real_fake(const at::Tensor& real, const at::Tensor& fake, int64_t exact_dim);

// D(x) for x of shape (N, d_0). Returns D (N, 1) and what the backward needs: the hidden
// activations h_1..h_{L-1}, then, for smooth activations, s'(a_1)..s'(a_{L-1}).
std::tuple<at::Tensor, std::vector<at::Tensor>> mlp_forward(
    const at::Tensor& x, at::TensorList params, c10::string_view act, double alpha);

// Vector-Jacobian product of mlp_forward with grad_out (N, 1). Returns
// [grad_x if input_grad] + [grad_W_1, grad_b_1, ..., grad_w_L, grad_b_L if param_grads].
std::vector<at::Tensor> mlp_backward(
    const at::Tensor& grad_out, const at::Tensor& x, at::TensorList params,
    at::TensorList saved, c10::string_view act, double alpha, bool input_grad,
    bool param_grads);

// One WGAN critic step (fused-gp-math.md). With eps (B,) it is the WGAN-GP loss
//   mean D(fake) - mean D(real) + lam * mean phi(|grad D(x^)|),
// without it the plain WGAN loss. Returns (loss, wasserstein = mean D(real) -
// mean D(fake), penalty = mean phi, gradients of the loss with respect to params, in
// the order of params, or an empty list when param_grads is false).
std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>> critic_step(
    const at::Tensor& real, const at::Tensor& fake, const c10::optional<at::Tensor>& eps,
    at::TensorList params, c10::string_view act, double alpha, double lam, double center,
    bool one_sided, bool param_grads);

}  // namespace fastgan
