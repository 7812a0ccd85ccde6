// avgpool: 2-D average pooling. Record [flags: ceil_mode | count_include_pad << 1;
// kernel h, w, stride h, w, padding h, w].
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class AvgPool final : public Unit {
 public:
  explicit AvgPool(const NodeRecord& r) : record_(r) {
    ceil_mode_ = r.flags & 1;
    count_include_pad_ = (r.flags >> 1) & 1;
    kernel_ = pair(r.ints);
    stride_ = pair(r.ints + 2);
    padding_ = pair(r.ints + 4);
  }

  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder&) override {
    TORCH_CHECK(x[0].dim() == 4, "fastgan: graph node ", record_.index, " (avgpool) expects 4-D input, got ",
                x[0].sizes());
    size_ = {x[0].size(2), x[0].size(3)};
    return pool(x[0]);
  }

  // Tiling pools (kernel = stride, no padding, dividing the input) spread each signal
  // over its window: the input is not read, so it is freed after the forward.
  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors& x, const at::Tensor&, int64_t) override {
    if (tiling()) return {at::upsample_nearest2d(e, size_).div_(static_cast<double>(kernel_[0] * kernel_[1]))};
    return {at::avg_pool2d_backward(e, x[0], kernel_, stride_, padding_, ceil_mode_, count_include_pad_,
                                    c10::nullopt)};
  }

  bool signal_reads_input() const override { return !tiling(); }

  at::Tensor tangent(Pass&, const Tensors& t, const std::vector<bool>&, const at::Tensor&, const Tensors&,
                     const at::Tensor&, Tensors&) override {
    return pool(t[0]);
  }

 private:
  bool tiling() const {
    return kernel_ == stride_ && padding_[0] == 0 && padding_[1] == 0 && size_[0] % kernel_[0] == 0 &&
           size_[1] % kernel_[1] == 0;
  }

  at::Tensor pool(const at::Tensor& x) const {
    return at::avg_pool2d(x, kernel_, stride_, padding_, ceil_mode_, count_include_pad_, c10::nullopt);
  }

  NodeRecord record_;
  std::array<int64_t, 2> kernel_{1, 1}, stride_{1, 1}, padding_{0, 0};
  std::array<int64_t, 2> size_{0, 0};  // the input's height and width
  bool ceil_mode_ = false, count_include_pad_ = true;
};

}  // namespace

std::unique_ptr<Unit> make_avgpool(const NodeRecord& r, Params&) { return std::make_unique<AvgPool>(r); }

}  // namespace graph
}  // namespace fastgan
