// act: an elementwise activation with gain and clamp, and a bias along the channels
// (its own, or the bias of the linear/conv2d node before it, folded in). Record
// [flags: has_bias; activation code (activation_math.h)], floats [alpha, gain, clamp].
// Where the slope can be read from the output (relu, lrelu) and nothing else reads
// the input, the forward runs in place and later passes read the output instead.
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class Activation final : public Unit {
 public:
  Activation(const NodeRecord& r, Params& params) : record_(r) {
    if (r.flags & 1) own_bias_ = params.take(bias_index_);
    check_kind(r.ints[0] >= 0 && r.ints[0] <= 8, r, "act", "unknown activation code");
    spec_ = {static_cast<Act>(r.ints[0]), r.floats[0], r.floats[1], r.floats[2]};
    bias_ = own_bias_;
  }

  at::Tensor forward(Pass& pass, const Tensors& x, const FeatureOrder& in_order) override {
    if (x[0].dim() == 2) bias_order_ = in_order;
    if (bias_.defined()) b_ = to_memory_order(bias_, bias_order_, 0);
    at::Tensor y = in_place_ ? x[0] : at::empty_like(x[0]);
    pass.act(y, 0, x[0], at::Tensor(), at::Tensor(), b_, spec_, false);
    return y;
  }

  Tensors input_gradient(Pass& pass, const at::Tensor& e, const Tensors& x, const at::Tensor& y, int64_t) override {
    const at::Tensor& ref = in_place_ ? y : x[0];
    at::Tensor out = as_layout(e, ref);
    pass.act(out, 1, ref, out, at::Tensor(), b_, spec_, in_place_);
    return {out};
  }

  void param_grads(Pass& pass, const at::Tensor& e, const Tensors&, int64_t, int64_t block) override {
    if (own_bias_.defined()) pass.add_grad(bias_index_, block_sum(e, block), bias_order_);
  }
  bool grads_from_input_signal() const override { return true; }

  at::Tensor tangent(Pass& pass, const Tensors& t, const std::vector<bool>& may_overwrite, const at::Tensor& tbar,
                     const Tensors& x, const at::Tensor& y, Tensors& q) override {
    const at::Tensor& ref = in_place_ ? y : x[0];
    at::Tensor out = as_layout(t[0], ref);
    if (out.is_same(t[0]) && !may_overwrite[0]) out = out.clone();
    if (is_smooth(spec_.act)) {
      q[0] = at::empty_like(x[0]);
      pass.act(q[0], 2, x[0], as_layout(tbar, x[0]), as_layout(out, x[0]), b_, spec_, false);
    }
    pass.act(out, 1, ref, out, at::Tensor(), b_, spec_, in_place_);
    return out;
  }

  bool reads_input() const override { return !in_place_; }
  bool reads_output() const override { return in_place_; }
  bool reads_signal() const override { return is_smooth(spec_.act); }
  bool second_order() const override { return is_smooth(spec_.act); }
  bool needs_every_input_row() const override { return own_bias_.defined(); }

  void allow_in_place() override { in_place_ = slope_from_output(spec_); }
  bool takes_folded_bias() const override { return !own_bias_.defined(); }
  void set_folded_bias(const at::Tensor& bias) override { bias_ = bias; }

 private:
  NodeRecord record_;
  BiasActSpec spec_{Act::Linear, 0.0, 1.0, -1.0};
  at::Tensor own_bias_, bias_, b_;  // b_: the bias (own or folded) in the input's feature order
  int64_t bias_index_ = -1;
  FeatureOrder bias_order_;
  bool in_place_ = false;
};

}  // namespace

std::unique_ptr<Unit> make_act(const NodeRecord& r, Params& p) { return std::make_unique<Activation>(r, p); }

}  // namespace graph
}  // namespace fastgan
