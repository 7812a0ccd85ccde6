// norm: per-sample normalisation over groups of features with an affine map, which
// covers LayerNorm over all non-batch dimensions (one group, a weight per feature) and
// GroupNorm (G groups of channels, a weight per channel; GroupNorm(1, C) is the
// WGAN-GP paper's 64x64 critic norm). Record [flags: has_weight | has_bias << 1;
// groups, per_channel], floats [eps].
//
// A batch is seen as (rows, G, M): M features per group, in memory order for one group,
// in NCHW order for several. With xhat the normalised input, r its 1/std per (row,
// group) and w the weight spread over the features, the input gradient of signal e is
// r (a - mean a - xhat mean(a xhat)) with a = w e, the tangent J t = w jx with
// jx = r (t - mean t - xhat mean(xhat t)), and the second-order term
// q = d/dx <tbar, J(x) t> is LayerNorm's, per group (norm_tangent below).
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

at::Tensor row_mean(const at::Tensor& t) { return t.mean(-1, true); }
at::Tensor row_dot(const at::Tensor& u, const at::Tensor& v) { return at::linalg_vecdot(u, v, -1).unsqueeze(-1); }

// The unweighted tangent jx and q = d/dx <tbar, J(x) t> for a = tbar w, derived as
//   q = -(r^2/n)(A - C m) xhat - r^2 m (a - mean a - xhat mean(xhat a)) - (r^2 C/n)(t - mean t - xhat m)
// with m = mean(xhat t), A = sum(a (t - mean t)), C = sum(a xhat), n the features of a
// group and r its 1/std; computed from per-group scalars as q = alpha xhat + beta a +
// gamma t + delta.
struct NormTangent {
  at::Tensor jx, q;
};

NormTangent norm_tangent(const at::Tensor& xhat, const at::Tensor& r, const at::Tensor& t, const at::Tensor& a) {
  const double n = static_cast<double>(xhat.size(-1));
  const at::Tensor mt = row_mean(t), ma = row_mean(a);
  const at::Tensor m = row_dot(xhat, t) / n, mxa = row_dot(xhat, a) / n;
  const at::Tensor A = row_dot(a, t) - mt * ma * n, C = mxa * n;
  const at::Tensor r2 = r * r;
  const at::Tensor alpha = r2 * (-(A - C * m) / n + m * mxa + C * m / n);
  const at::Tensor delta = r2 * (m * ma + C * mt / n);
  at::Tensor q = at::addcmul(delta, xhat, alpha);
  q.addcmul_(a, -r2 * m).addcmul_(t, -r2 * C / n);
  at::Tensor jx = at::addcmul(-r * mt, t, r);
  jx.addcmul_(xhat, -r * m);
  return {jx, q};
}

class Norm final : public Unit {
 public:
  Norm(const NodeRecord& r, Params& params) : record_(r) {
    if (r.flags & 1) weight_ = params.take(weight_index_);
    if (r.flags & 2) bias_ = params.take(bias_index_);
    groups_ = r.ints[0];
    per_channel_ = r.ints[1] != 0;
    eps_ = r.floats[0];
    check_kind(groups_ >= 1, r, "norm", "needs groups >= 1");
  }

