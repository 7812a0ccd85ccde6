// Device-generic orchestration of the fused critic: the order of the GEMMs and of the
// epilogues between them. The comments follow the steps of shared/docs/fused-gp-math.md.
#include "critic.h"

#include <ATen/ATen.h>

#include <map>

#include "epilogues.h"

namespace fastgan {
namespace {

ActSpec parse_activation(c10::string_view name, double alpha) {
  if (name == "relu") return {Act::ReLU, alpha};
  if (name == "lrelu") {
    TORCH_CHECK(alpha >= 0.0, "fastgan: lrelu needs negative_slope >= 0, got ", alpha);
    return {Act::LeakyReLU, alpha};
  }
  if (name == "tanh") return {Act::Tanh, alpha};
  if (name == "softplus") return {Act::Softplus, alpha};
  if (name == "silu") return {Act::SiLU, alpha};
  TORCH_CHECK(false, "fastgan: unknown activation '", name,
              "' (expected relu, lrelu, tanh, softplus or silu)");
}

// The parameters of the MLP, checked against each other and against `like`.
struct Mlp {
  std::vector<at::Tensor> W, b;  // hidden layers: W_l (d_l, d_{l-1}), b_l (d_l)
  at::Tensor w_out, b_out;       // output layer: (1, d_{L-1}) and (1)
  ActSpec act;

  size_t hidden() const { return W.size(); }
  bool smooth() const { return is_smooth(act.act); }
};

Mlp unpack(at::TensorList params, c10::string_view act, double alpha, const at::Tensor& like) {
  TORCH_CHECK(params.size() >= 4 && params.size() % 2 == 0,
              "fastgan: params must be [W_1, b_1, ..., w_L, b_L] with at least one hidden "
              "layer, got ", params.size(), " tensors");
  Mlp mlp;
  mlp.act = parse_activation(act, alpha);
  int64_t width = like.size(1);
  const size_t layers = params.size() / 2;
  for (size_t l = 0; l < layers; ++l) {
    const at::Tensor& W = params[2 * l];
    const at::Tensor& b = params[2 * l + 1];
    for (const at::Tensor* t : {&W, &b}) {
      TORCH_CHECK(t->scalar_type() == like.scalar_type() && t->device() == like.device(),
                  "fastgan: parameter ", 2 * l + (t == &b), " is ", t->scalar_type(), " on ",
                  t->device(), ", the input is ", like.scalar_type(), " on ", like.device());
    }
    const bool last = l + 1 == layers;
    TORCH_CHECK(W.dim() == 2 && W.size(1) == width && (!last || W.size(0) == 1),
                "fastgan: weight ", l, " has shape ", W.sizes(), ", expected (",
                last ? "1" : "d", ", ", width, ")");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == W.size(0), "fastgan: bias ", l, " has shape ",
                b.sizes(), ", expected (", W.size(0), ")");
    width = W.size(0);
    if (last) {
      mlp.w_out = W.contiguous();
      mlp.b_out = b.contiguous();
    } else {
      mlp.W.push_back(W.contiguous());
      mlp.b.push_back(b.contiguous());
    }
  }
  return mlp;
}

// Where the matrices of one call come from. With `reuse` on a CPU device they are
// carved out of a block cached per thread and dtype and reused from call to call: on
// the CPU, fresh buffers of these sizes cost a page fault per 4 KiB on every step. The
// block grows to the largest step seen on the thread and stays allocated. Only use it
// for matrices that do not outlive the call. Without `reuse`, and on CUDA (whose
// caching allocator already reuses memory), every matrix is a fresh tensor.
class Buffers {
 public:
  Buffers(const at::Tensor& like, bool reuse) : options_(like.options()) {
    if (!reuse || !like.device().is_cpu()) return;
    Cached& cached = cached_blocks()[like.scalar_type()];
    if (cached.busy) return;  // a call further up this thread's stack holds it
    cached.busy = true;
    cached_ = &cached;
  }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;

  ~Buffers() {
    if (cached_ == nullptr) return;
    if (wanted_ > capacity()) cached_->block = at::empty({wanted_}, options_);
    cached_->busy = false;
  }

  at::Tensor matrix(int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    if (cached_ == nullptr) return at::empty({rows, cols}, options_);
    const int64_t offset = wanted_;
    wanted_ += (n + kAlign - 1) / kAlign * kAlign;  // keeps every matrix 64-byte aligned
    if (wanted_ > capacity()) return at::empty({rows, cols}, options_);
    return cached_->block.narrow(0, offset, n).view({rows, cols});
  }

