// bias_act: fused bias add, activation, gain and clamp over any dense layout, the bias
// broadcast along `dim`, with the two derivative kernels its nested autograd Functions
// need. b may be undefined (no bias).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

#include "bias_act_math.h"

namespace fastgan {

// y = clamp(gain * s(x + b), -clamp, clamp)
at::Tensor bias_act(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim,
                    c10::string_view act, double alpha, double gain, double clamp);

// Whether s' can be read from the output's sign, so that the backward saves only y:
// ReLU, and leaky ReLU with a slope alpha >= 0 (a negative slope makes y positive on
// both sides of 0), without clamp and with a positive gain.
bool slope_from_output(c10::string_view act, double alpha, double gain, double clamp);

bool slope_from_output(const BiasActSpec& spec);

// The activation named `name` (linear, relu, lrelu, tanh, sigmoid, softplus, silu, elu, gelu).
Act parse_act(c10::string_view name);

// The element loop of mode 0 (value), 1 (p * slope) or 2 (p * q * curvature) into a
// given `out` shaped and laid out like x. `out` may be x, p or q itself: every element
// is read before it is written. With x_is_y the slope is read from the output x.
void bias_act_into(const at::Tensor& out, int mode, const at::Tensor& x, const at::Tensor& p,
                   const at::Tensor& q, const c10::optional<at::Tensor>& b, int64_t dim,
                   const BiasActSpec& spec, bool x_is_y);

// dy * gain * s'(z) (0 where clamped), with z = ref + b, or, when ref_is_y, s' read
// from the output ref (only where slope_from_output holds).
at::Tensor bias_act_grad(const at::Tensor& dy, const at::Tensor& ref, const c10::optional<at::Tensor>& b,
                         int64_t dim, c10::string_view act, double alpha, double gain, double clamp,
                         bool ref_is_y);

// p * q * gain * s''(z) (0 where clamped), z = x + b.
at::Tensor bias_act_grad2(const at::Tensor& p, const at::Tensor& q, const at::Tensor& x,
                          const c10::optional<at::Tensor>& b, int64_t dim, c10::string_view act,
                          double alpha, double gain, double clamp);

namespace detail {
// The element loop shared by the three ops: mode 0 value, 1 slope, 2 curvature.
struct BiasActLoop {
  at::Tensor out, x, b, p, q;  // x: z's source (or y); p, q: the factors (dy, ...)
  int64_t channels = 1, channel_stride = 1;
  int mode = 0;
  bool x_is_y = false;
};
}  // namespace detail

}  // namespace fastgan
