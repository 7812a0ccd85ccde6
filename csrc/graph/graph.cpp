// Device-generic orchestration of the graph critic step. The passes are those of
// shared/docs/fused-gp-math.md; each node kind supplies its own rules (unit.h), and
// this file only walks the nodes:
//
// - the forward (step 1) over every row, in topological order, keeping each value;
// - the backward signal (step 2) in reverse order over every row: a value read by
//   several consumers sums their signals before its producer runs; the ordinary
//   (real and fake) rows give the loss's first-order parameter gradients on the way.
//   Behind the signal each value keeps only what a later pass reads: its forward and
//   its signal on the penalised rows (Hi, Ei), so the peak memory is the forward plus
//   the signals in flight, not the forward plus every signal;
// - the penalty on g (step 3);
// - the tangent (step 4) in topological order over the penalised rows: tangents add
//   at a sum, each weighted node adds its tangent rows' gradient (tbar x t), and the
//   kinds with a second-order term record their injection q;
// - where some node has a q, the second-order adjoint hbar in reverse order, from zero
//   at the output, summed over consumers, into the parameter gradients.
//
// Four-dimensional batches run in channels-last memory (oneDNN's convolutions ran about
// 1.4x faster in it on the CPU); a flatten of such a batch is then a view in (H, W, C)
// order, and the parameters that meet it are permuted to that order (unit.h).
#include "graph.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "../epilogues.h"
#include "unit.h"

namespace fastgan {
namespace graph {
namespace {

using Factory = std::unique_ptr<Unit> (*)(const NodeRecord&, Params&);

// The table of kinds, indexed by a record's kind: fastgan/ops/graph.py's KINDS, in order.
constexpr Factory kKinds[] = {make_linear, make_conv2d, make_act,   make_flatten,     make_avgpool,
                              make_norm,   make_add,    make_scale, make_global_pool, make_projection};
constexpr int64_t kKindCount = sizeof(kKinds) / sizeof(kKinds[0]);

// The penalty epilogue: fastgan's C++/CUDA one or its Triton twin.
at::Tensor penalty_kernel(bool triton, const PenaltyArgs& args) {
  if (!triton) return penalty(args);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("fastgan_triton::penalty_rows", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, double, bool)>();
  return op.call(args.g, args.u, args.lam_over_batch, args.center, args.one_sided);
}

// A critic step's real and fake batches: (batch, features...), float or double (half
// and bfloat16 on CUDA too), alike in shape, dtype and device, not empty.
void check_real_fake(const at::Tensor& real, const at::Tensor& fake) {
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{real, "real"}, {fake, "fake"}}) {
    TORCH_CHECK(t.dim() >= 2, "fastgan: ", name, " must be (batch, features...), got shape ", t.sizes());
    TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble ||
                    (t.is_cuda() && (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16)),
                "fastgan: ", name, " has unsupported dtype ", t.scalar_type());
  }
  TORCH_CHECK(real.sizes() == fake.sizes() && real.scalar_type() == fake.scalar_type() &&
                  real.device() == fake.device(),
              "fastgan: real and fake must match in shape, dtype and device");
  TORCH_CHECK(real.size(0) > 0, "fastgan: empty batch");
}

// Rows [row0, row0 + rows) of t, as a tensor of their own in t's layout.
at::Tensor keep_rows(const at::Tensor& t, int64_t row0, int64_t rows) {
  return t.narrow(0, row0, rows).clone(at::MemoryFormat::Preserve);
}

// Rows [row0, row0 + rows) of a value's forward or signal that nothing writes over
// afterwards: a view of a 2-D value (its other rows are small), a copy of a feature map
// (so that the rest is freed).
at::Tensor keep_unwritten_rows(const at::Tensor& t, int64_t row0, int64_t rows) {
  return t.dim() <= 2 ? t.narrow(0, row0, rows) : keep_rows(t, row0, rows);
}

struct Node {
  std::unique_ptr<Unit> unit;
  std::vector<int64_t> inputs;
};

