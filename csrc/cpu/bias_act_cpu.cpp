// bias_act's CPU kernels. A dense tensor's memory is [outer][channels][inner] with
// inner = stride[dim], so it splits into runs of elements that share a bias (inner > 1)
// or that walk the bias vector (channels last, NC matrices); the runs go to the
// intra-op thread pool, each to a loop from bias_act_loops.h.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include "../bias_act.h"
#include "../bias_act_math.h"
#include "isa.h"

namespace fastgan {
namespace cpu {

template <typename T>
struct RunConstants {
  T alpha, gain, clamp;
};

namespace baseline {
#include "bias_act_loops.h"
}  // namespace baseline

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "bias_act_loops.h"
}  // namespace avx2
#pragma GCC pop_options

namespace {

template <typename T>
using RunFn = void (*)(T*, const T*, const T*, const T*, const T*, int64_t, const RunConstants<T>&);

constexpr int64_t kGrainElements = 16384;

// The run loop for one mode, activation, clamp setting and bias arrangement.
template <typename T, Act A, bool kClamp, bool kBiasVector>
RunFn<T> pick_run(const detail::BiasActLoop& loop) {
  const bool wide = has_avx2_fma();
  switch (loop.mode) {
    case 0:
      return wide ? avx2::value_run<A, kClamp, kBiasVector, T> : baseline::value_run<A, kClamp, kBiasVector, T>;
    case 1:
      if (loop.x_is_y) return wide ? avx2::slope_from_output_run<A, T> : baseline::slope_from_output_run<A, T>;
      return wide ? avx2::derivative_run<1, A, kClamp, kBiasVector, T>
                  : baseline::derivative_run<1, A, kClamp, kBiasVector, T>;
    default:
      return wide ? avx2::derivative_run<2, A, kClamp, kBiasVector, T>
                  : baseline::derivative_run<2, A, kClamp, kBiasVector, T>;
  }
}

template <typename T, Act A>
RunFn<T> pick_run(const detail::BiasActLoop& loop, bool clamp, bool bias_vector) {
  if (clamp) return bias_vector ? pick_run<T, A, true, true>(loop) : pick_run<T, A, true, false>(loop);
  return bias_vector ? pick_run<T, A, false, true>(loop) : pick_run<T, A, false, false>(loop);
}

template <typename T>
RunFn<T> pick_run(const detail::BiasActLoop& loop, Act act, bool clamp, bool bias_vector) {
  switch (act) {
    case Act::ReLU: return pick_run<T, Act::ReLU>(loop, clamp, bias_vector);
    case Act::LeakyReLU: return pick_run<T, Act::LeakyReLU>(loop, clamp, bias_vector);
    case Act::Tanh: return pick_run<T, Act::Tanh>(loop, clamp, bias_vector);
    case Act::Softplus: return pick_run<T, Act::Softplus>(loop, clamp, bias_vector);
    case Act::SiLU: return pick_run<T, Act::SiLU>(loop, clamp, bias_vector);
    case Act::Sigmoid: return pick_run<T, Act::Sigmoid>(loop, clamp, bias_vector);
    case Act::ELU: return pick_run<T, Act::ELU>(loop, clamp, bias_vector);
    case Act::GELU: return pick_run<T, Act::GELU>(loop, clamp, bias_vector);
    case Act::Linear: return pick_run<T, Act::Linear>(loop, clamp, bias_vector);
  }
  TORCH_CHECK(false, "fastgan: bias_act has no activation ", static_cast<int>(act));
}

template <typename T>
const T* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

// Splits the tensor into runs and hands them to the thread pool.
template <typename T>
void run_all(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  const bool has_bias = loop.b.defined();
  const int64_t channels = loop.channels, inner = loop.channel_stride, numel = loop.out.numel();
  const bool bias_vector = has_bias && inner == 1;
  const RunFn<T> run = pick_run<T>(loop, spec.act, spec.clamp >= 0, bias_vector);
  const RunConstants<T> k{static_cast<T>(spec.alpha), static_cast<T>(spec.gain), static_cast<T>(spec.clamp)};
  T* out = loop.out.data_ptr<T>();
  const T *x = loop.x.data_ptr<T>(), *p = data_or_null<T>(loop.p), *q = data_or_null<T>(loop.q);
  const T zero = T(0);
  const T* b = has_bias ? loop.b.data_ptr<T>() : &zero;
  // run(offset, length, bias of the run), with the operands that exist offset alike
  auto call = [&](int64_t o, int64_t n, const T* bias) {
    run(out + o, x + o, p ? p + o : nullptr, q ? q + o : nullptr, bias, n, k);
  };
  if (!has_bias) {  // one run over everything, cut into grains
    at::parallel_for(0, numel, kGrainElements, [&](int64_t begin, int64_t end) { call(begin, end - begin, b); });
  } else if (bias_vector) {  // rows of `channels` elements
    at::parallel_for(0, numel / channels, std::max<int64_t>(1, kGrainElements / channels),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t r = begin; r < end; ++r) call(r * channels, channels, b);
                     });
  } else {  // planes of `inner` elements, one channel each
    at::parallel_for(0, numel / inner, std::max<int64_t>(1, kGrainElements / inner),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t r = begin; r < end; ++r) call(r * inner, inner, b + r % channels);
                     });
  }
}

}  // namespace

void bias_act_loop(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  AT_DISPATCH_FLOATING_TYPES(loop.out.scalar_type(), "fastgan_bias_act_cpu", [&] { run_all<scalar_t>(loop, spec); });
}

}  // namespace cpu
}  // namespace fastgan
