// Per-element math shared by the CPU and the CUDA epilogues: the activations with
// their first and second derivatives, and the gradient-penalty function phi.
// Everything here is `__host__ __device__` under nvcc, so the CPU tests exercise the
// exact arithmetic the GPU kernels run.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define FASTGAN_HD __host__ __device__ __forceinline__
#else
#define FASTGAN_HD inline __attribute__((always_inline))
#endif

namespace fastgan {

// Overloads for float and double on the host and the device alike.
using std::erf;
using std::exp;
using std::expm1;
using std::log1p;
using std::sqrt;
using std::tanh;

enum class Act : int32_t {
  ReLU = 0, LeakyReLU = 1, Tanh = 2, Softplus = 3, SiLU = 4, Sigmoid = 5, ELU = 6, GELU = 7, Linear = 8
};

// Smooth activations have a non-zero s''; the fused step then needs the abar terms.
FASTGAN_HD bool is_smooth(Act act) {
  return act != Act::ReLU && act != Act::LeakyReLU && act != Act::Linear;
}

// torch.nn.Softplus() (beta 1) is the identity above this input.
constexpr double kSoftplusThreshold = 20.0;

template <typename T>
FASTGAN_HD T sigmoid(T a) { return T(1) / (T(1) + exp(-a)); }

// Whether s' and s'' follow from the value s alone (tanh, sigmoid).
FASTGAN_HD bool derivatives_from_value(Act act) { return act == Act::Tanh || act == Act::Sigmoid; }

// s' and s'' from the value s, where derivatives_from_value(act).
template <typename T>
FASTGAN_HD void value_derivatives(Act act, T s, T& ds, T& d2s) {
  if (act == Act::Tanh) {
    ds = T(1) - s * s;
    d2s = T(-2) * s * ds;
  } else {
    ds = s * (T(1) - s);
    d2s = ds * (T(1) - T(2) * s);
  }
}

// s(a), s'(a) and s''(a) in one evaluation. `alpha` is the leaky-ReLU slope or the
// ELU scale.
template <typename T>
FASTGAN_HD void activation(Act act, T alpha, T a, T& s, T& ds, T& d2s) {
  switch (act) {
    case Act::ReLU:
      s = a > T(0) ? a : T(0);
      ds = a > T(0) ? T(1) : T(0);
      d2s = T(0);
      break;
    case Act::LeakyReLU:
      s = a > T(0) ? a : alpha * a;
      ds = a > T(0) ? T(1) : alpha;
      d2s = T(0);
      break;
    case Act::Tanh:
      s = tanh(a);
      value_derivatives(act, s, ds, d2s);
      break;
    case Act::Softplus:
      if (a > T(kSoftplusThreshold)) {
        s = a;
        ds = T(1);
        d2s = T(0);
      } else {
        const T sg = sigmoid(a);
        s = log1p(exp(a));
        ds = sg;
        d2s = sg * (T(1) - sg);
      }
      break;
    case Act::SiLU: {
      const T sg = sigmoid(a);
      s = a * sg;
      ds = sg * (T(1) + a * (T(1) - sg));
      d2s = sg * (T(1) - sg) * (T(2) + a * (T(1) - T(2) * sg));
      break;
    }
    case Act::Sigmoid:
      s = sigmoid(a);
      value_derivatives(act, s, ds, d2s);
      break;
    case Act::ELU:
      if (a > T(0)) {
        s = a;
        ds = T(1);
        d2s = T(0);
      } else {
        s = alpha * expm1(a);
        ds = alpha * exp(a);
        d2s = ds;
      }
      break;
    case Act::GELU: {  // the exact (erf) form, as torch.nn.GELU()
      const T cdf = T(0.5) * (T(1) + erf(a * T(0.70710678118654752440)));
      const T pdf = exp(T(-0.5) * a * a) * T(0.39894228040143267794);
      s = a * cdf;
      ds = cdf + a * pdf;
      d2s = pdf * (T(2) - a * a);
      break;
    }
    case Act::Linear:
      s = a;
      ds = T(1);
      d2s = T(0);
      break;
  }
}

// s'(a) recovered from what the forward saved: for ReLU and leaky ReLU (slope >= 0) the
// sign of the output h = s(a) is enough; smooth activations save s'(a) itself.
template <typename T>
FASTGAN_HD T derivative_from_saved(Act act, T alpha, T saved) {
  switch (act) {
    case Act::ReLU: return saved > T(0) ? T(1) : T(0);
    case Act::LeakyReLU: return saved > T(0) ? T(1) : alpha;
    case Act::Linear: return T(1);
    default: return saved;
  }
}

// phi(n) = (n - c)^2, or max(0, n - c)^2 one-sided, and phi'(n).
template <typename T>
FASTGAN_HD void penalty_phi(T n, T center, bool one_sided, T& phi, T& dphi) {
  T d = n - center;
  if (one_sided && d < T(0)) d = T(0);
  phi = d * d;
  dphi = T(2) * d;
}

// The penalty's gradient with respect to one component of g: (lam/B) phi'(n) g / n,
// and 0 at n = 0 (PyTorch's norm subgradient there).
template <typename T>
FASTGAN_HD T penalty_grad_scale(T n, T dphi, T lam_over_batch) {
  return n > T(0) ? lam_over_batch * dphi / n : T(0);
}

}  // namespace fastgan
