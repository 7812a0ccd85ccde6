// Device-generic orchestration of the chain critic step. The passes are those of
// shared/docs/fused-gp-math.md, each layer kind supplying its forward, its input
// gradient (the backward signal), its tangent (the adjoint chain, interpolate rows
// only) and its second-order injection q (zero for the linear kinds and the
// piecewise-linear activations).
//
// Edge k is the input of layer k (edge 0 the stacked batch, edge L the output). The
// forward keeps H (all rows) at every edge. The backward signal E walks down over all
// rows, taking the parameter gradients of the ordinary (real and fake) rows on its way,
// and leaves behind it only the interpolate rows of each edge (Hi, Ei): the tangent
// pass (step 4) and the second-order pass read nothing else, so the peak memory is the
// forward plus two signals, not the forward plus every signal. The tangent pass adds
// each weighted layer's tangent-rows gradient (tbar x t) and records the second-order
// injections q; a second-order pass (only where some layer has a q) walks the adjoint
// hbar down from zero at the output and adds its gradients.
//
// Four-dimensional batches run in channels-last memory (oneDNN's convolutions ran about
// 1.4x faster in it on the CPU; cuDNN prefers it too, not measured here); a flatten of such a batch is then a view in (H, W, C) order, and the
// parameters that meet it are permuted to that order and their gradients back.
#include "chain.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <array>

#include "bias_act.h"
#include "critic.h"
#include "epilogues.h"

namespace fastgan {
namespace {

struct Layer {
  LayerKind kind = LayerKind::Linear;
  at::Tensor weight, bias;           // as the module holds them (undefined: none)
  int64_t weight_index = -1, bias_index = -1;
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1}, kernel{1, 1};
  bool ceil_mode = false, count_include_pad = true;
  BiasActSpec act{Act::Linear, 0.0, 1.0, -1.0};
  double eps = 1e-5;
  at::Tensor act_bias;               // act: its own bias, or the previous layer's folded in
  bool bias_folded = false;          // linear/conv: the next act adds the bias

