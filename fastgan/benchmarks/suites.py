"""The suites of ``fastgan bench``. Each yields ``(config, peers, floor)``: the peers
run one repetition each, and ``floor`` (or None) runs the GEMMs the math doc counts for
a fused critic step, timed in the same run.

* ``critic-step``: one WGAN-GP critic step (loss, backward into .grad) of an MLP critic,
  the toy one (leaky ReLU, and tanh) and two MNIST-sized ones; on a GPU also at B = 4096, and every peer also
  replayed from a CUDA graph; then the conv critics (:func:`conv_critic_step`): the
  DCGAN critic at 32x32 and the digits critic, with and without LayerNorm, and an R1
  step, and the residual critics traced from their modules (:func:`graph_critic_step`),
  each beside its conv floor (:func:`floor_convolutions`);
* ``train-iter``: a whole training iteration (n_critic critic steps, a generator step,
  optimisers) for wgan-gp and wgan, on the toy MLPs and on the DCGAN digits nets, and
  for wgan-gp on the paper's CIFAR ResNets (``--arch resnet``) at 32x32;
* ``ops``: the drop-in ops (:mod:`fastgan.benchmarks.ops_suite`);
* ``scaling``: the fused critic step over batch and width sweeps, against the floor.
"""
from __future__ import annotations

import copy

import torch

import fastgan
from fastgan import reference, run_folder
from fastgan.benchmarks import peers as P
from fastgan.benchmarks.critics import GroupedCritic, ResNetCritic
from fastgan.benchmarks.harness import Peer, cuda_graph
from fastgan.benchmarks.ops_suite import ops
from fastgan.config import TrainConfig
from fastgan.nn import DCGANCritic
from fastgan.resnet import group_norm
from fastgan.trainer import Trainer

CRITIC_CONFIGS = [("toy", (2, 512, 512, 512), 256), ("toy tanh", (2, 512, 512, 512), 256),
                  ("mnist-512", (784, 512, 512, 512), 64), ("mnist-1024", (784, 1024, 1024, 1024), 256)]
QUICK_CRITIC_CONFIGS = [("toy", (2, 512, 512, 512), 256)]
GPU_CRITIC_CONFIGS = [("toy", (2, 512, 512, 512), 4096), ("mnist-1024", (784, 1024, 1024, 1024), 4096)]
QUICK_GPU_CRITIC_CONFIGS = GPU_CRITIC_CONFIGS[:1]


def floor_gemms(widths, batch, smooth=False, device=None):
    """The GEMMs fused-gp-math.md counts for a critic step, as one callable: per layer
    the forward and backward signal over 3B rows, the adjoint over B rows and the weight
    gradient over 3B rows, plus B rows of extra backward signal for smooth activations."""
    dims = list(widths) + [1]
    ops = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        w = torch.randn(d_out, d_in, device=device)
        h3, h1 = torch.randn(3 * batch, d_in, device=device), torch.randn(batch, d_in, device=device)
        g3, g1 = torch.randn(3 * batch, d_out, device=device), torch.randn(batch, d_out, device=device)
        ops += [(h3, w.t()), (g3, w), (h1, w.t()), (g3.t(), h3)]
        if smooth:
            ops.append((g1, w))

    def run():
        for a, b in ops:
            torch.mm(a, b)
    return run


