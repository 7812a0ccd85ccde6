// What the node kinds share: parameters, gradients, the elementwise kernels and the
// layout helpers (unit.h).
#include <ATen/core/dispatch/Dispatcher.h>

#include "unit.h"

namespace fastgan {
namespace graph {

at::Tensor Params::take(int64_t& index) {
  TORCH_CHECK(next_ < params_.size(), "fastgan: the graph needs more than ", params_.size(), " parameters");
  const at::Tensor& p = params_[next_];
  TORCH_CHECK(p.scalar_type() == like_.scalar_type() && p.device() == like_.device(), "fastgan: parameter ", next_,
              " is ", p.scalar_type(), " on ", p.device(), ", the input is ", like_.scalar_type(), " on ",
              like_.device());
  index = static_cast<int64_t>(next_);
  return params_[next_++];
}

void Pass::add_grad(int64_t index, const at::Tensor& g, const FeatureOrder& order, int64_t lead) {
  at::Tensor value = to_memory_order(g, order, lead, /*back=*/true);
  at::Tensor& slot = grads_[index];
  if (!slot.defined()) {
    slot = value;
  } else {
    slot.add_(value);
  }
}

void Pass::add_grad_mm(int64_t index, const at::Tensor& a, const at::Tensor& b, const FeatureOrder& order) {
  at::Tensor& slot = grads_[index];
  if (!order.empty()) return add_grad(index, at::mm(a, b), order, 1);
  if (!slot.defined()) {
    slot = at::mm(a, b);
  } else {
    slot.addmm_(a, b);
  }
}

void Pass::act(const at::Tensor& out, int mode, const at::Tensor& x, const at::Tensor& p, const at::Tensor& q,
               const at::Tensor& b, const BiasActSpec& spec, bool x_is_y) const {
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

bool channels_last(const at::Tensor& t) {
  return t.dim() == 4 && t.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

at::Tensor as_layout(const at::Tensor& t, const at::Tensor& like) {
  return t.strides() == like.strides() ? t : at::empty_like(like).copy_(t);
}

FeatureOrder feature_order(const at::Tensor& t, const FeatureOrder& flat_order) {
  if (channels_last(t)) {  // (a 1x1 batch's memory order is the module's)
    return t.size(2) * t.size(3) == 1 ? FeatureOrder{} : FeatureOrder{t.size(1), t.size(2), t.size(3)};
  }
  return t.dim() == 2 ? flat_order : FeatureOrder{};
}

at::Tensor to_memory_order(const at::Tensor& p, const FeatureOrder& order, int64_t lead, bool back) {
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

at::Tensor channel_sum(const at::Tensor& e) {
  return e.dim() == 4 ? e.sum({0, 2, 3}) : e.sum(0);
}

at::Tensor block_sum(const at::Tensor& e, int64_t block) {
  const int64_t rows = e.size(0);
  at::Tensor total = channel_sum(e.narrow(0, 0, std::min(block, rows)));
  for (int64_t r = block; r < rows; r += block) total.add_(channel_sum(e.narrow(0, r, std::min(block, rows - r))));
  return total;
}

std::array<int64_t, 2> pair(const int64_t* v) { return {v[0], v[1]}; }

void check_kind(bool ok, const NodeRecord& r, const char* kind, const char* what) {
  TORCH_CHECK(ok, "fastgan: graph node ", r.index, " (", kind, "): ", what);
}

}  // namespace graph
}  // namespace fastgan
