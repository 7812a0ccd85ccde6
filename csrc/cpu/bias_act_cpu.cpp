// bias_act's CPU element loop: flat over memory, threads over blocks of elements.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <type_traits>

#include "../bias_act.h"
#include "../bias_act_math.h"

namespace fastgan {
namespace cpu {
namespace {

template <typename scalar_t, int kMode>
void loop_elements(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  scalar_t* out = loop.out.data_ptr<scalar_t>();
  const scalar_t* x = loop.x.data_ptr<scalar_t>();
  const scalar_t* b = loop.b.defined() ? loop.b.data_ptr<scalar_t>() : nullptr;
  const scalar_t* p = loop.p.defined() ? loop.p.data_ptr<scalar_t>() : nullptr;
  const scalar_t* q = loop.q.defined() ? loop.q.data_ptr<scalar_t>() : nullptr;
  const int64_t channels = loop.channels, stride = loop.channel_stride;
  at::parallel_for(0, loop.out.numel(), 16384, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const scalar_t z = b ? x[o] + b[(o / stride) % channels] : x[o];
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
  });
}

}  // namespace

void bias_act_loop(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  AT_DISPATCH_FLOATING_TYPES(loop.out.scalar_type(), "fastgan_bias_act_cpu", [&] {
    switch (loop.mode) {
      case 0: loop_elements<scalar_t, 0>(loop, spec); break;
      case 1: loop_elements<scalar_t, 1>(loop, spec); break;
      default: loop_elements<scalar_t, 2>(loop, spec); break;
    }
  });
}

}  // namespace cpu
}  // namespace fastgan