class Graph {
 public:
  // The nodes of the records; the penalised rows are the pass's.
  Graph(at::IntArrayRef ints, at::ArrayRef<double> floats, Params& params, Pass& pass)
      : pass_(pass), P_(pass.penalised) {
    TORCH_CHECK(!ints.empty() && ints.size() % kNodeInts == 0 && floats.size() * kNodeInts == ints.size() * kNodeFloats,
                "fastgan: graph records: ", ints.size(), " ints and ", floats.size(), " floats");
    const int64_t n = static_cast<int64_t>(ints.size() / kNodeInts);
    readers_.assign(n + 1, {});
    for (int64_t i = 0; i < n; ++i) {
      NodeRecord r;
      r.index = i;
      const int64_t* rec = ints.data() + i * kNodeInts;
      r.kind = rec[0];
      r.inputs = {rec[1], rec[2]};
      r.flags = rec[3];
      r.ints = rec + 4;
      r.floats = floats.data() + i * kNodeFloats;
      TORCH_CHECK(r.kind >= 0 && r.kind < kKindCount, "fastgan: graph node ", i, " has unknown kind ", r.kind);
      Node node;
      for (int64_t v : r.inputs) {
        if (v < 0) continue;
        TORCH_CHECK(v <= i, "fastgan: graph node ", i, " reads value ", v, ", which is not computed before it");
        node.inputs.push_back(v);
        readers_[v].push_back(i);
      }
      TORCH_CHECK(!node.inputs.empty(), "fastgan: graph node ", i, " has no input");
      node.unit = kKinds[r.kind](r, params);
      any_second_order_ = any_second_order_ || node.unit->second_order();
      nodes_.push_back(std::move(node));
    }
    // Folded biases, where nothing else reads the value.
    for (int64_t i = 0; i < n; ++i) {
      Node& node = nodes_[i];
      if (!sole_reader(i)) continue;
      Unit* producer = node.inputs[0] > 0 ? nodes_[node.inputs[0] - 1].unit.get() : nullptr;
      if (producer != nullptr && node.unit->takes_folded_bias()) {
        const at::Tensor bias = producer->fold_bias();
        if (bias.defined()) node.unit->set_folded_bias(bias);
      }
    }
  }

  // Step 1 over all rows of X.
  void forward(const at::Tensor& X) {
    const size_t n = nodes_.size();
    H_.assign(n + 1, at::Tensor());
    order_.assign(n + 1, FeatureOrder());
    H_[0] = X;
    rows_ = X.size(0);
    std::vector<int64_t> readers = reader_counts();
    for (size_t i = 0; i < n; ++i) {
      const Node& node = nodes_[i];
      const Tensors x = values(H_, node.inputs);
      const FeatureOrder& in_order = order_[node.inputs[0]];
      for (int64_t v : node.inputs) {
        TORCH_CHECK(order_[v] == in_order, "fastgan: graph node ", i,
                    " reads features flattened in two orders (one from a channels-last batch)");
      }
      // In place where nothing else reads the input, its producer included (which
      // decided in its own forward whether it reads its output).
      const int64_t v0 = node.inputs[0];
      if (sole_reader(i) && (v0 == 0 || !nodes_[v0 - 1].unit->reads_output())) node.unit->allow_in_place();
      H_[i + 1] = node.unit->forward(pass_, x, in_order);
      order_[i + 1] = node.unit->output_order(x, H_[i + 1], in_order);
      for (int64_t v : node.inputs) {
        if (--readers[v] == 0 && read_for_shape_only(v)) H_[v] = at::Tensor();  // (a view may live on)
      }
    }
    TORCH_CHECK(H_[n].numel() == H_[n].size(0), "fastgan: the critic's output must be one value per sample, got ",
                H_[n].sizes());
  }

  at::Tensor output() const { return H_.back().reshape({-1}); }

  // Seeds of the penalised rows that also count in the ordinary gradients (R1, R2): their
  // signal was seeded with 1 (for g), the loss's seeds scale it there.
  void set_penalised_seed(const at::Tensor& seed) { penalised_seed_ = seed; }

