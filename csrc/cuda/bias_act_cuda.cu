// bias_act's CUDA element loop: one thread per element, grid-stride, 64-bit offsets,
// arithmetic in the op-math type.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../bias_act.h"
#include "../bias_act_math.h"

namespace fastgan {
namespace cuda {
namespace {

template <typename scalar_t, int kMode>
__global__ void bias_act_kernel(scalar_t* out, const scalar_t* x, const scalar_t* b, const scalar_t* p,
                                const scalar_t* q, int64_t n, int64_t channels, int64_t stride,
                                bool x_is_y, BiasActSpec spec) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const acc_t xv = static_cast<acc_t>(x[o]);
    const acc_t z = b ? xv + static_cast<acc_t>(b[(o / stride) % channels]) : xv;
    acc_t value;
    if (kMode == 0) {
      value = bias_act_value(z, spec);
    } else if (kMode == 1) {
      acc_t slope;
      if (x_is_y) {
        slope = bias_act_slope_from_output(xv, spec);
      } else {
        bias_act_value(z, spec, &slope);
      }
      value = static_cast<acc_t>(p[o]) * slope;
    } else {
      acc_t curvature;
      bias_act_value(z, spec, static_cast<acc_t*>(nullptr), &curvature);
      value = static_cast<acc_t>(p[o]) * static_cast<acc_t>(q[o]) * curvature;
    }
    out[o] = static_cast<scalar_t>(value);
  }
}

template <typename T>
const T* ptr_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

}  // namespace

void bias_act_loop(const detail::BiasActLoop& loop, const BiasActSpec& spec) {
  const c10::cuda::CUDAGuard guard(loop.out.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t n = loop.out.numel();
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65535LL * 16);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, loop.out.scalar_type(), "fastgan_bias_act_cuda", [&] {
    auto launch = [&](auto kernel) {
      kernel<<<blocks, threads, 0, stream>>>(loop.out.data_ptr<scalar_t>(), loop.x.data_ptr<scalar_t>(),
                                             ptr_or_null<scalar_t>(loop.b), ptr_or_null<scalar_t>(loop.p),
                                             ptr_or_null<scalar_t>(loop.q), n, loop.channels,
                                             loop.channel_stride, loop.x_is_y, spec);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (loop.mode == 0) launch(bias_act_kernel<scalar_t, 0>);
    else if (loop.mode == 1) launch(bias_act_kernel<scalar_t, 1>);
    else launch(bias_act_kernel<scalar_t, 2>);
  });
}

}  // namespace cuda
}  // namespace fastgan
