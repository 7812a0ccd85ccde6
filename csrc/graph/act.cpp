// act: an elementwise activation with gain and clamp, and a bias along the channels
// (its own, or the bias of the linear/conv2d node before it, folded in). Record
// [flags: has_bias; activation code (activation_math.h)], floats [alpha, gain, clamp].
//
// Two ways to run, chosen at the forward:
// - a smooth activation on a 2-D value (an MLP's, a head's) without gain or clamp, on
//   the C++/CUDA kernels, saves its derivatives in the forward epilogue (epilogues.h):
//   s' on every row and s'' on the penalised rows, which the signal pass turns into
//   s'' * tbar in place. No later pass evaluates the activation again, nor reads its
//   input, so it runs in place whenever nothing else reads that input;
// - otherwise every pass evaluates the activation's derivatives from its input
//   (bias_act's element loops, or their Triton twins), or from its output where the
//   slope can be read from it (relu, lrelu): then, where nothing else reads the input,
//   the forward runs in place and later passes read the output instead.
#include "unit.h"

#include "../epilogues.h"

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
    saves_ = is_smooth(spec_.act) && spec_.gain == 1.0 && spec_.clamp < 0.0 && !pass.triton && x[0].dim() == 2 &&
             x[0].is_contiguous();
    in_place_ = may_run_in_place_ && (saves_ || slope_from_output(spec_));
    at::Tensor y = in_place_ ? x[0] : at::empty_like(x[0]);
    if (!saves_) {
      pass.act(y, 0, x[0], at::Tensor(), at::Tensor(), b_, spec_, false);
      return y;
    }
    const int64_t rows = x[0].size(0), cols = x[0].size(1);
    BiasActForward epi;
    epi.z = in_place_ ? y : y.copy_(x[0]);  // the epilogue runs in place
    if (b_.defined()) epi.bias = b_.contiguous();
    epi.d1 = d1_ = at::empty_like(y);
    d2_ = pass.penalised > 0 ? at::empty({rows - pass.row0, cols}, y.options()) : at::Tensor();
    epi.d2 = d2_;
    epi.d2_row0 = pass.row0;
    bias_act_forward(epi, {spec_.act, spec_.alpha});
    return y;
  }

  Tensors input_gradient(Pass& pass, const at::Tensor& e, const Tensors& x, const at::Tensor& y, int64_t r0) override {
    if (saves_) {
      // The signal pass also turns the saved s'' into s'' * tbar on the penalised rows.
      const at::Tensor ec = e.contiguous();
      const int64_t first = std::max(pass.row0, r0), end = r0 + ec.size(0);
      at::Tensor coef;
      if (!pass.hbar_pass && d2_.defined() && first < end) coef = d2_.narrow(0, first - pass.row0, end - first);
      return {saved_slope(ec, ec, r0, coef, first - r0)};
    }
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
    if (saves_) {
      // s' * t, and q = (s'' * tbar) * t in place of the saved s'' * tbar.
      const at::Tensor tc = t[0].contiguous();
      const at::Tensor out = (may_overwrite[0] || !tc.is_same(t[0])) ? tc : at::empty_like(tc);
      q[0] = d2_.narrow(0, 0, pass.penalised);
      return saved_slope(out, tc, pass.row0, q[0], 0);
    }
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

  bool signal_reads_input() const override { return !saves_; }
  bool reads_input() const override { return !in_place_ && !saves_; }
  bool reads_output() const override { return in_place_ && !saves_; }
  bool reads_signal() const override { return is_smooth(spec_.act) && !saves_; }
  bool overwrites_signal() const override { return true; }
  bool second_order() const override { return is_smooth(spec_.act); }
  bool needs_every_input_row() const override { return own_bias_.defined(); }

  void allow_in_place() override { may_run_in_place_ = true; }
  bool takes_folded_bias() const override { return !own_bias_.defined(); }
  void set_folded_bias(const at::Tensor& bias) override { bias_ = bias; }

 private:
  // out = s' * e on rows [r0, r0 + rows of e) from the saved s', and, where coef is
  // given, coef *= e on the rows from coef_row0 on (counted in e's rows).
  at::Tensor saved_slope(const at::Tensor& out, const at::Tensor& e, int64_t r0, const at::Tensor& coef,
                         int64_t coef_row0) {
    ActGrad epi;
    epi.out = out;
    epi.e = e;
    epi.saved = d1_.narrow(0, r0, e.size(0));
    epi.coef = coef;
    epi.coef_row0 = coef_row0;
    act_grad(epi, {spec_.act, spec_.alpha});
    return out;
  }

  NodeRecord record_;
  BiasActSpec spec_{Act::Linear, 0.0, 1.0, -1.0};
  at::Tensor own_bias_, bias_, b_;  // b_: the bias (own or folded) in the input's feature order
  at::Tensor d1_, d2_;              // the saved s' (every row) and s'' (from the first penalised row)
  int64_t bias_index_ = -1;
  FeatureOrder bias_order_;
  bool may_run_in_place_ = false, in_place_ = false, saves_ = false;
};

}  // namespace

std::unique_ptr<Unit> make_act(const NodeRecord& r, Params& p) { return std::make_unique<Activation>(r, p); }

}  // namespace graph
}  // namespace fastgan
