// CUDA epilogues: the same per-element math as the CPU ones (activation_math.h), one
// thread per element for the activation epilogues and one block per row for the penalty.
// fp32/fp64/fp16/bf16 storage, arithmetic in the op-math type (fp32 for the 16-bit ones).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../epilogues.h"

namespace fastgan {
namespace cuda {
namespace {

constexpr int kThreads = 256;

int64_t blocks_for(int64_t n) {
  constexpr int64_t kMaxBlocks = 65535LL * 32;
  return std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

template <typename T>
T* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

template <typename scalar_t>
__global__ void bias_act_forward_kernel(scalar_t* z, const scalar_t* bias, scalar_t* d1,
                                        scalar_t* d2, int64_t d2_row0, int64_t rows,
                                        int64_t cols, Act act, double alpha) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t n = rows * cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / cols, j = idx - i * cols;
    acc_t s, ds, d2s;
    const acc_t b = bias ? static_cast<acc_t>(bias[j]) : acc_t(0);
    activation(act, static_cast<acc_t>(alpha), static_cast<acc_t>(z[idx]) + b, s, ds, d2s);
    z[idx] = static_cast<scalar_t>(s);
    d1[idx] = static_cast<scalar_t>(ds);
    if (d2 && i >= d2_row0) d2[idx - d2_row0 * cols] = static_cast<scalar_t>(d2s);
  }
}

template <typename scalar_t>
__global__ void act_grad_kernel(scalar_t* out, const scalar_t* saved, const scalar_t* e, scalar_t* coef,
                                int64_t coef_row0, int64_t rows, int64_t cols) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t n = rows * cols;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / cols;
    // Read everything before writing: out may alias e or saved.
    const acc_t signal = static_cast<acc_t>(e[idx]);
    const acc_t slope = static_cast<acc_t>(saved[idx]);
    if (coef && i >= coef_row0) {
      scalar_t& c = coef[idx - coef_row0 * cols];
      c = static_cast<scalar_t>(static_cast<acc_t>(c) * signal);
    }
    out[idx] = static_cast<scalar_t>(slope * signal);
  }
}

template <typename acc_t>
__device__ acc_t block_sum(acc_t v, acc_t* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (blockDim.x >> 5) ? shared[lane] : acc_t(0);
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

template <typename scalar_t>
__global__ void penalty_kernel(const scalar_t* g, scalar_t* u, at::opmath_type<scalar_t>* phis,
                               int64_t cols, double lam_over_batch, double center,
                               bool one_sided) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t shared[kThreads / 32];
  const int64_t row = blockIdx.x;
  const scalar_t* grow = g + row * cols;
  scalar_t* urow = u + row * cols;
  acc_t sq = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const acc_t v = static_cast<acc_t>(grow[j]);
    sq += v * v;
  }
  const acc_t n = sqrt(block_sum(sq, shared));
  acc_t phi, dphi;
  penalty_phi(n, static_cast<acc_t>(center), one_sided, phi, dphi);
  const acc_t k = penalty_grad_scale(n, dphi, static_cast<acc_t>(lam_over_batch));
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    urow[j] = static_cast<scalar_t>(k * static_cast<acc_t>(grow[j]));
  if (threadIdx.x == 0) phis[row] = phi;
}

}  // namespace

void bias_act_forward(const BiasActForward& args, ActSpec spec) {
  const at::Tensor& z = args.z;
  const c10::cuda::CUDAGuard guard(z.device());
  const int64_t rows = z.size(0), cols = z.size(1);
  if (rows * cols == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "fastgan_bias_act_forward_cuda", [&] {
    bias_act_forward_kernel<scalar_t><<<blocks_for(rows * cols), kThreads, 0, stream>>>(
        z.data_ptr<scalar_t>(), data_or_null<scalar_t>(args.bias), args.d1.data_ptr<scalar_t>(),
        data_or_null<scalar_t>(args.d2), args.d2_row0, rows, cols, spec.act, spec.alpha);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void act_grad(const ActGrad& args, ActSpec) {
  const at::Tensor& out = args.out;
  const c10::cuda::CUDAGuard guard(out.device());
  const int64_t rows = out.size(0), cols = out.size(1);
  if (rows * cols == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "fastgan_act_grad_cuda", [&] {
    act_grad_kernel<scalar_t><<<blocks_for(rows * cols), kThreads, 0, stream>>>(
        out.data_ptr<scalar_t>(), args.saved.data_ptr<scalar_t>(), args.e.data_ptr<scalar_t>(),
        data_or_null<scalar_t>(args.coef), args.coef_row0, rows, cols);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor penalty(const PenaltyArgs& args) {
  const at::Tensor& g = args.g;
  const c10::cuda::CUDAGuard guard(g.device());
  const int64_t rows = g.size(0), cols = g.size(1);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const at::ScalarType acc_type = at::toOpMathType(g.scalar_type());
  at::Tensor phis = at::empty({rows}, g.options().dtype(acc_type));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "fastgan_penalty_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (rows > 0) {
      penalty_kernel<scalar_t><<<rows, kThreads, 0, stream>>>(
          g.data_ptr<scalar_t>(), args.u.data_ptr<scalar_t>(), phis.data_ptr<acc_t>(), cols,
          args.lam_over_batch, args.center, args.one_sided);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return phis.sum().to(g.scalar_type());
}

}  // namespace cuda
}  // namespace fastgan