  // a @ b into a new matrix.
  at::Tensor mm(const at::Tensor& a, const at::Tensor& b) {
    at::Tensor out = matrix(a.size(0), b.size(1));
    at::mm_out(out, a, b);
    return out;
  }

 private:
  struct Cached {
    at::Tensor block;
    bool busy = false;
  };
  static constexpr int64_t kAlign = 16;

  static std::map<at::ScalarType, Cached>& cached_blocks() {
    thread_local std::map<at::ScalarType, Cached> blocks;
    return blocks;
  }
  int64_t capacity() const { return cached_->block.defined() ? cached_->block.numel() : 0; }

  at::TensorOptions options_;
  Cached* cached_ = nullptr;
  int64_t wanted_ = 0;
};

// Step 1: the forward through the hidden layers. h_l = s(a_l) is kept for every row;
// smooth activations also keep s'(a_l) for every row and s''(a_l) for rows >= d2_row0.
struct Forward {
  std::vector<at::Tensor> h, d1, d2;
  int64_t d2_row0 = 0;
};

Forward forward_hidden(const at::Tensor& x, const Mlp& mlp, int64_t d2_row0, Buffers& buf) {
  const int64_t rows = x.size(0);
  Forward fw;
  fw.d2_row0 = d2_row0;
  at::Tensor prev = x;
  for (size_t l = 0; l < mlp.hidden(); ++l) {
    BiasActForward epi;
    epi.z = buf.mm(prev, mlp.W[l].t());
    epi.bias = mlp.b[l];
    epi.d2_row0 = d2_row0;
    if (mlp.smooth()) {
      epi.d1 = buf.matrix(rows, epi.z.size(1));
      if (d2_row0 < rows) epi.d2 = buf.matrix(rows - d2_row0, epi.z.size(1));
    }
    bias_act_forward(epi, mlp.act);
    fw.h.push_back(epi.z);
    fw.d1.push_back(epi.d1);
    fw.d2.push_back(epi.d2);
    prev = epi.z;
  }
  return fw;
}

// What s'(a_l) is recovered from: the output's sign, or the saved derivative.
const at::Tensor& saved_derivative(const Forward& fw, const Mlp& mlp, size_t l) {
  return mlp.smooth() ? fw.d1[l] : fw.h[l];
}

// Step 2: back-propagates the output seed (one value per row) to every hidden layer:
// delta_l = s'(a_l) * e_l. Where the forward kept s''(a_l) (the interpolate rows of a
// smooth critic), it is turned in place into q_l = s''(a_l) * e_l, which step 4 needs.
std::vector<at::Tensor> backward_signal(const at::Tensor& seed, const Mlp& mlp, Forward& fw,
                                        Buffers& buf) {
  const size_t H = mlp.hidden();
  std::vector<at::Tensor> delta(H);
  for (size_t l = H; l-- > 0;) {
    ActGrad epi;
    if (l + 1 == H) {  // e_{L-1} = seed w_L^T is rank one: formed inside the epilogue
      epi.out = buf.matrix(fw.h[l].size(0), fw.h[l].size(1));
      epi.seed = seed;
      epi.w = mlp.w_out.view(-1);
    } else {
      epi.out = buf.mm(delta[l + 1], mlp.W[l + 1]);
      epi.e = epi.out;
    }
    epi.saved = saved_derivative(fw, mlp, l);
    epi.coef = fw.d2[l];
    epi.coef_row0 = fw.d2_row0;
    act_grad(epi, mlp.act);
    delta[l] = epi.out;
  }
  return delta;
}

}  // namespace

void check_batch(const at::Tensor& t, const char* name, int64_t exact_dim) {
  TORCH_CHECK(exact_dim ? t.dim() == exact_dim : t.dim() >= 2, "fastgan: ", name,
              exact_dim == 2 ? " must be 2-D (batch, features), got shape " : " must be (batch, features...), got shape ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble ||
                  (t.is_cuda() && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16)),
              "fastgan: ", name, " has unsupported dtype ", t.scalar_type());
}

void check_real_fake(const at::Tensor& real, const at::Tensor& fake, int64_t exact_dim) {
  check_batch(real, "real", exact_dim);
  check_batch(fake, "fake", exact_dim);
  TORCH_CHECK(real.sizes() == fake.sizes() && real.scalar_type() == fake.scalar_type() &&
                  real.device() == fake.device(),
              "fastgan: real and fake must match in shape, dtype and device");
  TORCH_CHECK(real.size(0) > 0, "fastgan: empty batch");
}

