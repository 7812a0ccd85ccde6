// linear: y = x W^T + b over (rows, features). Record [flags: has_bias].
// A 2-D input flattened from a channels-last batch has its features in (H, W, C)
// order: the weight is permuted to that order once per step, its gradient back.
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class Linear final : public Unit {
 public:
  Linear(const NodeRecord& r, Params& params) : record_(r) {
    weight_ = params.take(weight_index_);
    if (r.flags & 1) bias_ = params.take(bias_index_);
    check_kind(weight_.dim() == 2, r, "linear", "needs a 2-D weight");
  }

  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder& in_order) override {
    TORCH_CHECK(x[0].dim() == 2 && x[0].size(1) == weight_.size(1), "fastgan: graph node ", record_.index,
                " (linear) expects (rows, ", weight_.size(1), ") input, got ", x[0].sizes());
    order_ = in_order;
    w_ = to_memory_order(weight_, order_, 1);
    return (bias_.defined() && !folded_) ? at::addmm(bias_, x[0], w_.t()) : at::mm(x[0], w_.t());
  }

  FeatureOrder output_order(const Tensors&, const at::Tensor&, const FeatureOrder&) const override { return {}; }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors&, const at::Tensor&, int64_t) override {
    return {at::mm(e, w_)};
  }

  void param_grads(Pass& pass, const at::Tensor& e, const Tensors& x, int64_t, int64_t block) override {
    pass.add_grad_mm(weight_index_, e.t(), x[0], order_);
    if (bias_.defined()) pass.add_grad(bias_index_, block_sum(e, block));
  }

  at::Tensor tangent(Pass& pass, const Tensors& t, const std::vector<bool>&, const at::Tensor& tbar, const Tensors&,
                     const at::Tensor&, Tensors&) override {
    pass.add_grad_mm(weight_index_, tbar.t(), t[0], order_);
    return at::mm(t[0], w_.t());
  }

  bool reads_signal() const override { return true; }

  at::Tensor fold_bias() override {
    folded_ = bias_.defined();
    return bias_;
  }

 private:
  NodeRecord record_;
  at::Tensor weight_, bias_, w_;
  int64_t weight_index_ = -1, bias_index_ = -1;
  FeatureOrder order_;
  bool folded_ = false;
};

}  // namespace

std::unique_ptr<Unit> make_linear(const NodeRecord& r, Params& p) { return std::make_unique<Linear>(r, p); }

}  // namespace graph
}  // namespace fastgan
