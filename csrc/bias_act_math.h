// Per-element math of bias_act, shared by its CPU and CUDA kernels:
//   y = clamp(gain * s(x + b), -clamp, clamp)        (clamp < 0: no clamp)
// and the factors of its first and second derivatives.
#pragma once

#include "activation_math.h"

namespace fastgan {

struct BiasActSpec {
  Act act;
  double alpha, gain, clamp;
};

// Where the clamp is active the derivatives are 0 (torch.clamp's backward passes the
// gradient on [-clamp, clamp], ends included).
template <typename T>
FASTGAN_HD T bias_act_value(T z, const BiasActSpec& spec, T* slope = nullptr, T* curvature = nullptr) {
  T s = T(0), ds = T(0), d2s = T(0);  // set by activation(); zeroed for the compiler
  activation(spec.act, static_cast<T>(spec.alpha), z, s, ds, d2s);
  const T gain = static_cast<T>(spec.gain), y = gain * s;
  const bool inside = spec.clamp < 0 || (y <= static_cast<T>(spec.clamp) && y >= static_cast<T>(-spec.clamp));
  if (slope) *slope = inside ? gain * ds : T(0);
  if (curvature) *curvature = inside ? gain * d2s : T(0);
  if (spec.clamp < 0) return y;
  const T c = static_cast<T>(spec.clamp);
  return y > c ? c : (y < -c ? -c : y);
}

// gain * s'(z) from the output y (ReLU and leaky ReLU without clamp, gain > 0: the
// sign of y is the sign of z).
template <typename T>
FASTGAN_HD T bias_act_slope_from_output(T y, const BiasActSpec& spec) {
  return static_cast<T>(spec.gain) * derivative_from_saved(spec.act, static_cast<T>(spec.alpha), y);
}

}  // namespace fastgan
