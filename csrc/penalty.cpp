// The gradient penalty's row op, on the penalty epilogue shared with the fused critic.
#include "penalty.h"

#include <ATen/ATen.h>

#include "epilogues.h"

namespace fastgan {

std::tuple<at::Tensor, at::Tensor> row_penalty(const at::Tensor& g, double center, bool one_sided) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // autograd lives in Python
  TORCH_CHECK(g.dim() >= 1 && g.size(0) > 0, "fastgan: row_penalty needs a batch of gradients, got shape ",
              g.sizes());
  TORCH_CHECK(at::isFloatingType(g.scalar_type()), "fastgan: row_penalty needs floating gradients, got ",
              g.scalar_type());
  const int64_t B = g.size(0);
  const at::Tensor rows = g.reshape({B, -1}).contiguous();
  PenaltyArgs args;
  args.g = rows;
  args.u = at::empty_like(rows);
  args.lam_over_batch = 1.0 / static_cast<double>(B);
  args.center = center;
  args.one_sided = one_sided;
  const at::Tensor mean_phi = penalty(args) / static_cast<double>(B);
  return {mean_phi, args.u.view(g.sizes())};
}

}  // namespace fastgan