  // Step 2: back-propagates `seed` (one value per row) to every value and, with
  // param_grads, takes the ordinary rows' (the first `ordinary`) parameter gradients on
  // the way (block by block of `block` rows). Value 0 is reached over the penalised
  // rows only. Returns g, the signal at value 0 (undefined without penalised rows).
  at::Tensor backward_signal(const at::Tensor& seed, int64_t ordinary, int64_t block, bool param_grads) {
    const size_t n = nodes_.size();
    const bool penalised = P_ > 0;
    const int64_t row0 = pass_.row0;
    std::vector<at::Tensor> E(n + 1);
    Hi_.assign(n + 1, at::Tensor());
    Ei_.assign(n + 1, at::Tensor());
    E[n] = seed.view(H_[n].sizes());
    for (size_t i = n; i-- > 0;) {
      const Node& node = nodes_[i];
      Unit& unit = *node.unit;
      const size_t out = i + 1;
      if (!E[out].defined()) {  // no path to the output
        release(out);
        continue;
      }
      if (penalised && unit.reads_signal()) {
        Ei_[out] = unit.overwrites_signal() ? keep_rows(E[out], row0, P_) : keep_unwritten_rows(E[out], row0, P_);
      }
      if (!unit.reads_output()) release(out);
      // A node that only reads the batch needs its input gradient on the penalised rows
      // only (on none without a penalty), unless its parameters need every row.
      bool batch_only = true;
      for (int64_t v : node.inputs) batch_only = batch_only && v == 0;
      const bool narrow = batch_only && !unit.needs_every_input_row();
      const int64_t r0 = narrow ? row0 : 0;
      const int64_t rows = narrow ? P_ : rows_;
      Tensors contrib(node.inputs.size());
      if (!(narrow && !penalised)) {
        const at::Tensor y = unit.reads_output() ? H_[out].narrow(0, r0, rows) : at::Tensor();
        contrib = unit.input_gradient(pass_, narrow ? E[out].narrow(0, r0, rows) : E[out],
                                      rows_of_values(H_, node.inputs, r0, rows), y, r0);
      }
      if (param_grads && !(narrow && unit.grads_from_input_signal())) {  // (then it has no parameters)
        const at::Tensor& signal = unit.grads_from_input_signal() ? contrib[0] : E[out];
        if (signal.defined()) {
          unit.param_grads(pass_, ordinary_rows(signal, ordinary), rows_of_values(H_, node.inputs, 0, ordinary), 0,
                           block);
        }
      }
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const int64_t v = node.inputs[k];
        at::Tensor c = contrib[k];
        if (!c.defined() || (v == 0 && !penalised)) continue;
        if (v == 0 && c.size(0) != P_) c = c.narrow(0, row0, P_);
        accumulate(E[v], c, contrib, k);
      }
      release(out);
      E[out] = at::Tensor();
    }
    if (!penalised) return at::Tensor();
    release(0);
    TORCH_CHECK(E[0].defined(), "fastgan: the critic's output does not depend on its input");
    return E[0];
  }

  // Step 4: the tangent of the penalised rows (value 0's is u, in g's layout) through
  // every node, with the tangent rows' parameter gradients and the injections q.
  void tangent(const at::Tensor& u) {
    const size_t n = nodes_.size();
    std::vector<at::Tensor> T(n + 1);
    std::vector<int64_t> readers = reader_counts();
    Q_.assign(n, Tensors());
    T[0] = u;
    for (size_t i = 0; i < n; ++i) {
      const Node& node = nodes_[i];
      std::vector<bool> may_overwrite;
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const int64_t v = node.inputs[k];
        may_overwrite.push_back(readers[v] == 1 && (k == 0 || node.inputs[0] != v));
      }
      Tensors q(node.inputs.size());
      T[i + 1] = node.unit->tangent(pass_, values(T, node.inputs), may_overwrite, Ei_[i + 1], values(Hi_, node.inputs),
                                    Hi_[i + 1], q);
      Q_[i] = std::move(q);
      Ei_[i + 1] = at::Tensor();
      for (int64_t v : node.inputs) {
        if (--readers[v] == 0) T[v] = at::Tensor();
      }
    }
  }

  // Step 5's second-order part: hbar, the penalised rows' adjoint of the forward, from 0
  // at the output down, the q injected at each node that has one, summed over consumers,
  // into the parameter gradients. Nothing to do without a second-order node.
  void second_order_gradients() {
    if (!any_second_order_) return;
    pass_.hbar_pass = true;
    const size_t n = nodes_.size();
    const int64_t row0 = pass_.row0;
    std::vector<at::Tensor> hbar(n + 1);
    for (size_t i = n; i-- > 0;) {
      const Node& node = nodes_[i];
      Unit& unit = *node.unit;
      const at::Tensor hb = hbar[i + 1];
      hbar[i + 1] = at::Tensor();
      const Tensors& q = Q_[i];
      bool any_q = false;
      for (const at::Tensor& t : q) any_q = any_q || t.defined();
      if (!hb.defined() && !any_q) continue;
      bool batch_only = true;
      for (int64_t v : node.inputs) batch_only = batch_only && v == 0;
      const bool wants_input = !batch_only || (unit.grads_from_input_signal() && unit.needs_every_input_row());
      const Tensors x = values(Hi_, node.inputs);
      Tensors contrib(node.inputs.size());
      if (hb.defined() && wants_input) contrib = unit.input_gradient(pass_, hb, x, Hi_[i + 1], row0);
      for (size_t k = 0; k < q.size(); ++k) {
        if (!q[k].defined() || !wants_input) continue;
        contrib[k] = contrib[k].defined() ? contrib[k].add_(as_layout(q[k], contrib[k])) : q[k];
      }
      const at::Tensor& signal = unit.grads_from_input_signal() ? contrib[0] : hb;
      if (signal.defined()) unit.param_grads(pass_, signal, x, row0, P_);
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const int64_t v = node.inputs[k];
        if (v > 0 && contrib[k].defined()) accumulate(hbar[v], contrib[k], contrib, k);
      }
    }
  }

 private:
  static Tensors values(const std::vector<at::Tensor>& store, const std::vector<int64_t>& which) {
    Tensors out;
    for (int64_t v : which) out.push_back(store[v]);
    return out;
  }

  // Rows [r0, r0 + rows) of the values `which` (undefined where a value was freed).
  static Tensors rows_of_values(const std::vector<at::Tensor>& store, const std::vector<int64_t>& which, int64_t r0,
                                int64_t rows) {
    Tensors out;
    for (int64_t v : which) out.push_back(store[v].defined() ? store[v].narrow(0, r0, rows) : at::Tensor());
    return out;
  }

  // Whether node i has one input and is that value's only reader.
  bool sole_reader(size_t i) const {
    const Node& node = nodes_[i];
    return node.inputs.size() == 1 && readers_[node.inputs[0]].size() == 1;
  }

  // How many nodes read each value.
  std::vector<int64_t> reader_counts() const {
    std::vector<int64_t> counts;
    for (const std::vector<int64_t>& r : readers_) counts.push_back(static_cast<int64_t>(r.size()));
    return counts;
  }

  // Whether value v is read by nothing but the shape of it once the forward is done:
  // its consumers' signal rules do not read it, nor does a later pass or its producer.
  bool read_for_shape_only(size_t v) const {
    if (v == 0 || reads_forward(v) || nodes_[v - 1].unit->reads_output()) return false;
    for (int64_t i : readers_[v]) {
      if (nodes_[i].unit->signal_reads_input()) return false;
    }
    return true;
  }

  // total += c, where c may be the very tensor handed to an earlier input of the same
  // node (a sum hands its signal to both): then a copy, so that no two values share one.
  static void accumulate(at::Tensor& total, at::Tensor c, const Tensors& contrib, size_t k) {
    for (size_t j = 0; j < k; ++j) {
      if (contrib[j].defined() && contrib[j].is_alias_of(c)) {
        c = c.clone(at::MemoryFormat::Preserve);
        break;
      }
    }
    if (total.defined()) {
      total.add_(c);
    } else {
      total = c;
    }
  }

  // The ordinary rows of signal e. The penalised rows among them carried seed 1 (their
  // signal is also g's): the loss's own seeds scale them here, on a copy.
  at::Tensor ordinary_rows(const at::Tensor& e, int64_t ordinary) const {
    if (!penalised_seed_.defined()) return e.narrow(0, 0, ordinary);
    at::Tensor out = e.narrow(0, 0, ordinary).clone(at::MemoryFormat::Preserve);
    std::vector<int64_t> shape(e.dim(), 1);
    shape[0] = penalised_seed_.size(0);
    out.narrow(0, 0, shape[0]).mul_(penalised_seed_.view(shape));
    return out;
  }

  // Value v's forward is behind the signal: keep its penalised rows where a later pass
  // reads them, free the rest.
  void release(size_t v) {
    if (!H_[v].defined()) return;
    if (P_ > 0 && reads_forward(v)) Hi_[v] = keep_unwritten_rows(H_[v], pass_.row0, P_);
    H_[v] = at::Tensor();
  }

  // Whether a later pass reads value v's forward on the penalised rows: a consumer that
  // reads its input in the tangent, or in the hbar pass (where there is one) in its
  // signal rules, or a producer that reads its output.
  bool reads_forward(size_t v) const {
    if (v > 0 && nodes_[v - 1].unit->reads_output()) return true;
    for (int64_t i : readers_[v]) {
      const Unit& unit = *nodes_[i].unit;
      if (unit.reads_input() || (any_second_order_ && unit.signal_reads_input())) return true;
    }
    return false;
  }

  Pass& pass_;
  const int64_t P_;
  int64_t rows_ = 0;  // of every value in the forward
  std::vector<Node> nodes_;
  std::vector<std::vector<int64_t>> readers_;  // the nodes reading each value
  bool any_second_order_ = false;
  at::Tensor penalised_seed_;
  std::vector<at::Tensor> H_, Hi_, Ei_;
  std::vector<FeatureOrder> order_;
  std::vector<Tensors> Q_;
};

}  // namespace
}  // namespace graph

