// bias_act's CPU element loops on raw pointers, one run of n elements at a time: the
// elements of a run share one bias value (NCHW: a channel's plane) or take bias[j]
// (channels last: a pixel's channels). Every activation, mode and clamp setting is its
// own straight loop without calls for the piecewise-linear activations, so the compiler
// vectorises them. bias_act_cpu.cpp includes this file twice, into two namespaces: once
// for the baseline ISA and once under `#pragma GCC target("avx2,fma")`. No include
// guard, on purpose; include only from bias_act_cpu.cpp. All runs share one signature,
// (out, x, p, q, bias, n, constants), and ignore the operands their mode does not read.

// out[j] = clamp(gain * s(x[j] + bias), -c, c)
template <Act A, bool kClamp, bool kBiasVector, typename T>
void value_run(T* __restrict out, const T* __restrict x, const T*, const T*, const T* __restrict bias,
               int64_t n, const RunConstants<T>& k) {
  const T alpha = k.alpha, gain = k.gain, c = k.clamp, b0 = bias[0];
  for (int64_t j = 0; j < n; ++j) {
    T s, ds, d2s;
    activation(A, alpha, x[j] + (kBiasVector ? bias[j] : b0), s, ds, d2s);
    T y = gain * s;
    if (kClamp) y = y > c ? c : (y < -c ? -c : y);
    out[j] = y;
  }
}

// out[j] = p[j] * gain * s'(x[j] + bias) (kOrder 1) or p[j] * q[j] * gain * s''(x[j] + bias)
// (kOrder 2), 0 where the clamp is active
template <int kOrder, Act A, bool kClamp, bool kBiasVector, typename T>
void derivative_run(T* __restrict out, const T* __restrict x, const T* __restrict p, const T* __restrict q,
                    const T* __restrict bias, int64_t n, const RunConstants<T>& k) {
  const T alpha = k.alpha, gain = k.gain, c = k.clamp, b0 = bias[0];
  for (int64_t j = 0; j < n; ++j) {
    T s, ds, d2s;
    activation(A, alpha, x[j] + (kBiasVector ? bias[j] : b0), s, ds, d2s);
    T d = gain * (kOrder == 1 ? ds : d2s);
    if (kClamp) {
      const T y = gain * s;
      d = (y <= c) & (y >= -c) ? d : T(0);
    }
    out[j] = kOrder == 1 ? p[j] * d : p[j] * q[j] * d;
  }
}

// out[j] = p[j] * gain * s'(y[j]), s' read from the sign of the output (ReLU and leaky
// ReLU without clamp, gain > 0)
template <Act A, typename T>
void slope_from_output_run(T* __restrict out, const T* __restrict y, const T* __restrict p, const T*,
                           const T*, int64_t n, const RunConstants<T>& k) {
  const T alpha = k.alpha, gain = k.gain;
  for (int64_t j = 0; j < n; ++j) out[j] = p[j] * (gain * derivative_from_saved(A, alpha, y[j]));
}
