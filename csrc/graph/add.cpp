// add: the sum of two values of one shape (a residual). Linear in both inputs: the
// signal goes unchanged to both, the tangents add.
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class Add final : public Unit {
 public:
  explicit Add(const NodeRecord& r) : record_(r) {}

  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder&) override {
    TORCH_CHECK(x.size() == 2 && x[0].sizes() == x[1].sizes(), "fastgan: graph node ", record_.index,
                " (add) needs two inputs of one shape, got ", x[0].sizes(), " and ",
                x.size() == 2 ? x[1].sizes() : x[0].sizes());
    return at::add(x[0], x[1]);
  }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors&, const at::Tensor&, int64_t) override {
    return {e, e};  // the orchestration copies where both must be kept
  }

  bool signal_reads_input() const override { return false; }

  at::Tensor tangent(Pass&, const Tensors& t, const std::vector<bool>&, const at::Tensor&, const Tensors&,
                     const at::Tensor&, Tensors&) override {
    return at::add(t[0], t[1]);
  }

 private:
  NodeRecord record_;
};

}  // namespace

std::unique_ptr<Unit> make_add(const NodeRecord& r, Params&) { return std::make_unique<Add>(r); }

}  // namespace graph
}  // namespace fastgan
