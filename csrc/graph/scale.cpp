// scale: multiplication by a constant (a gain; division is multiplication by the
// inverse). Record floats [c].
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class Scale final : public Unit {
 public:
  explicit Scale(const NodeRecord& r) : c_(r.floats[0]) {}

  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder&) override { return at::mul(x[0], c_); }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors&, const at::Tensor&, int64_t) override {
    return {e.mul_(c_)};
  }

  bool signal_reads_input() const override { return false; }
  bool overwrites_signal() const override { return true; }

  at::Tensor tangent(Pass&, const Tensors& t, const std::vector<bool>& may_overwrite, const at::Tensor&,
                     const Tensors&, const at::Tensor&, Tensors&) override {
    return may_overwrite[0] ? t[0].mul_(c_) : at::mul(t[0], c_);
  }

 private:
  double c_;
};

}  // namespace

std::unique_ptr<Unit> make_scale(const NodeRecord& r, Params&) { return std::make_unique<Scale>(r); }

}  // namespace graph
}  // namespace fastgan
