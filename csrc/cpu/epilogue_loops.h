// The CPU epilogues' row loops, on raw pointers. epilogues_cpu.cpp includes this file
// twice, into two namespaces: once for the baseline ISA and once under
// `#pragma GCC target("avx2,fma")`, and picks one at run time. No include guard, on
// purpose; include only from epilogues_cpu.cpp.

// z <- s(z + b) (kBias: else s(z)) on rows [begin, end); d1 = s' on those rows and d2 =
// s'' on rows >= d2_row0 where given.
template <Act A, bool kBias, typename T>
void bias_act_rows(T* z, const T* bias, T* d1, T* d2, int64_t d2_row0, int64_t begin, int64_t end, int64_t cols,
                   T alpha) {
  for (int64_t i = begin; i < end; ++i) {
    T* zr = z + i * cols;
    T* d1r = d1 + i * cols;
    T* d2r = (d2 != nullptr && i >= d2_row0) ? d2 + (i - d2_row0) * cols : nullptr;
    for (int64_t j = 0; j < cols; ++j) {
      T s, ds, d2s;
      activation(A, alpha, kBias ? zr[j] + bias[j] : zr[j], s, ds, d2s);
      zr[j] = s;
      d1r[j] = ds;
      if (d2r != nullptr) d2r[j] = d2s;
    }
  }
}

// d1 = s' on rows [begin, end) and d2 = s'' on those >= d2_row0 (where given), from the
// values z = s of an activation whose derivatives follow from its value.
template <Act A, typename T>
void value_derivative_rows(const T* z, T* d1, T* d2, int64_t d2_row0, int64_t begin, int64_t end, int64_t cols) {
  for (int64_t i = begin; i < end; ++i) {
    const T* zr = z + i * cols;
    T* d1r = d1 + i * cols;
    T* d2r = (d2 != nullptr && i >= d2_row0) ? d2 + (i - d2_row0) * cols : nullptr;
    for (int64_t j = 0; j < cols; ++j) {
      T ds, d2s;
      value_derivatives(A, zr[j], ds, d2s);
      d1r[j] = ds;
      if (d2r != nullptr) d2r[j] = d2s;
    }
  }
}

// out = saved * e (saved: s') and coef[i - coef_row0] *= e on rows [begin, end).
template <typename T>
void act_grad_rows(T* out, const T* saved, const T* e, T* coef, int64_t coef_row0, int64_t begin, int64_t end,
                   int64_t cols) {
  for (int64_t i = begin; i < end; ++i) {
    T* orow = out + i * cols;
    const T* srow = saved + i * cols;
    const T* erow = e + i * cols;
    if (coef != nullptr && i >= coef_row0) {  // before `out`, which may alias e
      T* crow = coef + (i - coef_row0) * cols;
      for (int64_t j = 0; j < cols; ++j) crow[j] *= erow[j];
    }
    for (int64_t j = 0; j < cols; ++j) orow[j] = srow[j] * erow[j];
  }
}
