// conv2d: any kernel, stride, padding, dilation and groups (depthwise included), zero
// padding, bias optional. Record [flags: has_bias; stride h, w, padding h, w,
// dilation h, w, groups]. The weight is put in the input's memory format once per step.
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class Conv2d final : public Unit {
 public:
  Conv2d(const NodeRecord& r, Params& params) : record_(r) {
    weight_ = params.take(weight_index_);
    if (r.flags & 1) bias_ = params.take(bias_index_);
    stride_ = pair(r.ints);
    padding_ = pair(r.ints + 2);
    dilation_ = pair(r.ints + 4);
    groups_ = r.ints[6];
    check_kind(weight_.dim() == 4, r, "conv2d", "needs a 4-D weight");
    check_kind(groups_ >= 1, r, "conv2d", "needs groups >= 1");
  }

  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder&) override {
    TORCH_CHECK(x[0].dim() == 4 && x[0].size(1) == weight_.size(1) * groups_, "fastgan: graph node ", record_.index,
                " (conv2d) expects (rows, ", weight_.size(1) * groups_, ", H, W) input, got ", x[0].sizes());
    w_ = weight_.contiguous(x[0].suggest_memory_format());
    return conv(x[0], folded_ ? at::Tensor() : bias_);
  }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors& x, const at::Tensor&, int64_t) override {
    auto res = at::convolution_backward(e, x[0], w_, c10::nullopt, stride_, padding_, dilation_, false, {0, 0},
                                        groups_, {true, false, false});
    return {std::get<0>(res)};
  }

  void param_grads(Pass& pass, const at::Tensor& e, const Tensors& x, int64_t, int64_t block) override {
    weight_grad(pass, e, x[0]);
    if (bias_.defined()) pass.add_grad(bias_index_, block_sum(e, block));
  }

  at::Tensor tangent(Pass& pass, const Tensors& t, const std::vector<bool>&, const at::Tensor& tbar, const Tensors&,
                     const at::Tensor&, Tensors&) override {
    weight_grad(pass, tbar, t[0]);
    return conv(t[0], at::Tensor());
  }

  bool reads_signal() const override { return true; }

  at::Tensor fold_bias() override {
    folded_ = bias_.defined();
    return bias_;
  }

 private:
  at::Tensor conv(const at::Tensor& x, const at::Tensor& bias) const {
    return at::convolution(x, w_, bias, stride_, padding_, dilation_, false, {0, 0}, groups_);
  }

  // grad W += the weight gradient of output signal e at inputs x.
  void weight_grad(Pass& pass, const at::Tensor& e, const at::Tensor& x) const {
    auto res = at::convolution_backward(e, x.contiguous(e.suggest_memory_format()), w_, c10::nullopt, stride_,
                                        padding_, dilation_, false, {0, 0}, groups_, {false, true, false});
    pass.add_grad(weight_index_, std::get<1>(res));
  }

  NodeRecord record_;
  at::Tensor weight_, bias_, w_;
  int64_t weight_index_ = -1, bias_index_ = -1, groups_ = 1;
  std::array<int64_t, 2> stride_{1, 1}, padding_{0, 0}, dilation_{1, 1};
  bool folded_ = false;
};

}  // namespace

std::unique_ptr<Unit> make_conv2d(const NodeRecord& r, Params& p) { return std::make_unique<Conv2d>(r, p); }

}  // namespace graph
}  // namespace fastgan