  bool weighted() const { return kind == LayerKind::Linear || kind == LayerKind::Conv2d; }
  // The activation's slope is read from its output, so it runs in place on its input.
  bool act_in_place() const { return kind == LayerKind::Act && slope_from_output(act); }
};

std::vector<Layer> parse_layers(at::TensorList params, at::IntArrayRef ints, at::ArrayRef<double> floats,
                                const at::Tensor& like) {
  TORCH_CHECK(!ints.empty() && ints.size() % kLayerInts == 0 &&
                  floats.size() * kLayerInts == ints.size() * kLayerFloats,
              "fastgan: chain records: ", ints.size(), " ints and ", floats.size(), " floats");
  const size_t n = ints.size() / kLayerInts;
  std::vector<Layer> layers(n);
  size_t next_param = 0;
  auto take = [&](int64_t& index) {
    TORCH_CHECK(next_param < params.size(), "fastgan: the chain needs more than ", params.size(), " parameters");
    const at::Tensor& p = params[next_param];
    TORCH_CHECK(p.scalar_type() == like.scalar_type() && p.device() == like.device(), "fastgan: parameter ",
                next_param, " is ", p.scalar_type(), " on ", p.device(), ", the input is ", like.scalar_type(),
                " on ", like.device());
    index = static_cast<int64_t>(next_param);
    return params[next_param++];
  };
  for (size_t l = 0; l < n; ++l) {
    const int64_t* r = ints.data() + l * kLayerInts;
    const double* f = floats.data() + l * kLayerFloats;
    Layer& layer = layers[l];
    TORCH_CHECK(r[0] >= 0 && r[0] <= 5, "fastgan: chain layer ", l, " has unknown kind ", r[0]);
    layer.kind = static_cast<LayerKind>(r[0]);
    switch (layer.kind) {
      case LayerKind::Linear:
      case LayerKind::Conv2d:
        layer.weight = take(layer.weight_index);
        if (r[1] & 1) layer.bias = take(layer.bias_index);
        if (layer.kind == LayerKind::Conv2d) {
          TORCH_CHECK(layer.weight.dim() == 4, "fastgan: conv2d layer ", l, " needs a 4-D weight");
          layer.stride = {r[2], r[3]};
          layer.padding = {r[4], r[5]};
          layer.dilation = {r[6], r[7]};
        } else {
          TORCH_CHECK(layer.weight.dim() == 2, "fastgan: linear layer ", l, " needs a 2-D weight");
        }
        break;
      case LayerKind::Act:
        if (r[1] & 1) layer.bias = take(layer.bias_index);
        TORCH_CHECK(r[2] >= 0 && r[2] <= 8, "fastgan: chain layer ", l, " has unknown activation ", r[2]);
        layer.act = {static_cast<Act>(r[2]), f[0], f[1], f[2]};
        layer.act_bias = layer.bias;
        break;
      case LayerKind::Flatten:
        break;
      case LayerKind::AvgPool:
        layer.ceil_mode = r[1] & 1;
        layer.count_include_pad = (r[1] >> 1) & 1;
        layer.kernel = {r[2], r[3]};
        layer.stride = {r[4], r[5]};
        layer.padding = {r[6], r[7]};
        break;
      case LayerKind::LayerNorm:
        if (r[1] & 1) layer.weight = take(layer.weight_index);
        if (r[1] & 2) layer.bias = take(layer.bias_index);
        layer.eps = f[0];
        break;
    }
  }
  TORCH_CHECK(next_param == params.size(), "fastgan: the chain takes ", next_param, " parameters, got ",
              params.size());
  // A linear or conv2d bias followed by an activation without one is added by the
  // activation's kernel: one pass over the rows instead of two.
  for (size_t l = 0; l + 1 < n; ++l) {
    Layer& next = layers[l + 1];
    if (layers[l].weighted() && layers[l].bias.defined() && next.kind == LayerKind::Act && !next.bias.defined()) {
      layers[l].bias_folded = true;
      next.act_bias = layers[l].bias;
    }
  }
  return layers;
}

bool channels_last(const at::Tensor& t) {
  return t.dim() == 4 && t.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

// t in like's memory layout (the element loops walk all their operands in one order).
at::Tensor as_layout(const at::Tensor& t, const at::Tensor& like) {
  return t.strides() == like.strides() ? t : at::empty_like(like).copy_(t);
}

// The elementwise kernels: fastgan's C++/CUDA ones, or with `triton` their Triton twins,
// registered from Python (fastgan/kernels/chain_elementwise.py) and reached through the
// dispatcher.
void act_kernel(bool triton, const at::Tensor& out, int mode, const at::Tensor& x, const at::Tensor& p,
                const at::Tensor& q, const at::Tensor& b, const BiasActSpec& spec, bool x_is_y) {
  if (!triton) return bias_act_into(out, mode, x, p, q, b, 1, spec, x_is_y);
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastgan_triton::bias_act_into", "")
          .typed<void(const at::Tensor&, int64_t, const at::Tensor&, const c10::optional<at::Tensor>&,
                      const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&, int64_t, int64_t, double,
                      double, double, bool)>();
  auto opt = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
  op.call(out, mode, x, opt(p), opt(q), opt(b), 1, static_cast<int64_t>(spec.act), spec.alpha, spec.gain,
          spec.clamp, x_is_y);
}

at::Tensor penalty_kernel(bool triton, const PenaltyArgs& args) {
  if (!triton) return penalty(args);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastgan_triton::penalty_rows", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, double, bool)>();
  return op.call(args.g, args.u, args.lam_over_batch, args.center, args.one_sided);
}

// The feature order of a 2-D edge made by flattening a channels-last batch: its
// (C, H, W), or empty when the features are in the module's own order.
using FeatureOrder = std::vector<int64_t>;

FeatureOrder feature_order(const at::Tensor& t, const FeatureOrder& flat_order) {
  if (channels_last(t)) return {t.size(1), t.size(2), t.size(3)};
  return t.dim() == 2 ? flat_order : FeatureOrder{};
}

// A parameter whose last dimensions are the features in (C, H, W) order (`lead`
// dimensions in front), in memory order (H, W, C); `back` does the inverse.
at::Tensor to_memory_order(const at::Tensor& p, const FeatureOrder& order, int64_t lead, bool back = false) {
  if (order.empty()) return p;
  std::vector<int64_t> shape(p.sizes().begin(), p.sizes().begin() + lead);
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < lead; ++i) perm.push_back(i);
  const int64_t C = order[0], H = order[1], W = order[2];
  if (!back) {
    shape.insert(shape.end(), {C, H, W});
    perm.insert(perm.end(), {lead + 1, lead + 2, lead});
  } else {
    shape.insert(shape.end(), {H, W, C});
    perm.insert(perm.end(), {lead + 2, lead, lead + 1});
  }
  std::vector<int64_t> out_shape(p.sizes().begin(), p.sizes().begin() + lead);
  out_shape.push_back(C * H * W);
  return p.reshape(shape).permute(perm).reshape(out_shape);
}

// The rows of a batch as a (rows, features) matrix in memory order (a view), and back.
at::Tensor rows_of(const at::Tensor& t) {
  if (channels_last(t)) return t.permute({0, 2, 3, 1}).reshape({t.size(0), -1});
  return t.reshape({t.size(0), -1});
}

at::Tensor like_edge(const at::Tensor& rows, const at::Tensor& like) {
  if (channels_last(like)) {
    return rows.view({rows.size(0), like.size(2), like.size(3), like.size(1)}).permute({0, 3, 1, 2});
  }
  std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
  shape[0] = rows.size(0);
  return rows.view(shape);
}

// Everything a pass needs of a layer's parameters, converted once per step.
struct Prepared {
  at::Tensor weight;     // linear: permuted to the input's feature order; conv2d: in the input's memory
                         // format; LayerNorm: flattened
  at::Tensor bias;       // LayerNorm: flattened; act: in the input's feature order
  FeatureOrder in_order; // the input edge's feature order
  FeatureOrder bias_order;  // act: the order of its bias (that of a 2-D input)
  std::vector<int64_t> ln_shape;  // LayerNorm: {features}
};

// LayerNorm over all features of each row, from its saved row statistics.
struct NormRows {
  at::Tensor mean, rstd;  // (rows, 1)
};

at::Tensor normalized(const at::Tensor& x, const NormRows& s, int64_t row0, int64_t rows) {
  return (x - s.mean.narrow(0, row0, rows)) * s.rstd.narrow(0, row0, rows);
}

// The LayerNorm's tangent without its weight, jx = r (t - mean t - xhat mean(xhat t)),
// and its second-order term q = d/dx <tbar, J(x) t> (J with the weight), derived as
//   q = -(r^2/n)(A - C m) xhat - r^2 m (a - mean a - xhat mean(xhat a)) - (r^2 C/n)(t - mean t - xhat m)
// with a = tbar * weight, m = mean(xhat t), A = sum(a (t - mean t)), C = sum(a xhat), n
// the features of a row and r its 1/std; computed from per-row scalars as
// q = alpha xhat + beta a + gamma t + delta, a few passes over the rows.
struct NormTangent {
  at::Tensor jx, q;
};

NormTangent norm_tangent(const at::Tensor& xhat, const at::Tensor& r, const at::Tensor& t, const at::Tensor& tbar,
                         const at::Tensor& weight) {
  const double n = static_cast<double>(xhat.size(1));
  const at::Tensor a = weight.defined() ? tbar * weight : tbar;
  auto dot = [](const at::Tensor& u, const at::Tensor& v) {  // per-row dot products, (rows, 1)
    return at::linalg_vecdot(u, v).unsqueeze(1);
  };
  const at::Tensor mt = t.mean(1, true), ma = a.mean(1, true);
  const at::Tensor m = dot(xhat, t) / n, mxa = dot(xhat, a) / n;
  const at::Tensor A = dot(a, t) - mt * ma * n, C = mxa * n;
  const at::Tensor r2 = r * r;
  const at::Tensor alpha = r2 * (-(A - C * m) / n + m * mxa + C * m / n);
  const at::Tensor delta = r2 * (m * ma + C * mt / n);
  at::Tensor q = at::addcmul(delta, xhat, alpha);
  q.addcmul_(a, -r2 * m).addcmul_(t, -r2 * C / n);
  at::Tensor jx = at::addcmul(-r * mt, t, r);
  jx.addcmul_(xhat, -r * m);
  return {jx, q};
}

class Chain {
 public:
  Chain(std::vector<Layer> layers, std::vector<at::Tensor>& grads, bool triton)
      : L_(std::move(layers)), grads_(grads), triton_(triton) {
    for (const Layer& layer : L_) {
      any_second_order_ = any_second_order_ || layer.kind == LayerKind::LayerNorm ||
                          (layer.kind == LayerKind::Act && is_smooth(layer.act.act));
    }
  }

