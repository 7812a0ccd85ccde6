// The two element loops of the CPU RMSprop step. optim.cpp includes this file twice:
// for the baseline ISA and under `#pragma GCC target("avx2,fma")`, where std::fma is
// one instruction instead of a library call. No include guard, on purpose.

template <typename T>
void radicands(const T* p, const T* g, T* sa, T* ga, T* r, int64_t begin, int64_t end,
               const RMSpropConfig& cfg) {
  for (int64_t j = begin; j < end; ++j) {
    T grad = g[j];
    r[j] = rmsprop_radicand(p[j], grad, sa[j], ga ? ga + j : nullptr, cfg);
  }
}

template <typename T>
void updates(T* p, const T* g, const T* r, T* mb, int64_t begin, int64_t end, const RMSpropConfig& cfg) {
  const T wd = static_cast<T>(cfg.weight_decay);
  for (int64_t j = begin; j < end; ++j) {
    const T grad = cfg.weight_decay != 0 ? fma(wd, p[j], g[j]) : g[j];  // as in rmsprop_radicand
    rmsprop_update(p[j], grad, r[j], mb ? mb + j : nullptr, cfg);
  }
}
