// CPU epilogues: one pass over each matrix, rows split across the intra-op thread pool,
// the inner loops specialised per activation so that they vectorise, and compiled for
// AVX2 too (chosen at run time when the processor has it).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <type_traits>
#include <vector>

#include "../epilogues.h"
#include "isa.h"

namespace fastgan {
namespace cpu {

namespace baseline {
#include "epilogue_loops.h"
}  // namespace baseline

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "epilogue_loops.h"
}  // namespace avx2
#pragma GCC pop_options

namespace {

constexpr int64_t kGrainElements = 32768;

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(cols, 1)); }

template <typename T>
T* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

// Calls f(std::integral_constant<Act, A>{}) with the (smooth) activation as a
// compile-time constant.
template <typename F>
void with_static_act(Act act, F&& f) {
  switch (act) {
    case Act::Tanh: f(std::integral_constant<Act, Act::Tanh>{}); break;
    case Act::Softplus: f(std::integral_constant<Act, Act::Softplus>{}); break;
    case Act::SiLU: f(std::integral_constant<Act, Act::SiLU>{}); break;
    case Act::Sigmoid: f(std::integral_constant<Act, Act::Sigmoid>{}); break;
    case Act::ELU: f(std::integral_constant<Act, Act::ELU>{}); break;
    case Act::GELU: f(std::integral_constant<Act, Act::GELU>{}); break;
    default: TORCH_CHECK(false, "fastgan: no epilogue for activation code ", static_cast<int>(act));
  }
}

// The forward epilogue of an activation whose derivatives follow from its value: the
// value by ATen's vectorised kernel (a scalar libm call per element would cost more
// than the step's GEMMs), then the derivatives from it.
void value_then_derivatives(const BiasActForward& args, Act act) {
  const at::Tensor& z = args.z;
  const int64_t rows = z.size(0), cols = z.size(1);
  if (args.bias.defined()) z.add_(args.bias);
  if (act == Act::Tanh) {
    z.tanh_();
  } else {
    z.sigmoid_();
  }
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "fastgan_value_derivatives_cpu", [&] {
    const scalar_t* zp = z.data_ptr<scalar_t>();
    scalar_t* d1p = args.d1.data_ptr<scalar_t>();
    scalar_t* d2p = data_or_null<scalar_t>(args.d2);
    auto run = [&](auto act_c) {
      constexpr Act A = decltype(act_c)::value;
      at::parallel_for(0, rows, row_grain(cols), [&](int64_t begin, int64_t end) {
        auto rows_fn = has_avx2_fma() ? avx2::value_derivative_rows<A, scalar_t>
                                      : baseline::value_derivative_rows<A, scalar_t>;
        rows_fn(zp, d1p, d2p, args.d2_row0, begin, end, cols);
      });
    };
    if (act == Act::Tanh) {
      run(std::integral_constant<Act, Act::Tanh>{});
    } else {
      run(std::integral_constant<Act, Act::Sigmoid>{});
    }
  });
}

}  // namespace

void bias_act_forward(const BiasActForward& args, ActSpec spec) {
  const at::Tensor& z = args.z;
  if (derivatives_from_value(spec.act)) return value_then_derivatives(args, spec.act);
  const int64_t rows = z.size(0), cols = z.size(1);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "fastgan_bias_act_forward_cpu", [&] {
    scalar_t* zp = z.data_ptr<scalar_t>();
    const scalar_t* bp = data_or_null<scalar_t>(args.bias);
    scalar_t* d1p = args.d1.data_ptr<scalar_t>();
    scalar_t* d2p = data_or_null<scalar_t>(args.d2);
    const auto alpha = static_cast<scalar_t>(spec.alpha);
    with_static_act(spec.act, [&](auto act_c) {
      constexpr Act A = decltype(act_c)::value;
      auto run = [&](auto rows_fn) {
        at::parallel_for(0, rows, row_grain(cols), [&](int64_t begin, int64_t end) {
          rows_fn(zp, bp, d1p, d2p, args.d2_row0, begin, end, cols, alpha);
        });
      };
      if (bp != nullptr) {
        run(has_avx2_fma() ? avx2::bias_act_rows<A, true, scalar_t> : baseline::bias_act_rows<A, true, scalar_t>);
      } else {
        run(has_avx2_fma() ? avx2::bias_act_rows<A, false, scalar_t> : baseline::bias_act_rows<A, false, scalar_t>);
      }
    });
  });
}

void act_grad(const ActGrad& args, ActSpec) {
  const at::Tensor& out = args.out;
  const int64_t rows = out.size(0), cols = out.size(1);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "fastgan_act_grad_cpu", [&] {
    scalar_t* op = out.data_ptr<scalar_t>();
    const scalar_t* sp = args.saved.data_ptr<scalar_t>();
    const scalar_t* ep = args.e.data_ptr<scalar_t>();
    scalar_t* cp = data_or_null<scalar_t>(args.coef);
    auto rows_fn = has_avx2_fma() ? avx2::act_grad_rows<scalar_t> : baseline::act_grad_rows<scalar_t>;
    at::parallel_for(0, rows, row_grain(cols), [&](int64_t begin, int64_t end) {
      rows_fn(op, sp, ep, cp, args.coef_row0, begin, end, cols);
    });
  });
}

at::Tensor penalty(const PenaltyArgs& args) {
  const at::Tensor& g = args.g;
  const int64_t rows = g.size(0), cols = g.size(1);
  at::Tensor total = at::empty({}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "fastgan_penalty_cpu", [&] {
    const scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t* up = args.u.data_ptr<scalar_t>();
    const auto center = static_cast<scalar_t>(args.center);
    const auto scale = static_cast<scalar_t>(args.lam_over_batch);
    std::vector<scalar_t> phis(rows);
    at::parallel_for(0, rows, row_grain(cols), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* grow = gp + i * cols;
        scalar_t* urow = up + i * cols;
        scalar_t sq = 0;
        for (int64_t j = 0; j < cols; ++j) sq += grow[j] * grow[j];
        const scalar_t n = std::sqrt(sq);
        scalar_t phi, dphi;
        penalty_phi(n, center, args.one_sided, phi, dphi);
        const scalar_t k = penalty_grad_scale(n, dphi, scale);
        for (int64_t j = 0; j < cols; ++j) urow[j] = k * grow[j];
        phis[i] = phi;
      }
    });
    scalar_t sum = 0;
    for (scalar_t p : phis) sum += p;
    total.fill_(sum);
  });
  return total;
}

}  // namespace cpu
}  // namespace fastgan
