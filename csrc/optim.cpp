// Checks and device dispatch of the fused list updates; the CPU kernels.
#include "optim.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sqrt.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "cpu/isa.h"
#include "optim_math.h"

namespace fastgan {

#ifdef FASTGAN_WITH_CUDA
namespace cuda {
void clip_(at::TensorList params, double c);
void clipped_rmsprop_(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                      at::TensorList grad_avgs, at::TensorList momentum_buffers,
                      const RMSpropConfig& cfg);
}  // namespace cuda
#endif

// The RMSprop step's element loops, for the baseline ISA and for AVX2 + FMA.
namespace baseline {
#include "cpu/rmsprop_loops.h"
}  // namespace baseline

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace fma_build {
#include "cpu/rmsprop_loops.h"
}  // namespace fma_build
#pragma GCC pop_options

namespace {

// Every list has the length of params (or is empty where allowed), and every tensor is
// contiguous, of params[0]'s dtype and device, and of its param's size.
void check_lists(at::TensorList params, std::initializer_list<std::pair<at::TensorList, const char*>> others) {
  if (params.empty()) return;
  const at::Tensor& first = params[0];
  TORCH_CHECK(at::isFloatingType(first.scalar_type()), "fastgan: parameters must be floating, got ",
              first.scalar_type());
  auto check = [&](const at::Tensor& t, const char* list, size_t i) {
    TORCH_CHECK(t.scalar_type() == first.scalar_type() && t.device() == first.device(),
                "fastgan: ", list, "[", i, "] is ", t.scalar_type(), " on ", t.device(), ", expected ",
                first.scalar_type(), " on ", first.device(), " (one call per dtype group)");
    TORCH_CHECK(t.is_contiguous() && t.numel() == params[i].numel(), "fastgan: ", list, "[", i,
                "] must be contiguous with ", params[i].numel(), " elements");
  };
  for (size_t i = 0; i < params.size(); ++i) check(params[i], "params", i);
  for (const auto& [list, name] : others) {
    if (list.empty()) continue;
    TORCH_CHECK(list.size() == params.size(), "fastgan: ", name, " has ", list.size(),
                " tensors for ", params.size(), " parameters");
    for (size_t i = 0; i < list.size(); ++i) check(list[i], name, i);
  }
}

// Runs f(tensor index, begin, end) over all elements of all tensors, in chunks spread
// across the intra-op threads: one parallel region for the whole list.
template <typename F>
void for_each_chunk(at::TensorList params, F&& f) {
  constexpr int64_t kChunk = 1 << 16;
  std::vector<std::pair<size_t, int64_t>> chunks;
  for (size_t i = 0; i < params.size(); ++i) {
    for (int64_t start = 0; start < params[i].numel(); start += kChunk) chunks.emplace_back(i, start);
  }
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const auto [i, start] = chunks[c];
      f(i, start, std::min(params[i].numel(), start + kChunk));
    }
  });
}

bool on_cuda(at::TensorList params) {
  if (params.empty() || !params[0].is_cuda()) return false;
#ifndef FASTGAN_WITH_CUDA
  TORCH_CHECK(false, "fastgan._C was built without CUDA kernels");
#endif
  return true;
}

}  // namespace

void clip_(at::TensorList params, double c) {
  TORCH_CHECK(c >= 0, "fastgan: clip_ needs c >= 0, got ", c);
  check_lists(params, {});
  if (params.empty()) return;
#ifdef FASTGAN_WITH_CUDA
  if (on_cuda(params)) return cuda::clip_(params, c);
#else
  on_cuda(params);
#endif
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "fastgan_clip_cpu", [&] {
    const auto hi = static_cast<scalar_t>(c), lo = static_cast<scalar_t>(-c);
    for_each_chunk(params, [&](size_t i, int64_t begin, int64_t end) {
      scalar_t* p = params[i].data_ptr<scalar_t>();
      for (int64_t j = begin; j < end; ++j) p[j] = std::min(std::max(p[j], lo), hi);  // NaN stays NaN
    });
  });
}

void clipped_rmsprop_(at::TensorList params, at::TensorList grads, at::TensorList square_avgs,
                      at::TensorList grad_avgs, at::TensorList momentum_buffers, double lr,
                      double alpha, double eps, double weight_decay, double momentum,
                      bool centered, double clip) {
  TORCH_CHECK(grads.size() == params.size() && square_avgs.size() == params.size(),
              "fastgan: clipped_rmsprop_ needs a gradient and a square average per parameter");
  TORCH_CHECK(!centered || grad_avgs.size() == params.size(), "fastgan: centered needs grad_avgs");
  TORCH_CHECK(momentum <= 0 || momentum_buffers.size() == params.size(),
              "fastgan: momentum needs momentum_buffers");
  check_lists(params, {{grads, "grads"}, {square_avgs, "square_avgs"}, {grad_avgs, "grad_avgs"},
                       {momentum_buffers, "momentum_buffers"}});
  if (params.empty()) return;
  const RMSpropConfig cfg{lr, alpha, eps, weight_decay, momentum, clip, centered};
#ifdef FASTGAN_WITH_CUDA
  if (on_cuda(params)) return cuda::clipped_rmsprop_(params, grads, square_avgs, grad_avgs, momentum_buffers, cfg);
#else
  on_cuda(params);
#endif
  // Two passes around ATen's sqrt of all radicands at once (see optim_math.h).
  int64_t total = 0;
  std::vector<int64_t> offsets;
  for (const at::Tensor& p : params) {
    offsets.push_back(total);
    total += p.numel();
  }
  at::Tensor roots = at::empty({total}, params[0].options());
  AT_DISPATCH_FLOATING_TYPES(params[0].scalar_type(), "fastgan_clipped_rmsprop_cpu", [&] {
    scalar_t* r = roots.data_ptr<scalar_t>();
    const bool fma_isa = cpu::has_avx2_fma();
    for_each_chunk(params, [&](size_t i, int64_t begin, int64_t end) {
      auto rows = fma_isa ? fma_build::radicands<scalar_t> : baseline::radicands<scalar_t>;
      rows(params[i].data_ptr<scalar_t>(), grads[i].data_ptr<scalar_t>(), square_avgs[i].data_ptr<scalar_t>(),
           centered ? grad_avgs[i].data_ptr<scalar_t>() : nullptr, r + offsets[i], begin, end, cfg);
    });
    roots.sqrt_();
    for_each_chunk(params, [&](size_t i, int64_t begin, int64_t end) {
      auto rows = fma_isa ? fma_build::updates<scalar_t> : baseline::updates<scalar_t>;
      rows(params[i].data_ptr<scalar_t>(), grads[i].data_ptr<scalar_t>(), r + offsets[i],
           momentum > 0 ? momentum_buffers[i].data_ptr<scalar_t>() : nullptr, begin, end, cfg);
    });
  });
}

}  // namespace fastgan