  // Step 1 over all rows of X.
  void forward(const at::Tensor& X) {
    const size_t n = L_.size();
    H_.assign(n + 1, at::Tensor());
    prep_.assign(n, Prepared());
    norms_.assign(n, NormRows());
    H_[0] = X;
    FeatureOrder order;
    for (size_t l = 0; l < n; ++l) {
      const Layer& layer = L_[l];
      const at::Tensor& x = H_[l];
      Prepared& p = prep_[l];
      p.in_order = feature_order(x, order);
      at::Tensor y;
      switch (layer.kind) {
        case LayerKind::Linear:
          TORCH_CHECK(x.dim() == 2 && x.size(1) == layer.weight.size(1), "fastgan: linear layer ", l,
                      " expects (rows, ", layer.weight.size(1), ") input, got ", x.sizes());
          p.weight = to_memory_order(layer.weight, p.in_order, 1);
          y = (layer.bias.defined() && !layer.bias_folded) ? at::addmm(layer.bias, x, p.weight.t())
                                                             : at::mm(x, p.weight.t());
          break;
        case LayerKind::Conv2d:
          TORCH_CHECK(x.dim() == 4 && x.size(1) == layer.weight.size(1), "fastgan: conv2d layer ", l,
                      " expects (rows, ", layer.weight.size(1), ", H, W) input, got ", x.sizes());
          // in the input's memory format once, not converted by every convolution call
          p.weight = layer.weight.contiguous(x.suggest_memory_format());
          y = at::convolution(x, p.weight, layer.bias_folded ? at::Tensor() : layer.bias, layer.stride,
                              layer.padding, layer.dilation, false, {0, 0}, 1);
          break;
        case LayerKind::Act:
          if (x.dim() == 2) p.bias_order = p.in_order;
          if (layer.act_bias.defined()) p.bias = to_memory_order(layer.act_bias, p.bias_order, 0);
          y = layer.act_in_place() ? x : at::empty_like(x);
          act_kernel(triton_, y, 0, x, at::Tensor(), at::Tensor(), p.bias, layer.act, false);
          break;
        case LayerKind::Flatten:
          y = rows_of(x);
          if (channels_last(x)) order = {x.size(1), x.size(2), x.size(3)};
          break;
        case LayerKind::AvgPool:
          TORCH_CHECK(x.dim() == 4, "fastgan: avgpool layer ", l, " expects 4-D input, got ", x.sizes());
          y = at::avg_pool2d(x, layer.kernel, layer.stride, layer.padding, layer.ceil_mode,
                             layer.count_include_pad, c10::nullopt);
          break;
        case LayerKind::LayerNorm: {
          const at::Tensor rows = rows_of(x);
          const int64_t features = rows.size(1);
          for (const at::Tensor* t : {&layer.weight, &layer.bias}) {
            TORCH_CHECK(!t->defined() || t->numel() == features, "fastgan: layernorm layer ", l,
                        " normalises ", t->numel(), " values, its input has ", features, " per sample");
          }
          p.ln_shape = {features};
          if (layer.weight.defined()) p.weight = to_memory_order(layer.weight.reshape({-1}), p.in_order, 0);
          if (layer.bias.defined()) p.bias = to_memory_order(layer.bias.reshape({-1}), p.in_order, 0);
          auto [out, mean, rstd] = at::native_layer_norm(rows, p.ln_shape, p.weight, p.bias, layer.eps);
          norms_[l] = {mean.view({-1, 1}), rstd.view({-1, 1})};
          y = like_edge(out, x);
          break;
        }
      }
      if ((layer.kind != LayerKind::Flatten && y.dim() != 2) || layer.kind == LayerKind::Linear) order.clear();
      H_[l + 1] = y;
    }
    TORCH_CHECK(H_[n].numel() == H_[n].size(0), "fastgan: the chain's output must be one value per sample, got ",
                H_[n].sizes());
  }