std::tuple<at::Tensor, std::vector<at::Tensor>> mlp_forward(
    const at::Tensor& x, at::TensorList params, c10::string_view act, double alpha) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // autograd lives in Python
  check_batch(x, "x", 2);
  const at::Tensor xc = x.contiguous();
  const Mlp mlp = unpack(params, act, alpha, xc);
  Buffers fresh(xc, /*reuse=*/false);
  Forward fw = forward_hidden(xc, mlp, xc.size(0), fresh);
  at::Tensor out = at::addmm(mlp.b_out, fw.h.back(), mlp.w_out.t());
  std::vector<at::Tensor> saved = fw.h;
  if (mlp.smooth()) saved.insert(saved.end(), fw.d1.begin(), fw.d1.end());
  return {out, saved};
}

std::vector<at::Tensor> mlp_backward(
    const at::Tensor& grad_out, const at::Tensor& x, at::TensorList params,
    at::TensorList saved, c10::string_view act, double alpha, bool input_grad,
    bool param_grads) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  check_batch(x, "x", 2);
  const at::Tensor xc = x.contiguous();
  const Mlp mlp = unpack(params, act, alpha, xc);
  const size_t H = mlp.hidden();
  TORCH_CHECK(saved.size() == (mlp.smooth() ? 2 * H : H), "fastgan: mlp_backward got ",
              saved.size(), " saved tensors for ", H, " hidden layers");
  const int64_t rows = xc.size(0);
  TORCH_CHECK(grad_out.numel() == rows, "fastgan: grad_out has ", grad_out.numel(),
              " elements for ", rows, " rows");
  Forward fw;
  fw.d2_row0 = rows;
  for (size_t l = 0; l < H; ++l) {
    fw.h.push_back(saved[l]);
    fw.d1.push_back(mlp.smooth() ? saved[H + l] : at::Tensor());
    fw.d2.emplace_back();
  }
  const at::Tensor seed = grad_out.reshape({rows}).contiguous();
  Buffers scratch(xc, /*reuse=*/true);
  const std::vector<at::Tensor> delta = backward_signal(seed, mlp, fw, scratch);

  std::vector<at::Tensor> grads;
  if (input_grad) grads.push_back(at::mm(delta[0], mlp.W[0]));
  if (param_grads) {
    for (size_t l = 0; l < H; ++l) {
      grads.push_back(at::mm(delta[l].t(), l == 0 ? xc : fw.h[l - 1]));
      grads.push_back(delta[l].sum(0));
    }
    grads.push_back(at::mm(seed.view({1, rows}), fw.h.back()));
    grads.push_back(seed.sum().reshape({1}));
  }
  return grads;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>> critic_step(
    const at::Tensor& real, const at::Tensor& fake, const c10::optional<at::Tensor>& eps,
    at::TensorList params, c10::string_view act, double alpha, double lam, double center,
    bool one_sided, bool param_grads) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  check_real_fake(real, fake, 2);
  const int64_t B = real.size(0), d0 = real.size(1);
  const bool gp = eps.has_value();
  const int64_t rows = gp ? 3 * B : 2 * B;
  const double inv_b = 1.0 / static_cast<double>(B);

  // Step 1: X = [real; fake; x^] with x^ = eps real + (1 - eps) fake.
  Buffers scratch(real, /*reuse=*/true);
  at::Tensor X = scratch.matrix(rows, d0);
  X.narrow(0, 0, B).copy_(real);
  X.narrow(0, B, B).copy_(fake);
  if (gp) {
    TORCH_CHECK(eps->numel() == B, "fastgan: eps has ", eps->numel(), " elements for batch ", B);
    at::Tensor x_hat = X.narrow(0, 2 * B, B);
    at::lerp_out(x_hat, fake, real, eps->reshape({B, 1}).to(real.options()));
  }
  const Mlp mlp = unpack(params, act, alpha, X);
  const size_t H = mlp.hidden();
  const bool smooth_gp = gp && mlp.smooth();
  Forward fw = forward_hidden(X, mlp, smooth_gp ? 2 * B : rows, scratch);

  // D's output layer is linear, so the batch means need only the column sums of h_{L-1}.
  const at::Tensor& h_top = fw.h.back();
  const at::Tensor colsum_real = h_top.narrow(0, 0, B).sum(0);
  const at::Tensor colsum_fake = h_top.narrow(0, B, B).sum(0);
  const at::Tensor w_out = mlp.w_out.view(-1);
  const at::Tensor wasserstein = at::dot(colsum_real - colsum_fake, w_out) * inv_b;
  at::Tensor penalty = at::zeros({}, X.options());
  if (!gp && !param_grads) return {-wasserstein, wasserstein, penalty, {}};

  // Step 2: seeds dLoss/dD on the real and fake rows, 1 on the interpolate rows.
  at::Tensor seed = scratch.matrix(1, rows).view({rows});
  seed.narrow(0, 0, B).fill_(-inv_b);
  seed.narrow(0, B, B).fill_(inv_b);
  if (gp) seed.narrow(0, 2 * B, B).fill_(1.0);
  std::vector<at::Tensor> delta = backward_signal(seed, mlp, fw, scratch);

  // Step 3: g = grad_x D(x^), the penalty, and u = dPenalty/dg. With ReLU-like
  // activations u replaces x^ in X: the weight-gradient GEMM of layer 1 then covers the
  // ordinary rows and the adjoint rows at once.
  at::Tensor u;
  if (gp) {
    PenaltyArgs pen;
    pen.g = scratch.mm(delta[0].narrow(0, 2 * B, B), mlp.W[0]);
    pen.u = smooth_gp ? pen.g : X.narrow(0, 2 * B, B);
    pen.lam_over_batch = lam * inv_b;
    pen.center = center;
    pen.one_sided = one_sided;
    penalty = fastgan::penalty(pen) * inv_b;
    u = pen.u;
  }
  const at::Tensor loss = penalty * lam - wasserstein;
  if (!param_grads) return {loss, wasserstein, penalty, {}};

  std::vector<at::Tensor> grad_W(H), grad_b(H);
  at::Tensor ebar_top;  // ebar_{L-1}, the adjoint's contribution to grad w_L
  if (gp) {
    // Step 4: the adjoint of the backward chain over the interpolate rows. With
    // ReLU-like activations ebar_l overwrites h_l's interpolate rows (its sign is read
    // first, element by element), so the weight-gradient GEMMs below also cover the
    // adjoint rows. Smooth activations keep h_l, and turn q_l into abar_l in place.
    at::Tensor dbar = scratch.mm(u, mlp.W[0].t());
    if (smooth_gp) grad_W[0] = at::mm(delta[0].narrow(0, 2 * B, B).t(), u);
    for (size_t l = 0; l < H; ++l) {
      ActGrad epi;
      epi.e = dbar;
      epi.saved = saved_derivative(fw, mlp, l).narrow(0, 2 * B, B);
      epi.out = smooth_gp ? dbar : fw.h[l].narrow(0, 2 * B, B);
      epi.coef = fw.d2[l];
      act_grad(epi, mlp.act);
      const at::Tensor& ebar = epi.out;
      if (l + 1 == H) {
        ebar_top = ebar;
        break;
      }
      if (smooth_gp) grad_W[l + 1] = at::mm(delta[l + 1].narrow(0, 2 * B, B).t(), ebar);
      dbar = scratch.mm(ebar, mlp.W[l + 1].t());
    }
  }

  // Step 5: the ordinary backward. The real and fake rows of delta already hold it; the
  // interpolate rows of a smooth critic get abar_l plus the signal back-propagated from
  // the abar of the layers above.
  if (smooth_gp) delta[H - 1].narrow(0, 2 * B, B).copy_(fw.d2[H - 1]);
  const int64_t bias_rows = smooth_gp ? 3 * B : 2 * B;
  for (size_t l = H; l-- > 0;) {
    const at::Tensor& prev = l == 0 ? X : fw.h[l - 1];
    if (grad_W[l].defined()) {
      grad_W[l].addmm_(delta[l].t(), prev);
    } else {
      grad_W[l] = at::mm(delta[l].t(), prev);
    }
    grad_b[l] = delta[l].narrow(0, 0, bias_rows).sum(0);
    if (smooth_gp && l > 0) {
      ActGrad epi;
      epi.out = delta[l - 1].narrow(0, 2 * B, B);
      epi.saved = fw.d1[l - 1].narrow(0, 2 * B, B);
      epi.e = scratch.mm(delta[l].narrow(0, 2 * B, B), mlp.W[l]);
      epi.add = fw.d2[l - 1];
      act_grad(epi, mlp.act);
    }
  }
  at::Tensor grad_w_out = (colsum_fake - colsum_real) * inv_b;
  if (ebar_top.defined()) grad_w_out = grad_w_out + ebar_top.sum(0);

  std::vector<at::Tensor> grads;
  for (size_t l = 0; l < H; ++l) {
    grads.push_back(grad_W[l]);
    grads.push_back(grad_b[l]);
  }
  grads.push_back(grad_w_out.view({1, -1}));
  grads.push_back(seed.narrow(0, 0, 2 * B).sum().reshape({1}));
  return {loss, wasserstein, penalty, grads};
}

}  // namespace fastgan
