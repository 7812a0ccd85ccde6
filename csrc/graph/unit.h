// The interface every node kind of the graph step implements, and what the kinds share:
// the step's context (parameter gradients, the elementwise kernels) and the layout
// helpers. Each kind lives in one file of this folder (linear.cpp, conv2d.cpp, ...),
// behind one factory declared below and listed in graph.cpp's table of kinds.
//
// The passes (shared/docs/fused-gp-math.md): the forward over every row, the backward
// signal over every row (its ordinary rows give the loss's first-order parameter
// gradients), the tangent over the penalised rows, and the second-order adjoint hbar
// over the penalised rows. A unit answers for its own node; the orchestration sums a
// value's signals, adjoints and tangents over its consumers.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <memory>
#include <vector>

#include "../bias_act.h"

namespace fastgan {
namespace graph {

using Tensors = std::vector<at::Tensor>;

// The feature order of a 2-D value made by flattening a channels-last batch: its
// (C, H, W), or empty when the features are in the module's own order.
using FeatureOrder = std::vector<int64_t>;

// One node's record: its kind, its input values (value 0 is the stacked batch, node i's
// output is value i + 1; -1: none), its flags and kind-specific integers and floats.
constexpr int64_t kNodeInts = 12;
constexpr int64_t kNodeFloats = 3;
struct NodeRecord {
  int64_t index = 0;  // the node's position, for messages
  int64_t kind = 0;
  std::array<int64_t, 2> inputs{-1, -1};
  int64_t flags = 0;
  const int64_t* ints = nullptr;   // 8 kind-specific integers
  const double* floats = nullptr;  // kNodeFloats kind-specific floats
};

// The step's parameters, handed out in node order (each kind takes its own, weight
// first), checked against the batch's dtype and device.
class Params {
 public:
  Params(at::TensorList params, const at::Tensor& like) : params_(params), like_(like) {}
  // The next parameter; `index` receives its position (the slot of its gradient).
  at::Tensor take(int64_t& index);
  size_t taken() const { return next_; }

 private:
  at::TensorList params_;
  const at::Tensor& like_;
  size_t next_ = 0;
};

// What every unit shares within one step.
class Pass {
 public:
  Pass(std::vector<at::Tensor>& grads, bool triton, int64_t row0, int64_t penalised)
      : grads_(grads), triton(triton), row0(row0), penalised(penalised) {}

  // grad of parameter `index` += g, given in memory `order` (its last dimensions the
  // features, `lead` dimensions in front) and stored in the parameter's own order.
  void add_grad(int64_t index, const at::Tensor& g, const FeatureOrder& order = {}, int64_t lead = 0);
  // The same for a weight's gradient g = a b (one lead dimension), accumulated by the
  // GEMM itself where the weight needs no permutation.
  void add_grad_mm(int64_t index, const at::Tensor& a, const at::Tensor& b, const FeatureOrder& order);

  // The activation element loop (bias_act_into), fastgan's C++/CUDA kernel or, with
  // `triton`, its Triton twin registered by fastgan/kernels/chain_elementwise.py.
  void act(const at::Tensor& out, int mode, const at::Tensor& x, const at::Tensor& p, const at::Tensor& q,
           const at::Tensor& b, const BiasActSpec& spec, bool x_is_y) const;

 private:
  std::vector<at::Tensor>& grads_;

 public:
  const bool triton;
  const int64_t row0;       // the first penalised row (the rows of Hi, Ei, tangents and hbar)
  const int64_t penalised;  // how many rows are penalised (0: none)
  // Whether input_gradient runs the hbar pass (else the signal pass).
  bool hbar_pass = false;
  // The class of each row of the stacked batch (int64), for a conditional critic's
  // projection; undefined for an unconditional one.
  at::Tensor labels;
};

// One node kind. The methods run in the order of the passes; the row ranges they see:
// forward all rows; input_gradient and param_grads the rows [r0, r0 + rows) of the
// signal pass (every row, or the penalised rows next to the batch) or the penalised
// rows (the hbar pass); tangent the penalised rows.
class Unit {
 public:
  virtual ~Unit() = default;

  // Step 1 over all rows: the output for inputs x (in_order: the first input's feature
  // order). Checks the inputs' shapes and prepares the parameters for this step.
  virtual at::Tensor forward(Pass& pass, const Tensors& x, const FeatureOrder& in_order) = 0;