  at::Tensor output() const { return H_.back().reshape({-1}); }

  // Step 2: back-propagates `seed` (one value per row) to every edge, and, with
  // param_grads, takes the ordinary rows' (the first `ordinary`) parameter gradients on
  // the way. Edge 0 is reached over the interpolate rows only (B rows from row0; none
  // when row0 < 0). Behind the signal, every edge keeps only its interpolate rows: Hi
  // (the forward) and Ei (the signal), which the later passes read. Returns g.
  at::Tensor backward_signal(const at::Tensor& seed, int64_t ordinary, int64_t row0, int64_t B, bool param_grads) {
    const size_t n = L_.size();
    const bool penalised = row0 >= 0;
    std::vector<at::Tensor> E(n + 1);
    Hi_.assign(n + 1, at::Tensor());
    Ei_.assign(n + 1, at::Tensor());
    E[n] = seed.view(H_[n].sizes());
    // An activation with its own bias first: its bias gradient needs every row.
    const bool full_first = L_[0].kind == LayerKind::Act && L_[0].bias.defined();
    at::Tensor g;
    for (size_t l = n; l-- > 0;) {
      const Layer& layer = L_[l];
      const bool interp_only = l == 0 && !full_first;
      if (!layer.act_in_place()) release(l + 1, row0, B);  // only an in-place activation reads its output
      if (!(interp_only && !penalised)) {
        const int64_t r0 = interp_only ? row0 : 0;
        const int64_t rows = interp_only ? B : H_[l].size(0);
        E[l] = input_gradient(l, E[l + 1].narrow(0, r0, rows), H_[l].narrow(0, r0, rows), r0, rows, false);
      }
      if (param_grads) ordinary_gradients(l, E[l + 1], E[l], ordinary, B);
      release(l + 1, row0, B);
      if (penalised && reads_signal(l + 1)) Ei_[l + 1] = keep_rows(E[l + 1], row0, B);
      E[l + 1] = at::Tensor();
    }
    if (!penalised) return at::Tensor();
    release(0, row0, B);
    g = full_first ? keep_rows(E[0], row0, B) : E[0];
    Ei_[0] = g;
    return g;
  }