  at::Tensor forward(Pass&, const Tensors& x, const FeatureOrder& in_order) override {
    const at::Tensor& in = x[0];
    const int64_t channels = in.size(1), features = in.numel() / std::max<int64_t>(in.size(0), 1);
    TORCH_CHECK(in.dim() >= 2 && channels % groups_ == 0, "fastgan: graph node ", record_.index, " (norm) splits ",
                channels, " channels into ", groups_, " groups");
    TORCH_CHECK(groups_ == 1 || !(in.dim() == 2 && !in_order.empty()), "fastgan: graph node ", record_.index,
                " (norm): groups > 1 on features flattened from a channels-last batch");
    order_ = groups_ == 1 ? feature_order(in, in_order) : FeatureOrder{};
    for (const at::Tensor* p : {&weight_, &bias_}) {
      if (!p->defined()) continue;
      TORCH_CHECK(p->numel() == (per_channel_ ? channels : features), "fastgan: graph node ", record_.index,
                  " (norm) has ", p->numel(), " affine values for ", channels, " channels and ", features,
                  " features");
    }
    w_ = spread(weight_, in);
    b_ = spread(bias_, in);
    if (groups_ == 1) {  // one group: ATen's fused LayerNorm kernels over the rows, the affine map spread
      const at::Tensor rows = rows_of(in);
      auto [out, mean, rstd] = at::native_layer_norm(rows, {rows.size(1)}, flat(w_), flat(b_), eps_);
      mean_ = mean.view({-1, 1, 1});
      rstd_ = rstd.view({-1, 1, 1});
      return like_edge(out, in);
    }
    const at::Tensor x3 = grouped(in);
    auto [var, mean] = at::var_mean(x3, {-1}, /*correction=*/0, /*keepdim=*/true);
    mean_ = mean;
    rstd_ = (var + eps_).rsqrt_();
    at::Tensor y3 = (x3 - mean_) * rstd_;
    if (w_.defined()) y3.mul_(w_);
    if (b_.defined()) y3.add_(b_);
    return ungrouped(y3, in);
  }

  Tensors input_gradient(Pass&, const at::Tensor& e, const Tensors& x, const at::Tensor&, int64_t r0) override {
    if (groups_ == 1) return {like_edge(std::get<0>(layer_norm_backward(e, x[0], r0, {true, false, false})), x[0])};
    const at::Tensor xhat = normalised(x[0], r0);
    at::Tensor a = grouped(as_layout(e, x[0]));
    if (w_.defined()) a = a * w_;
    const at::Tensor dx = (a - row_mean(a) - xhat * row_mean(a * xhat)) * rstd_.narrow(0, r0, xhat.size(0));
    return {ungrouped(dx, x[0])};
  }

  void param_grads(Pass& pass, const at::Tensor& e, const Tensors& x, int64_t r0, int64_t block) override {
    if (!weight_.defined() && !bias_.defined()) return;
    at::Tensor dw, db;
    for (int64_t r = 0; r < x[0].size(0); r += block) {
      const int64_t rows = std::min(block, x[0].size(0) - r);
      const at::Tensor eb = e.narrow(0, r, rows), xb = x[0].narrow(0, r, rows);
      if (groups_ == 1) {
        auto res = layer_norm_backward(eb, xb, r0 + r, {false, weight_.defined(), bias_.defined()});
        if (weight_.defined()) accumulate(dw, std::get<1>(res));
        if (bias_.defined()) accumulate(db, std::get<2>(res));
        continue;
      }
      const at::Tensor e3 = grouped(as_layout(eb, xb));
      if (weight_.defined()) accumulate(dw, (e3 * normalised(xb, r0 + r)).sum(0));
      if (bias_.defined()) accumulate(db, e3.sum(0));
    }
    if (weight_.defined()) pass.add_grad(weight_index_, per_parameter(dw));
    if (bias_.defined()) pass.add_grad(bias_index_, per_parameter(db));
  }

  at::Tensor tangent(Pass& pass, const Tensors& t, const std::vector<bool>&, const at::Tensor& tbar,
                     const Tensors& x, const at::Tensor&, Tensors& q) override {
    const at::Tensor xhat = normalised(x[0], pass.row0);
    const at::Tensor tbar3 = grouped(as_layout(tbar, x[0]));
    const at::Tensor a = w_.defined() ? tbar3 * w_ : tbar3;
    NormTangent nt = norm_tangent(xhat, rstd_.narrow(0, pass.row0, xhat.size(0)), grouped(as_layout(t[0], x[0])), a);
    q[0] = ungrouped(nt.q, x[0]);
    if (weight_.defined()) pass.add_grad(weight_index_, per_parameter((tbar3 * nt.jx).sum(0)));
    return ungrouped(w_.defined() ? nt.jx.mul_(w_) : nt.jx, x[0]);
  }

