// global_pool: the mean (flags 1) or sum (flags 0) over space, (rows, C, H, W) to
// (rows, C). Linear: its tangent is its forward, its input gradient spreads the signal.
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class GlobalPool final : public Unit {
 public:
  explicit GlobalPool(const NodeRecord& r) : record_(r), mean_(r.flags & 1) {}

  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder&) override {
    TORCH_CHECK(x[0].dim() == 4, "fastgan: graph node ", record_.index, " (global pool) expects 4-D input, got ",
                x[0].sizes());
    sizes_ = x[0].sizes().vec();
    format_ = x[0].suggest_memory_format();
    return pool(x[0]);
  }

  FeatureOrder output_order(const Tensors&, const at::Tensor&, const FeatureOrder&) const override { return {}; }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors&, const at::Tensor&, int64_t) override {
    std::vector<int64_t> sizes = sizes_;
    sizes[0] = e.size(0);
    at::Tensor out = at::empty(sizes, e.options().memory_format(format_));
    out.copy_(e.view({e.size(0), e.size(1), 1, 1}).expand_as(out));
    if (mean_) out.mul_(1.0 / static_cast<double>(sizes[2] * sizes[3]));
    return {out};
  }

  bool signal_reads_input() const override { return false; }

  at::Tensor tangent(Pass&, const Tensors& t, const std::vector<bool>&, const at::Tensor&, const Tensors&,
                     const at::Tensor&, Tensors&) override {
    return pool(t[0]);
  }

 private:
  at::Tensor pool(const at::Tensor& x) const { return mean_ ? x.mean({2, 3}) : x.sum({2, 3}); }

  NodeRecord record_;
  bool mean_;
  std::vector<int64_t> sizes_;  // the input's, and its memory format
  at::MemoryFormat format_ = at::MemoryFormat::Contiguous;
};

}  // namespace

std::unique_ptr<Unit> make_global_pool(const NodeRecord& r, Params&) { return std::make_unique<GlobalPool>(r); }

}  // namespace graph
}  // namespace fastgan