  // Step 4: the tangent t of the interpolate rows (t_0 = u, in g's layout) through every
  // layer, with the tangent rows' weight gradients (tbar x t) and the second-order
  // injections q where a layer has them.
  void tangent(const at::Tensor& u) {
    const size_t n = L_.size();
    Q_.assign(n, at::Tensor());
    at::Tensor t = u;
    for (size_t l = 0; l < n; ++l) {
      const Layer& layer = L_[l];
      const Prepared& p = prep_[l];
      const at::Tensor& x = Hi_[l];
      const at::Tensor& tbar = Ei_[l + 1];
      at::Tensor y;
      switch (layer.kind) {
        case LayerKind::Linear:
          add_weight_grad(l, tbar, t);
          y = at::mm(t, p.weight.t());
          break;
        case LayerKind::Conv2d:
          add_weight_grad(l, tbar, t);
          y = at::convolution(t, p.weight, at::Tensor(), layer.stride, layer.padding, layer.dilation, false,
                              {0, 0}, 1);
          break;
        case LayerKind::Act: {
          const at::Tensor ref = layer.act_in_place() ? Hi_[l + 1] : x;
          const at::Tensor tt = as_layout(t, ref);
          if (is_smooth(layer.act.act)) {
            Q_[l] = at::empty_like(x);
            act_kernel(triton_, Q_[l], 2, x, as_layout(tbar, x), tt, p.bias, layer.act, false);
          }
          y = tt;  // in place: each tangent is read by the next layer only
          act_kernel(triton_, y, 1, ref, tt, at::Tensor(), p.bias, layer.act, layer.act_in_place());
          break;
        }
        case LayerKind::Flatten:
          y = rows_of(t);
          break;
        case LayerKind::AvgPool:
          y = at::avg_pool2d(t, layer.kernel, layer.stride, layer.padding, layer.ceil_mode,
                             layer.count_include_pad, c10::nullopt);
          break;
        case LayerKind::LayerNorm: {
          const int64_t B = x.size(0);
          const at::Tensor xr = rows_of(x), tr = rows_of(as_layout(t, x)), br = rows_of(as_layout(tbar, x));
          const at::Tensor rstd = norms_[l].rstd.narrow(0, row0_, B);
          const NormTangent nt = norm_tangent(normalized(xr, norms_[l], row0_, B), rstd, tr, br, p.weight);
          Q_[l] = like_edge(nt.q, x);
          if (layer.weight.defined()) add_grad(layer.weight_index, (br * nt.jx).sum(0), p.in_order);
          y = like_edge(p.weight.defined() ? nt.jx.mul_(p.weight) : nt.jx, x);
          break;
        }
      }
      t = y;
    }
  }

  // Step 5's second-order part: hbar, the interpolate rows' adjoint of the primal,
  // from 0 at the output down, q injected at each layer that has one, into the
  // parameter gradients (a layer's weights see hbar at its output and the forward at
  // its input; biases see hbar alone). Nothing to do without a second-order layer.
  void second_order_gradients() {
    at::Tensor hbar;  // at the output of the current layer; undefined: zero
    for (size_t l = L_.size(); l-- > 0;) {
      const Layer& layer = L_[l];
      const Prepared& p = prep_[l];
      if (hbar.defined()) {
        if (layer.weighted()) {
          add_weight_grad(l, hbar, Hi_[l]);
          if (layer.bias.defined()) add_grad(layer.bias_index, channel_sum(hbar), {});
        } else if (layer.kind == LayerKind::LayerNorm) {
          norm_param_grads(l, hbar, Hi_[l], row0_);
        }
      }
      const bool own_bias = layer.kind == LayerKind::Act && layer.bias.defined();
      if (l == 0 && !own_bias) break;
      if (hbar.defined()) hbar = input_gradient(l, hbar, Hi_[l], row0_, Hi_[l].size(0), true);
      if (Q_[l].defined()) hbar = hbar.defined() ? hbar.add_(Q_[l]) : Q_[l];
      if (own_bias && hbar.defined()) add_grad(layer.bias_index, channel_sum(hbar), p.bias_order);
    }
  }

  void set_row0(int64_t row0) { row0_ = row0; }