  bool reads_input() const override { return true; }
  bool reads_signal() const override { return true; }
  bool second_order() const override { return true; }

 private:
  // (rows, G, M): a view in memory order for one group, NCHW order for several.
  at::Tensor grouped(const at::Tensor& t) const {
    if (groups_ == 1) return rows_of(t).view({t.size(0), 1, -1});
    return t.contiguous().view({t.size(0), groups_, -1});
  }

  // g (rows, G, M) in like's shape and layout.
  at::Tensor ungrouped(const at::Tensor& g, const at::Tensor& like) const {
    if (groups_ == 1) return like_edge(g.reshape({g.size(0), -1}), like);
    std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
    shape[0] = g.size(0);
    const at::Tensor out = g.reshape(shape);
    return channels_last(like) ? out.contiguous(at::MemoryFormat::ChannelsLast) : out;
  }

  // ATen's LayerNorm backward over rows of signal e at inputs x (rows from r0), one group.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_backward(const at::Tensor& e, const at::Tensor& x,
                                                                     int64_t r0, std::array<bool, 3> mask) const {
    const int64_t rows = x.size(0);
    const at::Tensor xr = rows_of(x);
    return at::native_layer_norm_backward(rows_of(as_layout(e, x)), xr, {xr.size(1)},
                                          mean_.narrow(0, r0, rows).view({rows, 1}),
                                          rstd_.narrow(0, r0, rows).view({rows, 1}), flat(w_), flat(b_), mask);
  }

  static at::Tensor flat(const at::Tensor& t) { return t.defined() ? t.reshape({-1}) : t; }

  // A per-channel or per-feature affine parameter spread over one sample's features as
  // (G, M), the order of grouped().
  at::Tensor spread(const at::Tensor& p, const at::Tensor& like) const {
    if (!p.defined()) return p;
    std::vector<int64_t> sample(like.sizes().begin() + 1, like.sizes().end());
    at::Tensor full = p.reshape({-1});
    if (per_channel_) {
      std::vector<int64_t> view(sample.size(), 1);
      view[0] = sample[0];
      full = full.view(view).expand(sample).reshape({-1});
    }
    if (groups_ == 1) full = to_memory_order(full, order_, 0);
    return full.reshape({groups_, -1});
  }

  // A (G, M) gradient summed over rows, as the parameter's gradient.
  at::Tensor per_parameter(const at::Tensor& el) const {
    at::Tensor v = el.reshape({-1});
    if (groups_ == 1) v = to_memory_order(v, order_, 0, /*back=*/true);
    const int64_t channels = per_channel_ ? weight_or_bias().numel() : v.numel();
    return per_channel_ ? v.reshape({channels, -1}).sum(1) : v;
  }

  const at::Tensor& weight_or_bias() const { return weight_.defined() ? weight_ : bias_; }

  // xhat (rows, G, M) of input rows x, the first being row r0 of the forward.
  at::Tensor normalised(const at::Tensor& x, int64_t r0) const {
    const int64_t rows = x.size(0);
    return (grouped(x) - mean_.narrow(0, r0, rows)) * rstd_.narrow(0, r0, rows);
  }

  static void accumulate(at::Tensor& total, const at::Tensor& part) {
    if (total.defined()) {
      total.add_(part);
    } else {
      total = part;
    }
  }

  NodeRecord record_;
  at::Tensor weight_, bias_, w_, b_, mean_, rstd_;
  int64_t weight_index_ = -1, bias_index_ = -1, groups_ = 1;
  bool per_channel_ = false;
  double eps_ = 1e-5;
  FeatureOrder order_;
};

}  // namespace

std::unique_ptr<Unit> make_norm(const NodeRecord& r, Params& p) { return std::make_unique<Norm>(r, p); }

}  // namespace graph
}  // namespace fastgan