def floor_convolutions(critic, shape, batch, loss="wgan-gp", device=None):
    """The convolutions and GEMMs the fused graph step runs (csrc/graph/) for
    ``critic``'s Conv2d and Linear modules, as one callable, on channels-last batches
    as the step runs them. The stacked rows are 3B for WGAN-GP, 2B for R1 (its
    penalised rows P the real ones, B, or with R2 (``"r1+r2"``) real and fake, 2B).
    Per weighted layer: the forward over the stacked rows, the input gradient over the
    stacked rows (over P for a layer reading the batch), the weight gradient of the real
    and fake rows (2B), the tangent and its weight gradient over P rows each; with a
    second-order node (a norm, a smooth activation) also hbar's weight gradient and
    input gradient over P rows each."""
    from torch.ops import aten

    from fastgan.ops.trace import traced

    stacked, penalised = {"wgan-gp": (3, 1), "r1": (2, 1), "r1+r2": (2, 2)}[loss]
    x = torch.zeros(1, *shape, device=device)
    layers = []
    hooks = [m.register_forward_hook(lambda m, args, y: layers.append((m, args[0], y)))
             for m in critic.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        critic(x)
    for h in hooks:
        h.remove()
    second_order = traced(critic).spec(x).second_order()

    def rows(n, like):
        t = torch.randn(n * batch, *like.shape[1:], device=device)
        return t.to(memory_format=torch.channels_last) if t.dim() == 4 else t

    ops = []
    for m, h, y in layers:
        w = m.weight.detach().to(device)
        hs, h2, hp = rows(stacked, h), rows(2, h), rows(penalised, h)
        gs, g2, gp = rows(stacked, y), rows(2, y), rows(penalised, y)
        forwards = [hs, hp]                                   # forward, tangent
        weight_grads = [(g2, h2), (gp, hp)] + ([(gp, hp)] if second_order else [])
        reads_batch = h is x
        input_grads = [(gp, hp) if reads_batch else (gs, hs)] + ([(gp, hp)] if second_order and not reads_batch else [])
        if isinstance(m, torch.nn.Conv2d):
            geo = (list(m.stride), list(m.padding), list(m.dilation), False, [0, 0], m.groups)
            ops += [lambda h=h, w=w, geo=geo: aten.convolution(h, w, None, *geo) for h in forwards]
            ops += [lambda g=g, h=h, w=w, geo=geo, mask=mask: aten.convolution_backward(g, h, w, None, *geo, mask)
                    for pairs, mask in ((weight_grads, [False, True, False]), (input_grads, [True, False, False]))
                    for g, h in pairs]
        else:
            pairs = [(h, w.t()) for h in forwards] + [(g.t(), h) for g, h in weight_grads]
            pairs += [(g, w) for g, _ in input_grads]
            ops += [lambda a=a, b=b: torch.mm(a, b) for a, b in pairs]

    def run():
        for op in ops:
            op()
    return run


def fused_critic_step(critic, real, fake, lam, backend, loss="wgan-gp"):
    """One fused WGAN-GP (or R1, ``gamma = lam``) critic step of ``critic`` on
    ``backend`` (backward included)."""
    def step():
        with fastgan.use_backend(backend):
            critic.zero_grad(set_to_none=True)
            out = critic.r1_loss(real, fake, gamma=lam) if loss == "r1" else critic.wgan_gp_loss(real, fake, lam=lam)
            out.loss.backward()
    return step


def compiled_fused_critic_step(critic, real, fake, lam, backend):
    """The fused step's loss compiled as one ``torch.compile(fullgraph=True)`` graph with
    torch's default settings, its backward called outside, as a user's trainer does."""
    compiled = torch.compile(lambda real, fake: critic.wgan_gp_loss(real, fake, lam=lam).loss, fullgraph=True)

    def step():
        with fastgan.use_backend(backend):
            critic.zero_grad(set_to_none=True)
            compiled(real, fake).backward()
    return step


def fastgan_backends(device: torch.device) -> list[str]:
    """The native backends that run on ``device`` here (the interpreter is no backend
    to time)."""
    native = [b for b in fastgan.available_backends() if b in ("cpu", "cuda", "triton")]
    if device.type == "cpu":
        return [b for b in native if b == "cpu"]
    return [b for b in native if b in ("cuda", "triton")]


def with_cuda_graphs(peers: list[Peer], device: torch.device) -> list[Peer]:
    """On a GPU, ``peers`` followed by each uncompiled peer replayed from a CUDA graph
    (:func:`fastgan.benchmarks.harness.cuda_graph`) and compiled with
    ``torch.compile(mode="reduce-overhead")`` (inductor's own CUDA graphs; a step it
    refuses, such as a double backward, is an error row); elsewhere ``peers``."""
    if device.type != "cuda":
        return peers
    plain = [p for p in peers if not p.compiled]
    return (peers + [cuda_graph(p) for p in plain]
            + [Peer(f"{p.name} (compile reduce-overhead)", torch.compile(p.fn, mode="reduce-overhead"), p.backend,
                    compiled=True) for p in plain])


def critic_step(quick: bool, device: torch.device):
    """The configs, and on a GPU the large-batch ones; the peers, fastgan on its native
    backends and on its plain-torch ``eager`` backend (the reference)."""
    lam = 10.0
    configs = QUICK_CRITIC_CONFIGS if quick else CRITIC_CONFIGS
    if device.type == "cuda":
        configs = configs + (QUICK_GPU_CRITIC_CONFIGS if quick else GPU_CRITIC_CONFIGS)
    for name, widths, batch in configs:
        torch.manual_seed(0)
        activation = "tanh" if name.endswith(" tanh") else "lrelu"
        critic = fastgan.FusedMLPCritic(widths[0], widths[1:], activation).to(device)
        seq = critic.to_sequential()
        real, fake = torch.randn(batch, widths[0], device=device), torch.randn(batch, widths[0], device=device)

        def torch_step(loss_fn, module=seq):
            def step():
                module.zero_grad(set_to_none=True)
                loss_fn(module, real, fake, lam).backward()
            return step

        peers = [Peer("eager", torch_step(P.popular_loss)), Peer("eager-careful", torch_step(P.careful_loss)),
                 Peer("torch.func", torch_step(P.func_loss)),
                 Peer("torch.compile", torch.compile(torch_step(P.popular_loss, copy.deepcopy(seq))), compiled=True)]
        peers += [Peer("fastgan", fused_critic_step(critic, real, fake, lam, b), b)
                  for b in fastgan_backends(device) + ["eager"]]
        peers += [Peer("fastgan compiled", compiled_fused_critic_step(critic, real, fake, lam, b), b, compiled=True)
                  for b in fastgan_backends(device)]
        yield (f"{name} {'-'.join(map(str, widths))}-1 B={batch}", with_cuda_graphs(peers, device),
               floor_gemms(widths, batch, activation == "tanh", device=device))
    yield from conv_critic_step(quick, device)
    yield from graph_critic_step(quick, device)


CONV_CONFIGS = [("DCGAN 32x32", 32, 3, 64, 64), ("digits 8x8", 8, 1, 64, 64)]
QUICK_CONV_CONFIGS = [("digits 8x8", 8, 1, 64, 64)]


def conv_critic_step(quick: bool, device: torch.device):
    """The fused chain step of the DCGAN critics (WGAN-GP, with and without LayerNorm;
    R1 on the 32x32 one) against eager (its R1 the same loss by autograd), and for
    WGAN-GP eager-careful, torch.func, torch.compile and the drop-in
    ``fastgan.gradient_penalty`` on the same critic, beside the conv floor."""
    lam = 10.0
    configs = QUICK_CONV_CONFIGS if quick and device.type != "cuda" else CONV_CONFIGS  # a GPU runs both
    for name, size, channels, width, batch in configs:
        variants = [("wgan-gp", False), ("wgan-gp", True)] + ([("r1", False)] if size == 32 else [])
        for loss, layer_norm in variants:
            torch.manual_seed(0)
            critic = DCGANCritic(size, channels, width, layer_norm=layer_norm).to(device)
            twin = P.plain_twin(critic)
            real = torch.randn(batch, channels, size, size, device=device)
            fake = torch.randn(batch, channels, size, size, device=device)

            def torch_step(loss_fn, module=twin):
                def step():
                    module.zero_grad(set_to_none=True)
                    loss_fn(module, real, fake, lam).backward()
                return step

            if loss == "r1":
                peers = [Peer("eager", torch_step(lambda m, r, f, g: reference.chain_loss(m, r, f, "r1", g / 2).loss))]
            else:
                def drop_in():
                    critic.zero_grad(set_to_none=True)
                    loss = critic(fake).mean() - critic(real).mean()
                    (loss + fastgan.gradient_penalty(critic, real, fake, lam=lam)).backward()

                peers = [Peer("eager", torch_step(P.popular_loss)), Peer("eager-careful", torch_step(P.careful_loss)),
                         Peer("torch.func", torch_step(P.func_loss)),
                         Peer("torch.compile", torch.compile(torch_step(P.popular_loss, copy.deepcopy(twin))),
                              compiled=True),
                         Peer("fastgan drop-in gradient_penalty", drop_in, fastgan.backends.resolve(device))]
            peers += [Peer("fastgan", fused_critic_step(critic, real, fake, lam, b, loss), b)
                      for b in fastgan_backends(device) if b != "triton"]
            floor = floor_convolutions(critic, (channels, size, size), batch, loss, device=device)
            label = f"{name} width {width} B={batch} {loss}{', LayerNorm' if layer_norm else ''}"
            yield label, with_cuda_graphs(peers, device), floor


# (name, critic, sample shape, batch, loss): the residual critics users train with a
# penalty, traced from their own modules. The paper's 64x64 GroupNorm critic runs at
# 32x32 with 64 channels here (at 64x64 one eager step takes minutes on 2 cores).
GRAPH_CONFIGS = [("CIFAR ResNet 128ch 32x32", lambda: ResNetCritic(128), (3, 32, 32), 64, "wgan-gp"),
                 ("ResNet GroupNorm(1,C) 64ch 32x32", lambda: ResNetCritic(64, norm=group_norm), (3, 32, 32), 32,
                  "wgan-gp"),
                 ("grouped+depthwise residual 64ch 32x32", lambda: GroupedCritic(64, blocks=3, groups=8),
                  (3, 32, 32), 64, "r1+r2")]
QUICK_GRAPH_CONFIGS = [("CIFAR ResNet 32ch 16x16", lambda: ResNetCritic(32), (3, 16, 16), 16, "wgan-gp"),
                       ("grouped+depthwise residual 16ch 16x16", lambda: GroupedCritic(16, blocks=2, groups=4),
                        (3, 16, 16), 16, "r1+r2")]


def graph_critic_step(quick: bool, device: torch.device):
    """The fused step of residual critics (:mod:`fastgan.benchmarks.critics`) traced
    from their modules, against eager, the drop-in penalties, torch.func and
    ``torch.compile`` of the drop-in's jvp form (WGAN-GP), beside the conv floor. R1 +
    R2 (gamma 10 each) against the same loss by autograd and the drop-in r1_penalty."""
    gamma = lam = 10.0
    configs = GRAPH_CONFIGS if not quick else QUICK_GRAPH_CONFIGS
    if quick and device.type == "cuda":  # make gpu-check: the CIFAR ResNet at its size
        configs = GRAPH_CONFIGS[:1] + QUICK_GRAPH_CONFIGS[1:]
    for name, make, shape, batch, loss in configs:
        torch.manual_seed(0)
        module = make().to(device)
        critic = fastgan.FusedCritic.from_module(module)
        real, fake = torch.randn(batch, *shape, device=device), torch.randn(batch, *shape, device=device)

        def torch_step(loss_fn):
            def step():
                module.zero_grad(set_to_none=True)
                loss_fn(module, real, fake, lam).backward()
            return step

        if loss == "wgan-gp":
            def drop_in_loss(m, r, f, lam, method="auto"):
                return m(f).mean() - m(r).mean() + fastgan.gradient_penalty(m, r, f, lam=lam, method=method)

            jvp = torch.compile(lambda r, f: drop_in_loss(module, r, f, lam, "jvp"))

            def compiled_jvp():
                module.zero_grad(set_to_none=True)
                jvp(real, fake).backward()

            peers = [Peer("eager", torch_step(P.popular_loss)), Peer("torch.func", torch_step(P.func_loss)),
                     Peer("fastgan drop-in gradient_penalty", torch_step(drop_in_loss), fastgan.backends.resolve(device)),
                     Peer("torch.compile of the jvp form", compiled_jvp, fastgan.backends.resolve(device), compiled=True)]
        else:
            def drop_in_loss(m, r, f, gamma):
                d_real, d_fake = m(r), m(f)
                return (torch.nn.functional.softplus(d_fake).mean() + torch.nn.functional.softplus(-d_real).mean()
                        + fastgan.r1_penalty(m, r, gamma) + fastgan.r1_penalty(m, f, gamma))

            peers = [Peer("eager", torch_step(lambda m, r, f, g: reference.chain_loss(m, r, f, "r1", g / 2,
                                                                                        lam2=g / 2).loss)),
                     Peer("fastgan drop-in r1_penalty", torch_step(drop_in_loss), fastgan.backends.resolve(device))]

        def fused(b):
            def step():
                with fastgan.use_backend(b):
                    critic.zero_grad(set_to_none=True)
                    out = (critic.wgan_gp_loss(real, fake, lam=lam) if loss == "wgan-gp"
                           else critic.r1_loss(real, fake, gamma=gamma, r2_gamma=gamma))
                    out.loss.backward()
            return step

        peers += [Peer("fastgan", fused(b), b) for b in fastgan_backends(device)]
        floor = floor_convolutions(module, shape, batch, loss, device=device)
        yield f"{name} B={batch} {loss.upper() if loss != 'wgan-gp' else loss}", with_cuda_graphs(peers, device), floor


def _optimizers(objective, critic, generator, foreach):
    if objective == "wgan":
        return (torch.optim.RMSprop(critic.parameters(), lr=5e-5, foreach=foreach),
                torch.optim.RMSprop(generator.parameters(), lr=5e-5, foreach=foreach))
    betas = (0.5, 0.9)
    return (torch.optim.Adam(critic.parameters(), lr=1e-4, betas=betas, foreach=foreach),
            torch.optim.Adam(generator.parameters(), lr=1e-4, betas=betas, foreach=foreach))


def torch_iteration(objective, data, critic, generator, batch, latent, n_critic, lam, careful, compiled=False):
    """One training iteration as torch code: n_critic critic steps (the popular or the
    careful loss, clamping for wgan) and a generator step."""
    loss_fn = P.careful_loss if careful else P.popular_loss
    opt_d, opt_g = _optimizers(objective, critic, generator, foreach=careful or None)
    params = list(critic.parameters())
    if compiled:
        critic, generator = torch.compile(critic), torch.compile(generator)

    def iteration():
        for _ in range(n_critic):
            real = data.sample(batch)
            with torch.no_grad():
                fake = generator(torch.randn(batch, latent))
            opt_d.zero_grad(set_to_none=careful)
            loss_fn(critic, real, fake, lam if objective == "wgan-gp" else 0.0).backward()
            opt_d.step()
            if objective == "wgan":
                with torch.no_grad():
                    if careful:
                        torch._foreach_clamp_min_(params, -0.01)
                        torch._foreach_clamp_max_(params, 0.01)
                    else:
                        for p in params:
                            p.clamp_(-0.01, 0.01)
        for p in params:
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=careful)
        (-critic(generator(torch.randn(batch, latent))).mean()).backward()
        opt_g.step()
        for p in params:
            p.requires_grad_(True)
    return iteration