  // R1: the real rows' loss seeds, applied to their signal (seeded with 1) in the
  // ordinary gradients.
  void set_real_seed(const at::Tensor& seed) { real_seed_ = seed; }

 private:
  // The parameter gradients of layer l from the ordinary rows [0, ordinary): e_out is the
  // signal at its output, e_in at its input (all rows).
  void ordinary_gradients(size_t l, const at::Tensor& e_out, const at::Tensor& e_in, int64_t ordinary, int64_t B) {
    const Layer& layer = L_[l];
    const Prepared& p = prep_[l];
    if (layer.weighted()) {
      const at::Tensor e = ordinary_signal(e_out, ordinary, B);
      add_weight_grad(l, e, H_[l].narrow(0, 0, ordinary));
      if (layer.bias.defined()) add_grad(layer.bias_index, block_sum(e, ordinary, B), {});
    } else if (layer.kind == LayerKind::LayerNorm && (layer.weight.defined() || layer.bias.defined())) {
      // block by block of B rows, so that equal and opposite real and fake terms cancel exactly
      const at::Tensor e = ordinary_signal(e_out, ordinary, B);
      for (int64_t r = 0; r < ordinary; r += B) {
        norm_param_grads(l, e.narrow(0, r, B), H_[l].narrow(0, r, B), r);
      }
    } else if (layer.kind == LayerKind::Act && layer.bias.defined()) {
      add_grad(layer.bias_index, block_sum(ordinary_signal(e_in, ordinary, B), ordinary, B), p.bias_order);
    }
  }

  // The ordinary rows of signal e. With R1 the real rows carried seed 1 (their signal is
  // also g's): the loss's own seeds, one per real row, scale them here, on a copy.
  at::Tensor ordinary_signal(const at::Tensor& e, int64_t ordinary, int64_t B) const {
    if (!real_seed_.defined()) return e.narrow(0, 0, ordinary);
    at::Tensor out = e.narrow(0, 0, ordinary).clone(at::MemoryFormat::Preserve);
    std::vector<int64_t> shape(e.dim(), 1);
    shape[0] = B;
    out.narrow(0, 0, B).mul_(real_seed_.view(shape));
    return out;
  }

  // LayerNorm l's weight and bias gradients from output signal e at inputs x (rows from r0).
  void norm_param_grads(size_t l, const at::Tensor& e, const at::Tensor& x, int64_t r0) {
    const Layer& layer = L_[l];
    const Prepared& p = prep_[l];
    if (!layer.weight.defined() && !layer.bias.defined()) return;
    const int64_t rows = x.size(0);
    auto res = at::native_layer_norm_backward(rows_of(as_layout(e, x)), rows_of(x), p.ln_shape,
                                              norms_[l].mean.narrow(0, r0, rows),
                                              norms_[l].rstd.narrow(0, r0, rows), p.weight, p.bias,
                                              {false, layer.weight.defined(), layer.bias.defined()});
    if (layer.weight.defined()) add_grad(layer.weight_index, std::get<1>(res), p.in_order);
    if (layer.bias.defined()) add_grad(layer.bias_index, std::get<2>(res), p.in_order);
  }

  // The input gradient of layer l for output gradient e and input x (rows [r0, r0 + rows)).
  // Piecewise-linear activations work in place on e; smooth ones only where e is not
  // needed later (the second-order pass's own hbar).
  at::Tensor input_gradient(size_t l, const at::Tensor& e, const at::Tensor& x, int64_t r0, int64_t rows,
                            bool hbar) {
    const Layer& layer = L_[l];
    const Prepared& p = prep_[l];
    switch (layer.kind) {
      case LayerKind::Linear:
        return at::mm(e, p.weight);
      case LayerKind::Conv2d: {
        auto res = at::convolution_backward(e, x, p.weight, c10::nullopt, layer.stride, layer.padding,
                                            layer.dilation, false, {0, 0}, 1, {true, false, false});
        return std::get<0>(res);
      }
      case LayerKind::Act: {
        const at::Tensor ref = layer.act_in_place() ? (hbar ? Hi_[l + 1] : H_[l + 1].narrow(0, r0, rows)) : x;
        const at::Tensor ee = as_layout(e, ref);
        const at::Tensor out = (is_smooth(layer.act.act) && !hbar) ? at::empty_like(ref) : ee;
        act_kernel(triton_, out, 1, ref, ee, at::Tensor(), p.bias, layer.act, layer.act_in_place());
        return out;
      }
      case LayerKind::Flatten:
        return like_edge(e, x);
      case LayerKind::AvgPool:
        return at::avg_pool2d_backward(e, x, layer.kernel, layer.stride, layer.padding, layer.ceil_mode,
                                       layer.count_include_pad, c10::nullopt);
      case LayerKind::LayerNorm: {
        auto res = at::native_layer_norm_backward(rows_of(as_layout(e, x)), rows_of(x), p.ln_shape,
                                                  norms_[l].mean.narrow(0, r0, rows),
                                                  norms_[l].rstd.narrow(0, r0, rows), p.weight, p.bias,
                                                  {true, false, false});
        return like_edge(std::get<0>(res), x);
      }
    }
    TORCH_CHECK(false, "fastgan: unreachable layer kind");
  }

