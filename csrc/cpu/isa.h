// Which instruction set the CPU loops run with: each hot loop is compiled twice, for
// the baseline ISA and under `#pragma GCC target("avx2,fma")`, and this picks one.
#pragma once

namespace fastgan {
namespace cpu {

inline bool has_avx2_fma() {
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
}

}  // namespace cpu
}  // namespace fastgan
