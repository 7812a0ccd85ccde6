// CUDA list updates in the style of apex's multi_tensor_apply: the tensors of a dtype
// group are cut into chunks, and a table of (tensor, chunk) per block, passed by value
// as the kernel argument, lets one launch cover many tensors. A new launch starts only
// when the table is full.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <vector>

#include "../optim_math.h"

namespace fastgan {
namespace cuda {
namespace {

constexpr int kThreads = 512;
constexpr int64_t kChunk = 65536;
constexpr int kMaxTensors = 24;
constexpr int kMaxBlocks = 320;

// Kernel argument: up to 5 lists of tensor pointers and the block -> chunk map
// (about 3.7 KB, under the 4 KB argument limit).
struct ChunkTable {
  void* ptrs[5][kMaxTensors];
  int64_t sizes[kMaxTensors];
  int block_tensor[kMaxBlocks];
  int block_chunk[kMaxBlocks];
};

// Calls launch(table, blocks) for every full table over the lists' tensors.
template <typename Launch>
void for_each_table(const std::vector<at::TensorList>& lists, Launch&& launch) {
  ChunkTable table{};
  int tensors = 0, blocks = 0;
  const at::TensorList& params = lists[0];
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t n = params[i].numel();
    if (n == 0) continue;
    for (size_t l = 0; l < lists.size(); ++l) {
      table.ptrs[l][tensors] = lists[l].empty() ? nullptr : lists[l][i].data_ptr();
    }
    table.sizes[tensors] = n;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      table.block_tensor[blocks] = tensors;
      table.block_chunk[blocks] = static_cast<int>(c);
      ++blocks;
      const bool last_chunk = c + 1 == chunks;
      const bool table_full = blocks == kMaxBlocks || (last_chunk && tensors + 1 == kMaxTensors);
      if (table_full) {
        launch(table, blocks);
        blocks = 0;
        if (last_chunk) {
          tensors = -1;  // the next tensor starts a fresh table
        } else {
          // the rest of this tensor continues in slot 0 of a fresh table
          for (size_t l = 0; l < lists.size(); ++l) table.ptrs[l][0] = table.ptrs[l][tensors];
          table.sizes[0] = n;
          tensors = 0;
        }
      }
    }
    ++tensors;
  }
  if (blocks > 0) launch(table, blocks);
}

// This block's tensor and element range.
struct BlockChunk {
  int tensor;
  int64_t begin, end;
};

__device__ BlockChunk block_chunk(const ChunkTable& table) {
  const int t = table.block_tensor[blockIdx.x];
  const int64_t begin = static_cast<int64_t>(table.block_chunk[blockIdx.x]) * kChunk;
  return {t, begin, min(table.sizes[t], begin + kChunk)};
}

template <typename scalar_t>
__global__ void clip_kernel(ChunkTable table, double c) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto [t, begin, end] = block_chunk(table);
  scalar_t* p = static_cast<scalar_t*>(table.ptrs[0][t]);
  const acc_t hi = static_cast<acc_t>(c), lo = -hi;
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const acc_t v = static_cast<acc_t>(p[j]);
    p[j] = static_cast<scalar_t>(v < lo ? lo : (v > hi ? hi : v));
  }
}

template <typename scalar_t>
__global__ void rmsprop_kernel(ChunkTable table, RMSpropConfig cfg) {
  using acc_t = at::opmath_type<scalar_t>;
  const auto [t, begin, end] = block_chunk(table);
  scalar_t* p = static_cast<scalar_t*>(table.ptrs[0][t]);
  const scalar_t* g = static_cast<const scalar_t*>(table.ptrs[1][t]);
  scalar_t* sa = static_cast<scalar_t*>(table.ptrs[2][t]);
  scalar_t* ga = static_cast<scalar_t*>(table.ptrs[3][t]);
  scalar_t* mb = static_cast<scalar_t*>(table.ptrs[4][t]);
  for (int64_t j = begin + threadIdx.x; j < end; j += blockDim.x) {
    acc_t param = p[j], grad = g[j], square_avg = sa[j];
    acc_t grad_avg = ga ? static_cast<acc_t>(ga[j]) : acc_t(0);
    acc_t buf = mb ? static_cast<acc_t>(mb[j]) : acc_t(0);
    const acc_t radicand = rmsprop_radicand(param, grad, square_avg, &grad_avg, cfg);
    rmsprop_update(param, grad, sqrt(radicand), &buf, cfg);
    p[j] = static_cast<scalar_t>(param);
    sa[j] = static_cast<scalar_t>(square_avg);
    if (ga) ga[j] = static_cast<scalar_t>(grad_avg);
    if (mb) mb[j] = static_cast<scalar_t>(buf);
  }
}

}  // namespace

void clip_(at::TensorList params, double c) {
  const c10::cuda::CUDAGuard guard(params[0].device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "fastgan_clip_cuda", [&] {
    for_each_table({params}, [&](const ChunkTable& table, int blocks) {
      clip_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(table, c);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

void clipped_rmsprop_(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                      at::TensorList grad_avgs, at::TensorList momentum_buffers,
                      const RMSpropConfig& cfg) {
  const c10::cuda::CUDAGuard guard(params[0].device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "fastgan_rmsprop_cuda", [&] {
    for_each_table({params, grads, square_avgs, grad_avgs, momentum_buffers},
                   [&](const ChunkTable& table, int blocks) {
                     rmsprop_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(table, cfg);
                     C10_CUDA_KERNEL_LAUNCH_CHECK();
                   });
  });
}

}  // namespace cuda
}  // namespace fastgan