  // grad W of a weighted layer += the product of output gradients e and inputs x.
  void add_weight_grad(size_t l, const at::Tensor& e, const at::Tensor& x) {
    const Layer& layer = L_[l];
    if (layer.kind == LayerKind::Linear) {
      add_grad(layer.weight_index, at::mm(e.t(), x), prep_[l].in_order, 1);
      return;
    }
    auto res = at::convolution_backward(e, x.contiguous(e.suggest_memory_format()), prep_[l].weight, c10::nullopt,
                                        layer.stride, layer.padding, layer.dilation, false, {0, 0}, 1,
                                        {false, true, false});
    add_grad(layer.weight_index, std::get<1>(res), {});
  }

  // Edge k's forward is behind the signal: keep its interpolate rows (row0 >= 0), free the rest.
  void release(size_t k, int64_t row0, int64_t B) {
    if (!H_[k].defined()) return;
    if (row0 >= 0 && reads_forward(k)) Hi_[k] = keep_rows(H_[k], row0, B);
    H_[k] = at::Tensor();
  }

  // Whether a later pass reads edge k's forward on the interpolate rows: an activation
  // that is not in place (its input), one that is (its output), and every layer of a
  // chain with second-order injections (the hbar pass).
  bool reads_forward(size_t k) const {
    if (any_second_order_) return true;
    const bool act_input = k < L_.size() && L_[k].kind == LayerKind::Act && !L_[k].act_in_place();
    return act_input || (k > 0 && L_[k - 1].act_in_place());
  }

  // Whether a later pass reads edge k's signal on the interpolate rows (tbar): the output
  // of a weighted layer (its tangent-rows gradient), of a smooth activation or a
  // LayerNorm (their q).
  bool reads_signal(size_t k) const {
    if (k == 0) return false;
    const Layer& layer = L_[k - 1];
    return layer.weighted() || layer.kind == LayerKind::LayerNorm ||
           (layer.kind == LayerKind::Act && is_smooth(layer.act.act));
  }

  // Rows [row0, row0 + B) of t, as a tensor of their own in t's layout.
  static at::Tensor keep_rows(const at::Tensor& t, int64_t row0, int64_t B) {
    return t.narrow(0, row0, B).clone(at::MemoryFormat::Preserve);
  }

  static at::Tensor channel_sum(const at::Tensor& e) {
    return e.dim() == 4 ? e.sum({0, 2, 3}) : e.sum(0);
  }

  // The channel sums of rows [0, rows), block by block of `block` rows (the real and
  // fake rows): equal and opposite real and fake seeds then cancel exactly.
  static at::Tensor block_sum(const at::Tensor& e, int64_t rows, int64_t block) {
    at::Tensor total = channel_sum(e.narrow(0, 0, std::min(block, rows)));
    for (int64_t r = block; r < rows; r += block) total.add_(channel_sum(e.narrow(0, r, std::min(block, rows - r))));
    return total;
  }

  void add_grad(int64_t index, const at::Tensor& g, const FeatureOrder& order, int64_t lead = 0) {
    at::Tensor value = to_memory_order(g, order, lead, /*back=*/true);
    at::Tensor& slot = grads_[index];
    if (!slot.defined()) {
      slot = value;
    } else {
      slot.add_(value);
    }
  }

  std::vector<Layer> L_;
  std::vector<at::Tensor>& grads_;
  bool triton_;
  bool any_second_order_ = false;
  int64_t row0_ = 0;
  at::Tensor real_seed_;
  std::vector<at::Tensor> H_, Hi_, Ei_, Q_;
  std::vector<Prepared> prep_;
  std::vector<NormRows> norms_;
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>> chain_step(
    const at::Tensor& real, const at::Tensor& fake, const c10::optional<at::Tensor>& eps,
    at::TensorList params, at::IntArrayRef ints, at::ArrayRef<double> floats, int64_t loss_kind,
    double lam, double center, bool one_sided, bool param_grads, bool triton) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  check_real_fake(real, fake, 0);
  TORCH_CHECK(loss_kind >= 0 && loss_kind <= 2, "fastgan: unknown chain loss ", loss_kind);
  const auto loss = static_cast<ChainLoss>(loss_kind);
  const int64_t B = real.size(0);
  const bool penalised = loss != ChainLoss::WGAN;
  TORCH_CHECK(eps.has_value() == (loss == ChainLoss::WGANGP), "fastgan: eps is given with wgan-gp only");
  // The penalised rows: x^ after the real and fake rows (wgan-gp), or the real rows
  // themselves (R1, whose penalty is on the reals).
  const bool r1 = loss == ChainLoss::R1;
  const int64_t rows = loss == ChainLoss::WGANGP ? 3 * B : 2 * B, row0 = r1 ? 0 : 2 * B;
  const double inv_b = 1.0 / static_cast<double>(B);

