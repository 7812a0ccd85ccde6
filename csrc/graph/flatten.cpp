// flatten: (rows, C, H, W) or any batch to (rows, features). A channels-last batch is
// viewed in its memory order (H, W, C), which its consumers' parameters follow.
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class Flatten final : public Unit {
 public:
  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder&) override {
    format_ = channels_last(x[0]) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    sizes_ = x[0].sizes().vec();
    return rows_of(x[0]);
  }

  FeatureOrder output_order(const Tensors& x, const at::Tensor&, const FeatureOrder& in_order) const override {
    return feature_order(x[0], in_order);
  }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors&, const at::Tensor&, int64_t) override {
    std::vector<int64_t> sizes = sizes_;
    sizes[0] = e.size(0);
    const at::Tensor rows = e.contiguous();
    if (format_ != at::MemoryFormat::ChannelsLast) return {rows.view(sizes)};
    return {rows.view({sizes[0], sizes[2], sizes[3], sizes[1]}).permute({0, 3, 1, 2})};
  }

  bool signal_reads_input() const override { return false; }

  at::Tensor tangent(Pass&, const Tensors& t, const std::vector<bool>&, const at::Tensor&, const Tensors& x,
                     const at::Tensor&, Tensors&) override {
    return rows_of(t[0].contiguous(format_));  // in the forward's feature order
  }

 private:
  at::MemoryFormat format_ = at::MemoryFormat::Contiguous;
  std::vector<int64_t> sizes_;  // the input's
};

}  // namespace

std::unique_ptr<Unit> make_flatten(const NodeRecord&, Params&) { return std::make_unique<Flatten>(); }

}  // namespace graph
}  // namespace fastgan
