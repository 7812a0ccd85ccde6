// The elementwise epilogues of the graph step (csrc/graph): the forward and gradient of
// an activation that saves its derivatives (act.cpp, on 2-D values), and the penalty on
// the input gradients; one implementation per device (csrc/cpu, csrc/cuda) and a
// device-generic entry point.
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

// The epilogues below are those of a smooth activation (is_smooth) that saves its
// derivatives. Forward epilogue, in place: z <- s(z + b) (b optional), d1 = s'(z + b) on
// every row and, where d2 is given, d2 = s''(z + b) on rows >= d2_row0 (d2 has
// rows - d2_row0 rows).
struct BiasActForward {
  at::Tensor z;
  at::Tensor bias;
  at::Tensor d1;
  at::Tensor d2;
  int64_t d2_row0 = 0;
};

// Gradient epilogue:
//   out = s'(saved) * e
//   coef[i - coef_row0] *= e   for rows i >= coef_row0 (when coef is defined)
// where `saved` is the forward's d1 = s'. `out` may alias `e` or `saved` element for
// element.
struct ActGrad {
  at::Tensor out;
  at::Tensor saved;
  at::Tensor e;
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

// Every operand of an epilogue: defined ones are contiguous matrices (or vectors) of
// `like`'s dtype on `like`'s device, with `cols` columns.
inline void check_operand(const at::Tensor& t, const char* name, const at::Tensor& like, int64_t cols) {
  if (!t.defined()) return;
  TORCH_CHECK(t.device() == like.device() && t.scalar_type() == like.scalar_type(),
              "fastgan epilogue: ", name, " is ", t.scalar_type(), " on ", t.device(), ", expected ",
              like.scalar_type(), " on ", like.device());
  TORCH_CHECK(t.is_contiguous() && t.size(-1) == cols, "fastgan epilogue: ", name,
              " must be contiguous with ", cols, " columns, got shape ", t.sizes());
}

inline void check_args(const BiasActForward& a) {
  const int64_t cols = a.z.size(1);
  check_operand(a.z, "z", a.z, cols);
  check_operand(a.bias, "bias", a.z, cols);
  check_operand(a.d1, "d1", a.z, cols);
  check_operand(a.d2, "d2", a.z, cols);
  TORCH_CHECK(a.d1.defined(), "fastgan epilogue: d1 is required");
  TORCH_CHECK(!a.d2.defined() || a.d2.size(0) == a.z.size(0) - a.d2_row0, "fastgan epilogue: d2 rows");
}

inline void check_args(const ActGrad& a) {
  const int64_t cols = a.out.size(1), rows = a.out.size(0);
  check_operand(a.out, "out", a.out, cols);
  check_operand(a.saved, "saved", a.out, cols);
  check_operand(a.e, "e", a.out, cols);
  check_operand(a.coef, "coef", a.out, cols);
  TORCH_CHECK(a.e.defined() && a.e.size(0) == rows && a.saved.size(0) == rows, "fastgan epilogue: e and saved rows");
  TORCH_CHECK(!a.coef.defined() || a.coef.size(0) == rows - a.coef_row0, "fastgan epilogue: coef rows");
}

inline void check_args(const PenaltyArgs& a) {
  check_operand(a.g, "g", a.g, a.g.size(1));
  check_operand(a.u, "u", a.g, a.g.size(1));
  TORCH_CHECK(a.u.size(0) == a.g.size(0), "fastgan epilogue: u rows");
}

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

inline void check_smooth(ActSpec act) {
  TORCH_CHECK(is_smooth(act.act), "fastgan epilogue: activation ", static_cast<int>(act.act),
              " is not smooth (only smooth activations save their derivatives)");
}

inline void bias_act_forward(const BiasActForward& args, ActSpec act) {
  check_smooth(act);
  check_args(args);
  FASTGAN_DEVICE_CALL(args.z, bias_act_forward, args, act);
}
inline void act_grad(const ActGrad& args, ActSpec act) {
  check_smooth(act);
  check_args(args);
  FASTGAN_DEVICE_CALL(args.out, act_grad, args, act);
}
inline at::Tensor penalty(const PenaltyArgs& args) {
  check_args(args);
  return FASTGAN_DEVICE_CALL(args.g, penalty, args);
}

}  // namespace fastgan