  // Step 1: X = [real; fake; x^] (without x^ for wgan and R1), channels-last for image batches.
  std::vector<int64_t> shape(real.sizes().begin(), real.sizes().end());
  shape[0] = rows;
  const at::Tensor X = at::empty(shape, real.options().memory_format(
                                             real.dim() == 4 ? at::MemoryFormat::ChannelsLast
                                                             : at::MemoryFormat::Contiguous));
  X.narrow(0, 0, B).copy_(real);
  X.narrow(0, B, B).copy_(fake);
  if (loss == ChainLoss::WGANGP) {
    TORCH_CHECK(eps->numel() == B, "fastgan: eps has ", eps->numel(), " elements for batch ", B);
    std::vector<int64_t> eshape(real.dim(), 1);
    eshape[0] = B;
    at::Tensor x_hat = X.narrow(0, row0, B);
    at::lerp_out(x_hat, fake, real, eps->reshape(eshape).to(real.options()));
  }
  std::vector<Layer> layers = parse_layers(params, ints, floats, X);
  std::vector<at::Tensor> grads(params.size());
  Chain chain(std::move(layers), grads, triton);
  chain.set_row0(row0);
  chain.forward(X);

  const at::Tensor D = chain.output();
  const at::Tensor d_real = D.narrow(0, 0, B), d_fake = D.narrow(0, B, B);
  const at::Tensor wasserstein = (d_real.sum() - d_fake.sum()) * inv_b;
  at::Tensor seed = at::empty({rows}, X.options());
  at::Tensor base_loss;
  if (r1) {
    // softplus(-D) for the reals, softplus(D) for the fakes: seeds -sigmoid(-D)/B, sigmoid(D)/B.
    // The real rows are seeded with 1 (for g); their own seeds scale their signal in the
    // ordinary gradients, as the backward is linear in the seed.
    base_loss = (at::softplus(-d_real).sum() + at::softplus(d_fake).sum()) * inv_b;
    chain.set_real_seed(at::sigmoid(-d_real).mul_(-inv_b));
    seed.narrow(0, B, B).copy_(at::sigmoid(d_fake)).mul_(inv_b);
  } else {
    base_loss = -wasserstein;
    seed.narrow(0, 0, B).fill_(-inv_b);
    seed.narrow(0, B, B).fill_(inv_b);
  }
  at::Tensor penalty = at::zeros({}, X.options());
  if (!penalised && !param_grads) return {base_loss, wasserstein, penalty, {}};
  if (penalised) seed.narrow(0, row0, B).fill_(1.0);

  // Step 2 (with the ordinary rows' gradients), and step 3 on g = grad_x D over the
  // interpolate (R1: real) rows.
  const at::Tensor g = chain.backward_signal(seed, 2 * B, penalised ? row0 : -1, B, param_grads);
  if (penalised) {
    const at::Tensor g_rows = rows_of(g);
    PenaltyArgs pen;
    pen.g = g_rows.is_contiguous() ? g_rows : g_rows.contiguous();
    pen.u = at::empty_like(pen.g);
    pen.lam_over_batch = lam * inv_b;
    pen.center = loss == ChainLoss::R1 ? 0.0 : center;
    pen.one_sided = loss == ChainLoss::R1 ? false : one_sided;
    penalty = penalty_kernel(triton, pen) * inv_b;
    const at::Tensor total = base_loss + penalty * lam;
    if (!param_grads) return {total, wasserstein, penalty, {}};
    // Steps 4 and 5's second-order part.
    chain.tangent(like_edge(pen.u, g));
    chain.second_order_gradients();
    base_loss = total;
  }
  for (size_t i = 0; i < grads.size(); ++i) {
    grads[i] = grads[i].defined() ? grads[i].reshape(params[i].sizes()).contiguous()
                                  : at::zeros_like(params[i]);
  }
  return {base_loss, wasserstein, penalty, grads};
}

}  // namespace fastgan
