// CPU epilogues: one pass over each matrix, rows split across the intra-op thread pool,
// the inner loop over columns specialised per activation so that it vectorises.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <type_traits>
#include <vector>

#include "../epilogues.h"

namespace fastgan {
namespace cpu {
namespace {

constexpr int64_t kGrainElements = 32768;

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(cols, 1)); }

template <typename T>
T* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

// Calls f(std::integral_constant<Act, A>{}) with the activation as a compile-time constant.
template <typename F>
void with_static_act(Act act, F&& f) {
  switch (act) {
    case Act::ReLU: f(std::integral_constant<Act, Act::ReLU>{}); break;
    case Act::LeakyReLU: f(std::integral_constant<Act, Act::LeakyReLU>{}); break;
    case Act::Tanh: f(std::integral_constant<Act, Act::Tanh>{}); break;
    case Act::Softplus: f(std::integral_constant<Act, Act::Softplus>{}); break;
    case Act::SiLU: f(std::integral_constant<Act, Act::SiLU>{}); break;
  }
}

template <typename F>
void with_static_bool(bool value, F&& f) {
  if (value) f(std::true_type{}); else f(std::false_type{});
}

}  // namespace

void bias_act_forward(const BiasActForward& args, ActSpec spec) {
  const at::Tensor& z = args.z;
  const int64_t rows = z.size(0), cols = z.size(1);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "fastgan_bias_act_forward_cpu", [&] {
    scalar_t* zp = z.data_ptr<scalar_t>();
    const scalar_t* bp = args.bias.data_ptr<scalar_t>();
    scalar_t* d1p = data_or_null<scalar_t>(args.d1);
    scalar_t* d2p = data_or_null<scalar_t>(args.d2);
    const scalar_t alpha = static_cast<scalar_t>(spec.alpha);
    with_static_act(spec.act, [&](auto act_c) {
      constexpr Act A = decltype(act_c)::value;
      at::parallel_for(0, rows, row_grain(cols), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          scalar_t* zr = zp + i * cols;
          scalar_t* d1r = d1p ? d1p + i * cols : nullptr;
          scalar_t* d2r = (d2p && i >= args.d2_row0) ? d2p + (i - args.d2_row0) * cols : nullptr;
          if (!is_smooth(A)) {
            for (int64_t j = 0; j < cols; ++j) {
              scalar_t s, ds, d2s;
              activation(A, alpha, zr[j] + bp[j], s, ds, d2s);
              zr[j] = s;
            }
          } else {
            for (int64_t j = 0; j < cols; ++j) {
              scalar_t s, ds, d2s;
              activation(A, alpha, zr[j] + bp[j], s, ds, d2s);
              zr[j] = s;
              d1r[j] = ds;
              if (d2r) d2r[j] = d2s;
            }
          }
        }
      });
    });
  });
}

void act_grad(const ActGrad& args, ActSpec spec) {
  const at::Tensor& out = args.out;
  const int64_t rows = out.size(0), cols = out.size(1);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "fastgan_act_grad_cpu", [&] {
    scalar_t* op = out.data_ptr<scalar_t>();
    const scalar_t* sp = args.saved.data_ptr<scalar_t>();
    const scalar_t* ep = data_or_null<scalar_t>(args.e);
    const scalar_t* seedp = data_or_null<scalar_t>(args.seed);
    const scalar_t* wp = data_or_null<scalar_t>(args.w);
    const scalar_t* ap = data_or_null<scalar_t>(args.add);
    scalar_t* cp = data_or_null<scalar_t>(args.coef);
    const scalar_t alpha = static_cast<scalar_t>(spec.alpha);
    with_static_act(spec.act, [&](auto act_c) {
      constexpr Act A = decltype(act_c)::value;
      with_static_bool(ep != nullptr, [&](auto dense_c) {
        constexpr bool kDense = decltype(dense_c)::value;
        at::parallel_for(0, rows, row_grain(cols), [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            scalar_t* orow = op + i * cols;
            const scalar_t* srow = sp + i * cols;
            const scalar_t* erow = kDense ? ep + i * cols : nullptr;
            const scalar_t seed = kDense ? scalar_t(0) : seedp[i];
            const scalar_t* arow = ap ? ap + i * cols : nullptr;
            scalar_t* crow = (cp && i >= args.coef_row0) ? cp + (i - args.coef_row0) * cols : nullptr;
            auto signal = [&](int64_t j) { return kDense ? erow[j] : seed * wp[j]; };
            if (crow) {
              for (int64_t j = 0; j < cols; ++j) crow[j] *= signal(j);
            }
            if (arow) {
              for (int64_t j = 0; j < cols; ++j)
                orow[j] = derivative_from_saved(A, alpha, srow[j]) * signal(j) + arow[j];
            } else {
              for (int64_t j = 0; j < cols; ++j)
                orow[j] = derivative_from_saved(A, alpha, srow[j]) * signal(j);
            }
          }
        });
      });
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
    const scalar_t center = static_cast<scalar_t>(args.center);
    const scalar_t scale = static_cast<scalar_t>(args.lam_over_batch);
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
