// Per-element math of the fused optimizer steps, shared by the CPU and CUDA kernels.
// Each line mirrors one ATen op of torch.optim.RMSprop's single-tensor step, rounding
// where it rounds: ATen's CPU kernels evaluate addcmul, add(alpha=) and lerp with a
// fused multiply-add and addcdiv without one, so the fused step matches torch's bit for
// bit (the C++ sources are compiled with -ffp-contract=off; fma() is explicit).
#pragma once

#include "activation_math.h"

namespace fastgan {

using std::fma;

struct RMSpropConfig {
  double lr, alpha, eps, weight_decay, momentum, clip;
  bool centered;
};

// The step is split where torch's CPU step calls sqrt: ATen's CPU sqrt is MKL's, which
// is not correctly rounded, so to match torch bit for bit the CPU path takes the square
// root of `radicand` with ATen between the two halves. CUDA's sqrt is correctly
// rounded, and the CUDA kernel runs both halves in one pass.

// First half, one element: weight decay, square_avg (and grad_avg); returns what the
// square root is taken of.
template <typename T>
FASTGAN_HD T rmsprop_radicand(T param, T& grad, T& square_avg, T* grad_avg, const RMSpropConfig& cfg) {
  const T alpha = static_cast<T>(cfg.alpha), one_minus_alpha = static_cast<T>(1.0 - cfg.alpha);
  if (cfg.weight_decay != 0) grad = fma(static_cast<T>(cfg.weight_decay), param, grad);  // grad.add(param, alpha=wd)
  square_avg = square_avg * alpha;                                                      // square_avg.mul_(alpha)
  square_avg = fma(one_minus_alpha * grad, grad, square_avg);                           // .addcmul_(grad, grad, 1 - alpha)
  if (!cfg.centered) return square_avg;                                                 // square_avg.sqrt()
  T& ga = *grad_avg;                                                                    // grad_avg.lerp_(grad, 1 - alpha)
  ga = one_minus_alpha < T(0.5) ? fma(one_minus_alpha, grad - ga, ga)
                                : fma(-(grad - ga), T(1) - one_minus_alpha, grad);
  return fma(T(-1) * ga, ga, square_avg);                                               // addcmul(ga, ga, -1).sqrt_()
}

// Second half, one element, from root = sqrt(radicand): the update and the clamp to
// [-clip, clip] (clip < 0: no clamp).
template <typename T>
FASTGAN_HD void rmsprop_update(T& param, T grad, T root, T* momentum_buf, const RMSpropConfig& cfg) {
  const T avg = root + static_cast<T>(cfg.eps);                                         // .add_(eps)
  if (cfg.momentum > 0) {
    T& buf = *momentum_buf;
    buf = buf * static_cast<T>(cfg.momentum);                                           // buf.mul_(momentum)
    buf = buf + T(1) * grad / avg;                                                      // .addcdiv_(grad, avg)
    param = fma(static_cast<T>(-cfg.lr), buf, param);                                   // param.add_(buf, alpha=-lr)
  } else {
    param = param + static_cast<T>(-cfg.lr) * grad / avg;                               // param.addcdiv_(grad, avg, -lr)
  }
  if (cfg.clip >= 0) {
    const T c = static_cast<T>(cfg.clip);
    param = param < -c ? -c : (param > c ? c : param);                                  // param.clamp_(-c, c)
  }
}

}  // namespace fastgan