# (objective, data, arch, width, batch, name, with torch.compile peers): the ResNet row
# leaves out the compiled peers on a CPU, whose compilation of the residual nets' steps
# takes minutes on 2 cores.
TRAIN_CONFIGS = [("wgan-gp", "8gaussians", "dcgan", None, 256, "toy MLP 512x3", True),
                 ("wgan", "8gaussians", "dcgan", None, 256, "toy MLP 512x3", True),
                 ("wgan-gp", "digits", "dcgan", None, 64, "DCGAN digits 8x8", True),
                 ("wgan", "digits", "dcgan", None, 64, "DCGAN digits 8x8", True),
                 ("wgan-gp", "digits32", "resnet", 64, 32, "ResNet 32x32 (CIFAR nets, 64ch) digits32", False)]


def train_iter(quick: bool, device: torch.device):
    for objective, data_name, arch, width, batch, name, compiles in (TRAIN_CONFIGS[:2] if quick else TRAIN_CONFIGS):
        def make_trainer(compile, critic_step="fused"):
            trainer = Trainer(TrainConfig(objective=objective, data=data_name, arch=arch, width=width, batch=batch,
                                          steps=10**9, n_critic=5, log_every=10**9, progress=False,
                                          device=str(device), out=run_folder.scratch(), compile=compile,
                                          critic_step=critic_step))
            trainer.step = 25  # past wgan's 100-critic-step start: a steady-state iteration
            return trainer

        compiles = compiles or device.type == "cuda"
        trainer, drop_in = make_trainer(False), make_trainer(False, "drop-in")

        def torch_peer(name, careful, compiled=False):
            twin = P.plain_twin(trainer.critic)  # torch modules, the trainer's weights
            generator = copy.deepcopy(trainer.generator)
            return Peer(name, torch_iteration(objective, trainer.data, twin, generator, batch, trainer.latent_dim,
                                              5, trainer.lam, careful, compiled), compiled=compiled)

        backend = fastgan.backends.resolve(device)
        peers = [torch_peer("eager", False), torch_peer("eager-careful", True)]
        peers += [torch_peer("torch.compile", False, compiled=True)] if compiles else []
        peers.append(Peer("fastgan", trainer.train_step, backend))
        peers += [Peer("fastgan --compile", make_trainer(True).train_step, backend, compiled=True)] if compiles else []
        peers.append(Peer("fastgan --critic-step drop-in", drop_in.train_step, backend))
        yield f"{objective} {name} B={batch}", peers, None


