// The fused elementwise epilogues that follow each GEMM of the critic, with one
// implementation per device (csrc/cpu, csrc/cuda) and a device-generic entry point.
// All matrices are contiguous row-major (rows, cols); row slices of such matrices are
// accepted (they are contiguous too).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "activation_math.h"

namespace fastgan {

struct ActSpec {
  Act act;
  double alpha;  // leaky-ReLU slope; unused by the others
};

// Forward epilogue, in place: z <- s(z + b). For smooth activations it also writes
// d1 = s'(z + b) on every row and d2 = s''(z + b) on rows >= d2_row0 (d2 has
// rows - d2_row0 rows). d1/d2 are undefined for ReLU and leaky ReLU.
struct BiasActForward {
  at::Tensor z;
  at::Tensor bias;
  at::Tensor d1;
  at::Tensor d2;
  int64_t d2_row0 = 0;
};

// Gradient epilogue:
//   out = s'(saved) * e  (+ add)
//   coef[i - coef_row0] *= e   for rows i >= coef_row0 (when coef is defined)
// where e is the matrix `e`, or the rank-1 signal seed[i] * w[j] when `seed` is
// defined, and s' is recovered from `saved` by derivative_from_saved(). `out` may alias
// `e` or `saved` element for element.
struct ActGrad {
  at::Tensor out;
  at::Tensor saved;
  at::Tensor e;
  at::Tensor seed;
  at::Tensor w;
  at::Tensor add;
  at::Tensor coef;
  int64_t coef_row0 = 0;
};

// Penalty epilogue on the per-sample input gradients g (B, d): writes
// u = (lam/B) phi'(|g_i|) g_i / |g_i| (0 where |g_i| = 0) into `u` and returns the
// 0-dim sum over rows of phi(|g_i|). `u` may alias `g`.
struct PenaltyArgs {
  at::Tensor g;
  at::Tensor u;
  double lam_over_batch;
  double center;
  bool one_sided;
};

namespace cpu {
void bias_act_forward(const BiasActForward& args, ActSpec act);
void act_grad(const ActGrad& args, ActSpec act);
at::Tensor penalty(const PenaltyArgs& args);
}  // namespace cpu

#ifdef FASTGAN_WITH_CUDA
namespace cuda {
void bias_act_forward(const BiasActForward& args, ActSpec act);
void act_grad(const ActGrad& args, ActSpec act);
at::Tensor penalty(const PenaltyArgs& args);
}  // namespace cuda
#endif

// True when `t` lives on a CUDA device; fails on a build without CUDA kernels.
inline bool on_cuda(const at::Tensor& t) {
#ifndef FASTGAN_WITH_CUDA
  TORCH_CHECK(!t.is_cuda(), "fastgan._C was built without CUDA kernels");
#endif
  return t.is_cuda();
}

#ifdef FASTGAN_WITH_CUDA
#define FASTGAN_DEVICE_CALL(tensor, fn, ...) (on_cuda(tensor) ? cuda::fn(__VA_ARGS__) : cpu::fn(__VA_ARGS__))
#else
#define FASTGAN_DEVICE_CALL(tensor, fn, ...) (on_cuda(tensor), cpu::fn(__VA_ARGS__))
#endif

inline void bias_act_forward(const BiasActForward& args, ActSpec act) {
  FASTGAN_DEVICE_CALL(args.z, bias_act_forward, args, act);
}
inline void act_grad(const ActGrad& args, ActSpec act) {
  FASTGAN_DEVICE_CALL(args.out, act_grad, args, act);
}
inline at::Tensor penalty(const PenaltyArgs& args) {
  return FASTGAN_DEVICE_CALL(args.g, penalty, args);
}

}  // namespace fastgan
