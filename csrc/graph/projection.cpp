// projection: the class term of a projection discriminator (Miyato & Koyama 2018),
// y = <E[label], h> per row, for a 2-D input h and an embedding E of shape (classes,
// features). The labels are the step's (Pass::labels, one per row of the stacked batch);
// the term is linear in h with a weight row per sample, so it has no second-order part.
// E's gradient sums, per class, the rows of that class: one_hot(labels)^T (e h).
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

class Projection final : public Unit {
 public:
  Projection(const NodeRecord& r, Params& params) : record_(r) {
    embedding_ = params.take(embedding_index_);
    check_kind(embedding_.dim() == 2, r, "projection", "needs a 2-D embedding (classes, features)");
  }

  at::Tensor forward(Pass& pass, const Tensors& x, const FeatureOrder& in_order) override {
    TORCH_CHECK(x[0].dim() == 2 && x[0].size(1) == embedding_.size(1), "fastgan: graph node ", record_.index,
                " (projection) expects (rows, ", embedding_.size(1), ") input, got ", x[0].sizes());
    TORCH_CHECK(pass.labels.defined(), "fastgan: graph node ", record_.index,
                " (projection) needs the labels of the real and fake batches");
    TORCH_CHECK(pass.labels.size(0) == x[0].size(0), "fastgan: graph node ", record_.index, " (projection): ",
                pass.labels.size(0), " labels for ", x[0].size(0), " rows");
    order_ = in_order;
    const at::Tensor e = to_memory_order(embedding_, order_, 1);
    rows_ = e.index_select(0, pass.labels);  // (rows, features): each row's weight
    one_hot_ = at::one_hot(pass.labels, embedding_.size(0)).to(x[0].scalar_type());
    return at::mul(x[0], rows_).sum(1, true);
  }

  FeatureOrder output_order(const Tensors&, const at::Tensor&, const FeatureOrder&) const override { return {}; }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors&, const at::Tensor&, int64_t r0) override {
    return {at::mul(e, rows_.narrow(0, r0, e.size(0)))};
  }

  void param_grads(Pass& pass, const at::Tensor& e, const Tensors& x, int64_t r0, int64_t) override {
    pass.add_grad_mm(embedding_index_, one_hot_.narrow(0, r0, e.size(0)).t(), at::mul(e, x[0]), order_);
  }

  at::Tensor tangent(Pass& pass, const Tensors& t, const std::vector<bool>&, const at::Tensor& tbar, const Tensors&,
                     const at::Tensor&, Tensors&) override {
    const int64_t rows = t[0].size(0);
    pass.add_grad_mm(embedding_index_, one_hot_.narrow(0, pass.row0, rows).t(), at::mul(tbar, t[0]), order_);
    return at::mul(t[0], rows_.narrow(0, pass.row0, rows)).sum(1, true);
  }

  bool reads_signal() const override { return true; }

 private:
  NodeRecord record_;
  at::Tensor embedding_, rows_, one_hot_;
  int64_t embedding_index_ = -1;
  FeatureOrder order_;
};

}  // namespace

std::unique_ptr<Unit> make_projection(const NodeRecord& r, Params& p) { return std::make_unique<Projection>(r, p); }

}  // namespace graph
}  // namespace fastgan