SCALING_BATCHES, QUICK_SCALING_BATCHES = (64, 128, 256, 512, 1024, 2048, 4096), (64, 256, 1024)
SCALING_WIDTHS, QUICK_SCALING_WIDTHS = (128, 256, 512, 1024, 2048), (128, 256, 512)


def scaling(quick: bool, device: torch.device):
    """The fused critic step (2 -> w x 3 -> 1, lrelu) over a batch sweep at width 512 and
    a width sweep at batch 256, each beside its GEMM floor."""
    backend = fastgan_backends(device)[:1]
    if not backend:
        return
    sweeps = [("batch", b, 512) for b in (QUICK_SCALING_BATCHES if quick else SCALING_BATCHES)]
    sweeps += [("width", 256, w) for w in (QUICK_SCALING_WIDTHS if quick else SCALING_WIDTHS)]
    for sweep, batch, width in sweeps:
        torch.manual_seed(0)
        widths = (2, width, width, width)
        critic = fastgan.FusedMLPCritic(2, widths[1:], "lrelu").to(device)
        real, fake = torch.randn(batch, 2, device=device), torch.randn(batch, 2, device=device)
        peers = [Peer("fastgan", fused_critic_step(critic, real, fake, 10.0, backend[0]), backend[0])]
        peers = with_cuda_graphs(peers, device)
        yield f"{sweep} sweep: width {width}, B={batch}", peers, floor_gemms(widths, batch, device=device)


SUITES = {"critic-step": critic_step, "train-iter": train_iter, "ops": ops, "scaling": scaling}
