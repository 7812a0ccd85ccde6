// bias_act's CPU element loop. A dense tensor's memory is [outer][channels][inner] with
// inner = stride[dim], so the loop nest walks it without a division per element, the
// innermost loop running over elements that share a bias (or, for channels-last
// layouts, over the channels).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "../bias_act.h"
#include "../bias_act_math.h"

namespace fastgan {
namespace cpu {
namespace {

template <typename scalar_t, int kMode, Act A>
struct Element {
  const detail::BiasActLoop& loop;
  BiasActSpec spec;  // a copy whose act is the constant A, so the activation's switch folds away
  scalar_t* out;
  const scalar_t *x, *p, *q;

  void operator()(int64_t o, scalar_t bias) const {
    const scalar_t z = x[o] + bias;
    if (kMode == 0) {
      out[o] = bias_act_value(z, spec);
    } else if (kMode == 1) {
      scalar_t slope;
      if (loop.x_is_y) {
        slope = bias_act_slope_from_output(x[o], spec);
      } else {
        bias_act_value(z, spec, &slope);
      }
      out[o] = p[o] * slope;
    } else {
      scalar_t curvature;
      bias_act_value(z, spec, static_cast<scalar_t*>(nullptr), &curvature);
      out[o] = p[o] * q[o] * curvature;
    }
  }
};

template <typename scalar_t, int kMode, Act A>
void loop_elements(const detail::BiasActLoop& loop, BiasActSpec spec) {
  spec.act = A;
  const Element<scalar_t, kMode, A> element{
      loop, spec, loop.out.data_ptr<scalar_t>(), loop.x.data_ptr<scalar_t>(),
      loop.p.defined() ? loop.p.data_ptr<scalar_t>() : nullptr,
      loop.q.defined() ? loop.q.data_ptr<scalar_t>() : nullptr};
  const scalar_t* b = loop.b.defined() ? loop.b.data_ptr<scalar_t>() : nullptr;
  const int64_t channels = loop.channels, inner = loop.channel_stride;
  const int64_t rows = loop.out.numel() / (channels * inner);  // [outer][channels]
  if (inner == 1) {  // channels last: the channel varies fastest
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / channels), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t c = 0; c < channels; ++c) element(r * channels + c, b ? b[c] : scalar_t(0));
      }
    });
    return;
  }
  at::parallel_for(0, rows * channels, std::max<int64_t>(1, 16384 / inner), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t bias = b ? b[r % channels] : scalar_t(0);
      for (int64_t o = r * inner, stop = o + inner; o < stop; ++o) element(o, bias);
    }
  });
}

}  // namespace

template <typename scalar_t, Act A>
void run_mode(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  switch (loop.mode) {
    case 0: loop_elements<scalar_t, 0, A>(loop, spec); break;
    case 1: loop_elements<scalar_t, 1, A>(loop, spec); break;
    default: loop_elements<scalar_t, 2, A>(loop, spec); break;
  }
}

void bias_act_loop(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  AT_DISPATCH_FLOATING_TYPES(loop.out.scalar_type(), "fastgan_bias_act_cpu", [&] {
    switch (spec.act) {
      case Act::ReLU: run_mode<scalar_t, Act::ReLU>(loop, spec); break;
      case Act::LeakyReLU: run_mode<scalar_t, Act::LeakyReLU>(loop, spec); break;
      case Act::Tanh: run_mode<scalar_t, Act::Tanh>(loop, spec); break;
      case Act::Softplus: run_mode<scalar_t, Act::Softplus>(loop, spec); break;
      case Act::SiLU: run_mode<scalar_t, Act::SiLU>(loop, spec); break;
      case Act::Sigmoid: run_mode<scalar_t, Act::Sigmoid>(loop, spec); break;
      case Act::ELU: run_mode<scalar_t, Act::ELU>(loop, spec); break;
      case Act::GELU: run_mode<scalar_t, Act::GELU>(loop, spec); break;
      case Act::Linear: run_mode<scalar_t, Act::Linear>(loop, spec); break;
    }
  });
}

}  // namespace cpu
}  // namespace fastgan
