// bias_act's derivatives as C++ autograd Functions, the Autograd-key kernels of the
// three bias_act ops: no Python runs in the backward, and each backward computes only
// the gradients its graph task asks for (the bias's sum is skipped in a penalty's
// autograd.grad with respect to the input). Differentiable twice: bias_act's backward
// is BiasActGrad, whose backward is BiasActGrad again (for dy) and BiasActCurvature
// (for x and b); a third derivative raises. The Triton backend's twins of these
// Functions are in fastgan/ops/bias_act.py.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>

#include "bias_act.h"

namespace fastgan {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The scalars every op takes after its tensors.
struct Config {
  int64_t dim;
  std::string act;
  double alpha, gain, clamp;

  void save(AutogradContext* ctx) const {
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["act"] = act;
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["gain"] = gain;
    ctx->saved_data["clamp"] = clamp;
  }
  static Config load(AutogradContext* ctx) {
    return {ctx->saved_data["dim"].toInt(), ctx->saved_data["act"].toStringRef(),
            ctx->saved_data["alpha"].toDouble(), ctx->saved_data["gain"].toDouble(),
            ctx->saved_data["clamp"].toDouble()};
  }
};

c10::optional<at::Tensor> optional(const at::Tensor& t) {
  return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

// t with ref's memory layout (the kernels walk every operand in the same order).
at::Tensor like(const at::Tensor& t, const at::Tensor& ref) {
  return t.strides() == ref.strides() ? t : at::empty_like(ref).copy_(t);
}

// A per-element gradient summed to the bias's shape.
at::Tensor sum_to_bias(const at::Tensor& t, int64_t dim) {
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i != c10::maybe_wrap_dim(dim, t.dim())) dims.push_back(i);
  }
  return t.sum(dims);
}

// The ops below autograd, through the dispatcher: fake tensors and tracing then meet
// the op (and its fake implementation), never its kernel.
template <typename Fn>
c10::TypedOperatorHandle<Fn> op_handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Fn>();
}

template <typename Fn, typename... Args>
at::Tensor call_below_autograd(const c10::TypedOperatorHandle<Fn>& op, Args&&... args) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  return op.call(std::forward<Args>(args)...);
}

// p * q * gain * s''(x + b): the second derivative's term.
struct BiasActCurvature : torch::autograd::Function<BiasActCurvature> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& p, const at::Tensor& q, const at::Tensor& x,
                            const c10::optional<at::Tensor>& b, Config cfg) {
    static const auto op = op_handle<decltype(bias_act_grad2)>("fastgan::bias_act_grad2");
    return call_below_autograd(op, like(p, x), like(q, x), x, b, cfg.dim, cfg.act, cfg.alpha, cfg.gain, cfg.clamp);
  }
  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false, "fastgan.ops.bias_act is differentiable twice; a third derivative is not "
                       "implemented (use the eager backend for higher orders)");
  }
};

// dy * gain * s'(ref + b), s' read from the output when ref_is_y; linear in dy.
struct BiasActGrad : torch::autograd::Function<BiasActGrad> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& dy, const at::Tensor& ref,
                            const c10::optional<at::Tensor>& b, Config cfg, bool ref_is_y) {
    const at::Tensor dy_like = like(dy, ref);
    ctx->save_for_backward({dy_like, ref, b.value_or(at::Tensor())});
    cfg.save(ctx);
    ctx->saved_data["ref_is_y"] = ref_is_y;
    static const auto op = op_handle<decltype(bias_act_grad)>("fastgan::bias_act_grad");
    return call_below_autograd(op, dy_like, ref, b, cfg.dim, cfg.act, cfg.alpha, cfg.gain, cfg.clamp, ref_is_y);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &dy = saved[0], &ref = saved[1], &b = saved[2];
    const Config cfg = Config::load(ctx);
    const bool ref_is_y = ctx->saved_data["ref_is_y"].toBool();
    const bool need_b = b.defined() && ctx->needs_input_grad(2);
    at::Tensor d_dy, d_ref, d_b;
    if (ctx->needs_input_grad(0)) d_dy = BiasActGrad::apply(grads[0], ref, optional(b), cfg, ref_is_y);
    // s' read from the output is piecewise constant: no curvature term
    if (!ref_is_y && (ctx->needs_input_grad(1) || need_b)) {
      d_ref = BiasActCurvature::apply(grads[0], dy, ref, optional(b), cfg);
      if (need_b) d_b = sum_to_bias(d_ref, cfg.dim);
    }
    return {d_dy, d_ref, d_b, at::Tensor(), at::Tensor()};
  }
};

// clamp(gain * s(x + b), -clamp, clamp); saves only y where its sign gives s'
// (slope_from_output).
struct BiasAct : torch::autograd::Function<BiasAct> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const c10::optional<at::Tensor>& b,
                            Config cfg) {
    static const auto op = op_handle<decltype(bias_act)>("fastgan::bias_act");
    at::Tensor y = call_below_autograd(op, x, b, cfg.dim, cfg.act, cfg.alpha, cfg.gain, cfg.clamp);
    const bool ref_is_y = slope_from_output(cfg.act, cfg.alpha, cfg.gain, cfg.clamp);
    ctx->save_for_backward({ref_is_y ? y : x, b.value_or(at::Tensor())});
    cfg.save(ctx);
    ctx->saved_data["ref_is_y"] = ref_is_y;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &ref = saved[0], &b = saved[1];
    const Config cfg = Config::load(ctx);
    const at::Tensor dx = BiasActGrad::apply(grads[0], ref, optional(b), cfg, ctx->saved_data["ref_is_y"].toBool());
    const at::Tensor db = b.defined() && ctx->needs_input_grad(1) ? sum_to_bias(dx, cfg.dim) : at::Tensor();
    return {dx, db, at::Tensor()};
  }
};

at::Tensor bias_act_autograd(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim,
                             c10::string_view act, double alpha, double gain, double clamp) {
  return BiasAct::apply(x, b, Config{dim, std::string(act), alpha, gain, clamp});
}

at::Tensor bias_act_grad_autograd(const at::Tensor& dy, const at::Tensor& ref, const c10::optional<at::Tensor>& b,
                                  int64_t dim, c10::string_view act, double alpha, double gain, double clamp,
                                  bool ref_is_y) {
  return BiasActGrad::apply(dy, ref, b, Config{dim, std::string(act), alpha, gain, clamp}, ref_is_y);
}

at::Tensor bias_act_grad2_autograd(const at::Tensor& p, const at::Tensor& q, const at::Tensor& x,
                                   const c10::optional<at::Tensor>& b, int64_t dim, c10::string_view act,
                                   double alpha, double gain, double clamp) {
  return BiasActCurvature::apply(p, q, x, b, Config{dim, std::string(act), alpha, gain, clamp});
}

}  // namespace
}  // namespace fastgan

TORCH_LIBRARY_IMPL(fastgan, Autograd, m) {
  m.impl("bias_act", &fastgan::bias_act_autograd);
  m.impl("bias_act_grad", &fastgan::bias_act_grad_autograd);
  m.impl("bias_act_grad2", &fastgan::bias_act_grad2_autograd);
}