std::tuple<at::Tensor, at::Tensor, at::Tensor, std::vector<at::Tensor>> graph_step(
    const at::Tensor& real, const at::Tensor& fake, const c10::optional<at::Tensor>& eps,
    const c10::optional<at::Tensor>& labels, at::TensorList params, at::IntArrayRef ints,
    at::ArrayRef<double> floats, int64_t loss_kind,
    double lam, double lam2, double center, bool one_sided, bool param_grads, bool triton) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  // The step runs in its inputs' dtype: under autocast (the caller casts the batches to
  // the parameters' dtype) its GEMMs and convolutions must not be cast down.
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  graph::check_real_fake(real, fake);
  TORCH_CHECK(loss_kind >= 0 && loss_kind <= 2, "fastgan: unknown graph loss ", loss_kind);
  const auto loss = static_cast<GraphLoss>(loss_kind);
  const int64_t B = real.size(0);
  const bool penalised = loss != GraphLoss::WGAN;
  const bool r1 = loss == GraphLoss::R1, r2 = r1 && lam2 > 0.0;
  TORCH_CHECK(eps.has_value() == (loss == GraphLoss::WGANGP), "fastgan: eps is given with wgan-gp only");
  TORCH_CHECK(lam2 == 0.0 || r1, "fastgan: lam2 (R2) is used with the r1 loss only");
  // The penalised rows: x^ after the real and fake rows (wgan-gp), or the real rows
  // themselves (R1), and the fake rows after them (R2).
  const int64_t rows = loss == GraphLoss::WGANGP ? 3 * B : 2 * B, row0 = r1 ? 0 : 2 * B;
  const int64_t P = penalised ? (r2 ? 2 * B : B) : 0;
  const double inv_b = 1.0 / static_cast<double>(B);

  // Step 1: X = [real; fake; x^] (without x^ for wgan and R1), channels-last for image batches.
  std::vector<int64_t> shape(real.sizes().begin(), real.sizes().end());
  shape[0] = rows;
  const at::Tensor X = at::empty(shape, real.options().memory_format(
                                             real.dim() == 4 ? at::MemoryFormat::ChannelsLast
                                                             : at::MemoryFormat::Contiguous));
  X.narrow(0, 0, B).copy_(real);
  X.narrow(0, B, B).copy_(fake);
  if (loss == GraphLoss::WGANGP) {
    TORCH_CHECK(eps->numel() == B, "fastgan: eps has ", eps->numel(), " elements for batch ", B);
    std::vector<int64_t> eshape(real.dim(), 1);
    eshape[0] = B;
    at::Tensor x_hat = X.narrow(0, row0, B);
    at::lerp_out(x_hat, fake, real, eps->reshape(eshape).to(real.options()));
  }
  std::vector<at::Tensor> grads(params.size());
  graph::Pass pass(grads, triton, row0, P);
  if (labels.has_value()) {
    // The rows' classes: the real and fake batches' own, and x^ takes its real sample's.
    TORCH_CHECK(labels->dim() == 1 && labels->size(0) == 2 * B && labels->scalar_type() == at::kLong &&
                    labels->device() == real.device(),
                "fastgan: labels must be the real and fake batches' int64 classes, (", 2 * B, ",) on ",
                real.device(), ", got ", labels->scalar_type(), " ", labels->sizes(), " on ", labels->device());
    pass.labels = loss == GraphLoss::WGANGP ? at::cat({*labels, labels->narrow(0, 0, B)}) : labels->contiguous();
  }
  graph::Params taker(params, X);
  graph::Graph g(ints, floats, taker, pass);
  TORCH_CHECK(taker.taken() == params.size(), "fastgan: the graph takes ", taker.taken(), " parameters, got ",
              params.size());
  g.forward(X);

  const at::Tensor D = g.output();
  const at::Tensor d_real = D.narrow(0, 0, B), d_fake = D.narrow(0, B, B);
  const at::Tensor wasserstein = (d_real.sum() - d_fake.sum()) * inv_b;
  at::Tensor seed = at::empty({rows}, X.options());
  at::Tensor base_loss;
  if (r1) {
    // softplus(-D) for the reals, softplus(D) for the fakes: seeds -sigmoid(-D)/B and
    // sigmoid(D)/B. The penalised rows are seeded with 1 (for g); their own seeds scale
    // their signal in the ordinary gradients, the backward being linear in the seed.
    base_loss = (at::softplus(-d_real).sum() + at::softplus(d_fake).sum()) * inv_b;
    seed.narrow(0, B, B).copy_(at::sigmoid(d_fake)).mul_(inv_b);
    const at::Tensor real_seed = at::sigmoid(-d_real).mul_(-inv_b);
    g.set_penalised_seed(r2 ? at::cat({real_seed, seed.narrow(0, B, B).clone()}) : real_seed);
  } else {
    base_loss = -wasserstein;
    seed.narrow(0, 0, B).fill_(-inv_b);
    seed.narrow(0, B, B).fill_(inv_b);
  }
  at::Tensor penalty = at::zeros({}, X.options());
  if (!penalised && !param_grads) return {base_loss, wasserstein, penalty, {}};
  if (penalised) seed.narrow(0, row0, P).fill_(1.0);

  // Step 2 (with the ordinary rows' gradients), and step 3 on g = grad_x D over the
  // penalised rows, block by block of B rows (R1 and R2 have their own lam).
  const at::Tensor grad = g.backward_signal(seed, 2 * B, B, param_grads);
  // Every parameter's gradient in its own shape (zeros where no node gave one).
  auto finished = [&]() {
    for (size_t i = 0; i < grads.size(); ++i) {
      grads[i] = grads[i].defined() ? grads[i].reshape(params[i].sizes()).contiguous() : at::zeros_like(params[i]);
    }
    return grads;
  };
  if (!penalised) return {base_loss, wasserstein, penalty, finished()};
  const at::Tensor g_rows = graph::rows_of(grad).contiguous();
  const at::Tensor u = at::empty_like(g_rows);
  at::Tensor total = base_loss;
  for (int64_t block = 0; block < P / B; ++block) {
    PenaltyArgs pen;
    pen.g = g_rows.narrow(0, block * B, B);
    pen.u = u.narrow(0, block * B, B);
    const double block_lam = block == 0 ? lam : lam2;
    pen.lam_over_batch = block_lam * inv_b;
    pen.center = r1 ? 0.0 : center;
    pen.one_sided = r1 ? false : one_sided;
    const at::Tensor mean_phi = graph::penalty_kernel(triton, pen) * inv_b;
    penalty = penalty + mean_phi;
    total = total + mean_phi * block_lam;
  }
  if (!param_grads) return {total, wasserstein, penalty, {}};
  // Steps 4 and 5's second-order part.
  g.tangent(graph::like_edge(u, grad));
  g.second_order_gradients();
  return {total, wasserstein, penalty, finished()};
}

}  // namespace fastgan
