// Registers the ops of fastgan._C with the PyTorch dispatcher, and the Python module
// that loads them.
#include <ATen/core/grad_mode.h>
#include <Python.h>
#include <torch/library.h>

#include "bias_act.h"
#include "graph/graph.h"
#include "optim.h"
#include "penalty.h"

TORCH_LIBRARY(fastgan, m) {
  m.def(
      "graph_step(Tensor real, Tensor fake, Tensor? eps, Tensor? labels, Tensor[] params, int[] ints, float[] floats, "
      "int loss, float lam, float lam2, float center, bool one_sided, bool param_grads, bool triton) "
      "-> (Tensor, Tensor, Tensor, Tensor[])");
  m.def("row_penalty(Tensor g, float center, bool one_sided) -> (Tensor, Tensor)");
  m.def("clip_(Tensor(a!)[] params, float c) -> ()");
  m.def(
      "clipped_rmsprop_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] square_avgs, "
      "Tensor(c!)[] grad_avgs, Tensor(d!)[] momentum_buffers, float lr, float alpha, float eps, "
      "float weight_decay, float momentum, bool centered, float clip) -> ()");
  m.def("bias_act(Tensor x, Tensor? b, int dim, str act, float alpha, float gain, float clamp) -> Tensor");
  m.def(
      "bias_act_grad(Tensor dy, Tensor ref, Tensor? b, int dim, str act, float alpha, float gain, "
      "float clamp, bool ref_is_y) -> Tensor");
  m.def(
      "bias_act_grad2(Tensor p, Tensor q, Tensor x, Tensor? b, int dim, str act, float alpha, "
      "float gain, float clamp) -> Tensor");
}

namespace {

// The ops' kernels are device-generic (they dispatch their epilogues per device), so
// the CPU and CUDA keys register the same functions.
void register_kernels(torch::Library& m) {
  m.impl("graph_step", &fastgan::graph_step);
  m.impl("row_penalty", &fastgan::row_penalty);
  m.impl("clip_", &fastgan::clip_);
  m.impl("clipped_rmsprop_", &fastgan::clipped_rmsprop_);
  m.impl("bias_act", &fastgan::bias_act);
  m.impl("bias_act_grad", &fastgan::bias_act_grad);
  m.impl("bias_act_grad2", &fastgan::bias_act_grad2);
}

// The Autograd kernel of the ops that have no derivative of their own: the fused critic
// step (whose gradients fastgan's critics hand to autograd themselves, calling it with
// autograd off) and the in-place optimiser ops. Called with grad mode on and an input
// that requires grad, they raise instead of handing back outputs whose gradient would
// be silently missing; otherwise they run the kernel below autograd.
void refuse_autograd(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  if (at::GradMode::is_enabled()) {
    const size_t n = op.schema().arguments().size();
    auto requires_grad = [](const c10::IValue& v) {
      if (v.isTensor()) return v.toTensor().requires_grad();
      if (v.isTensorList()) {
        for (const at::Tensor& t : v.toTensorList()) {
          if (t.requires_grad()) return true;
        }
      }
      return false;
    };
    for (const c10::IValue& v : torch::jit::last(*stack, n)) {
      TORCH_CHECK(!requires_grad(v), op.schema().name(),
                  " has no autograd formula: call it under torch.no_grad() or on detached tensors, "
                  "or use the differentiable fastgan API (fastgan.FusedCritic, fastgan.ops.clip_, "
                  "fastgan.ClippedRMSprop)");
    }
  }
  op.redispatchBoxed(keys & c10::after_autograd_keyset, stack);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan, Autograd, m) {
  for (const char* name : {"graph_step", "clip_", "clipped_rmsprop_"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&refuse_autograd>());
  }
}

TORCH_LIBRARY_IMPL(fastgan, CPU, m) { register_kernels(m); }

#ifdef FASTGAN_WITH_CUDA
TORCH_LIBRARY_IMPL(fastgan, CUDA, m) { register_kernels(m); }
#endif

// Importing fastgan._C runs the registrations above; the module itself is empty.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
