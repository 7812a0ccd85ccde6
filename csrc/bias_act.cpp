// bias_act's ops: argument checks, then the element loop of the tensors' device.
#include "bias_act.h"

#include <ATen/ATen.h>

#include "bias_act_math.h"

namespace fastgan {

namespace cpu {
void bias_act_loop(const detail::BiasActLoop& loop, const BiasActSpec& spec);
}
#ifdef FASTGAN_WITH_CUDA
namespace cuda {
void bias_act_loop(const detail::BiasActLoop& loop, const BiasActSpec& spec);
}
#endif

Act parse_act(c10::string_view name) {
  static const std::pair<const char*, Act> kNames[] = {
      {"linear", Act::Linear}, {"relu", Act::ReLU}, {"lrelu", Act::LeakyReLU}, {"tanh", Act::Tanh},
      {"sigmoid", Act::Sigmoid}, {"softplus", Act::Softplus}, {"silu", Act::SiLU}, {"elu", Act::ELU},
      {"gelu", Act::GELU}};
  for (const auto& [n, act] : kNames) {
    if (name == n) return act;
  }
  TORCH_CHECK(false, "fastgan: bias_act has no activation '", name,
              "' (linear, relu, lrelu, tanh, sigmoid, softplus, silu, elu, gelu)");
}

namespace {

// Fills the loop's layout from x: the bias is indexed by the channel of each element's
// memory offset, (offset / stride[dim]) % size[dim], which holds for any dense layout.
detail::BiasActLoop make_loop(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim,
                              const at::Tensor& out = at::Tensor()) {
  TORCH_CHECK(x.is_non_overlapping_and_dense(), "fastgan: bias_act needs a dense tensor");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "fastgan: bias_act needs floating input, got ",
              x.scalar_type());
  detail::BiasActLoop loop;
  loop.x = x;
  if (b.has_value() && b->defined()) {
    TORCH_CHECK(x.dim() > 0, "fastgan: bias_act with a bias needs at least one dimension");
    dim = c10::maybe_wrap_dim(dim, x.dim());
    TORCH_CHECK(b->dim() == 1 && b->size(0) == x.size(dim), "fastgan: bias has shape ", b->sizes(),
                ", expected (", x.size(dim), ") for dim ", dim, " of ", x.sizes());
    TORCH_CHECK(b->scalar_type() == x.scalar_type() && b->device() == x.device(),
                "fastgan: bias is ", b->scalar_type(), " on ", b->device(), ", x is ", x.scalar_type(),
                " on ", x.device());
    loop.b = b->contiguous();
    loop.channels = x.size(dim);
    loop.channel_stride = std::max<int64_t>(x.stride(dim), 1);
  }
  loop.out = out.defined() ? out : at::empty_like(x);
  return loop;
}

void check_like(const at::Tensor& t, const at::Tensor& x, const char* name) {
  TORCH_CHECK(t.sizes() == x.sizes() && t.strides() == x.strides() && t.scalar_type() == x.scalar_type() &&
                  t.device() == x.device(),
              "fastgan: bias_act's ", name, " must match x in shape, layout, dtype and device");
}

void run(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  if (loop.out.numel() == 0) return;
#ifdef FASTGAN_WITH_CUDA
  if (loop.out.is_cuda()) return cuda::bias_act_loop(loop, spec);
#else
  TORCH_CHECK(!loop.out.is_cuda(), "fastgan._C was built without CUDA kernels");
#endif
  cpu::bias_act_loop(loop, spec);
}

}  // namespace

at::Tensor bias_act(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim,
                    c10::string_view act, double alpha, double gain, double clamp) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  detail::BiasActLoop loop = make_loop(x, b, dim);
  run(loop, {parse_act(act), alpha, gain, clamp});
  return loop.out;
}

bool slope_from_output(c10::string_view act, double alpha, double gain, double clamp) {
  return slope_from_output(BiasActSpec{parse_act(act), alpha, gain, clamp});
}

bool slope_from_output(const BiasActSpec& spec) {
  return (spec.act == Act::ReLU || (spec.act == Act::LeakyReLU && spec.alpha >= 0)) && spec.clamp < 0 &&
         spec.gain > 0;
}

void bias_act_into(const at::Tensor& out, int mode, const at::Tensor& x, const at::Tensor& p,
                   const at::Tensor& q, const c10::optional<at::Tensor>& b, int64_t dim,
                   const BiasActSpec& spec, bool x_is_y) {
  TORCH_CHECK(!x_is_y || slope_from_output(spec), "fastgan: bias_act_into: s' is not readable from y");
  detail::BiasActLoop loop = make_loop(x, b, dim, out);
  check_like(out, x, "output");
  if (mode >= 1) check_like(p, x, "first factor");
  if (mode == 2) check_like(q, x, "second factor");
  loop.p = p;
  loop.q = q;
  loop.mode = mode;
  loop.x_is_y = x_is_y;
  run(loop, spec);
}

at::Tensor bias_act_grad(const at::Tensor& dy, const at::Tensor& ref, const c10::optional<at::Tensor>& b,
                         int64_t dim, c10::string_view act, double alpha, double gain, double clamp,
                         bool ref_is_y) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const Act a = parse_act(act);
  TORCH_CHECK(!ref_is_y || slope_from_output(act, alpha, gain, clamp),
              "fastgan: s' can be read from the output only for relu, or lrelu with alpha >= 0, "
              "without clamp and with gain > 0");
  detail::BiasActLoop loop = make_loop(ref, b, dim);
  check_like(dy, ref, "gradient");
  loop.p = dy;
  loop.mode = 1;
  loop.x_is_y = ref_is_y;
  run(loop, {a, alpha, gain, clamp});
  return loop.out;
}

at::Tensor bias_act_grad2(const at::Tensor& p, const at::Tensor& q, const at::Tensor& x,
                          const c10::optional<at::Tensor>& b, int64_t dim, c10::string_view act,
                          double alpha, double gain, double clamp) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  detail::BiasActLoop loop = make_loop(x, b, dim);
  check_like(p, x, "first factor");
  check_like(q, x, "second factor");
  loop.p = p;
  loop.q = q;
  loop.mode = 2;
  run(loop, {parse_act(act), alpha, gain, clamp});
  return loop.out;
}

}  // namespace fastgan