  // The output's feature order (2-D outputs); by default a 2-D input's, passed on.
  virtual FeatureOrder output_order(const Tensors& x, const at::Tensor& y, const FeatureOrder& in_order) const {
    return (x[0].dim() == 2 && y.dim() == 2) ? in_order : FeatureOrder{};
  }

  // Steps 2 and 5: the signal at each input (undefined: none) for signal e at the
  // output, on rows from r0 whose forward is x (inputs) and y (output; defined when
  // reads_output()). It may overwrite e (overwrites_signal() then says so) unless
  // param_grads reads it afterwards.
  virtual Tensors input_gradient(Pass& pass, const at::Tensor& e, const Tensors& x, const at::Tensor& y,
                                 int64_t r0) = 0;

  // Parameter gradients from a signal on rows from r0 (inputs x): the output's signal,
  // or with grads_from_input_signal() the unit's own signal at its input. Sums over the
  // rows block by block of `block` rows, so that equal and opposite real and fake
  // seeds cancel exactly.
  virtual void param_grads(Pass& pass, const at::Tensor& e, const Tensors& x, int64_t r0, int64_t block) {}
  virtual bool grads_from_input_signal() const { return false; }

  // Step 4 on the penalised rows: the output's tangent for input tangents t (t[i] may be
  // overwritten where may_overwrite[i]), with tbar the output's signal and x, y the
  // forward on those rows; adds the tangent rows' parameter gradients and sets q[i],
  // the second-order injection d/dx_i <tbar, J t> where the kind has one.
  virtual at::Tensor tangent(Pass& pass, const Tensors& t, const std::vector<bool>& may_overwrite,
                             const at::Tensor& tbar, const Tensors& x, const at::Tensor& y, Tensors& q) = 0;

  // Whether its input gradient and parameter gradients read its inputs' forward (else
  // they are handed undefined tensors, and a value only such nodes read is freed right
  // after the forward).
  virtual bool signal_reads_input() const { return true; }

  // What the passes after the signal read, so that the rest is freed behind it (known
  // once the unit's forward has run).
  virtual bool reads_input() const { return false; }   // its inputs' forward (penalised rows)
  virtual bool reads_output() const { return false; }  // its output's forward
  virtual bool reads_signal() const { return false; }  // its output's signal (tbar)
  // Whether its input_gradient writes over the signal e it is handed.
  virtual bool overwrites_signal() const { return false; }
  virtual bool second_order() const { return false; }  // it injects q
  // Its input gradient on the batch's every row (its parameter gradients need them).
  virtual bool needs_every_input_row() const { return false; }

  // The forward may write over its input (the orchestration allows it, before the
  // forward, when nothing else reads that input, its producer included).
  virtual void allow_in_place() {}
  // A weighted node whose one consumer is an activation without a bias hands its bias
  // to that activation's kernel (one pass over the rows instead of two).
  virtual at::Tensor fold_bias() { return {}; }
  virtual bool takes_folded_bias() const { return false; }
  virtual void set_folded_bias(const at::Tensor& bias) {}
};

// The factories of the kinds (one file each).
std::unique_ptr<Unit> make_linear(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_conv2d(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_act(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_flatten(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_avgpool(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_norm(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_add(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_scale(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_global_pool(const NodeRecord& r, Params& p);
std::unique_ptr<Unit> make_projection(const NodeRecord& r, Params& p);

// Layout helpers.
bool channels_last(const at::Tensor& t);
// t in like's memory layout (a copy only where the strides differ).
at::Tensor as_layout(const at::Tensor& t, const at::Tensor& like);
// The feature order of value t whose producer's input order is flat_order.
FeatureOrder feature_order(const at::Tensor& t, const FeatureOrder& flat_order);
// A parameter whose last dimensions are the features in (C, H, W) order (`lead`
// dimensions in front), in memory order (H, W, C); `back` does the inverse.
at::Tensor to_memory_order(const at::Tensor& p, const FeatureOrder& order, int64_t lead, bool back = false);
// The rows of a batch as a (rows, features) matrix in memory order (a view), and back.
at::Tensor rows_of(const at::Tensor& t);
at::Tensor like_edge(const at::Tensor& rows, const at::Tensor& like);
// The per-channel sum over rows and space, and the same block by block of `block` rows.
at::Tensor channel_sum(const at::Tensor& e);
at::Tensor block_sum(const at::Tensor& e, int64_t block);
std::array<int64_t, 2> pair(const int64_t* v);
// Raises, naming the node and its kind, unless ok.
void check_kind(bool ok, const NodeRecord& r, const char* kind, const char* what);

}  // namespace graph
}  // namespace fastgan
