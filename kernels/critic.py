"""Triton kernels of the fused MLP critic, and the launch helpers that drive them.

Three kernels:

* ``_gemm_kernel``: ``C = A @ B`` (any strides, so transposes are free) with a fused
  epilogue: bias + activation + saved derivatives (forward), derivative multiply with
  the optional ``q``/``abar`` update and an added term (backward), or plain/accumulated
  store (weight gradients, with the bias gradient's row sums fused in);
* ``_penalty_kernel``: per-sample norms, ``phi`` and ``u`` in one row pass;
* ``_stack_kernel``: ``X = [real; fake; eps real + (1 - eps) fake]`` in one pass.

Blocks are powers of two >= 16 with masks for ragged edges, so every ``tl.dot`` is
legal on a GPU; accumulation is fp32 (fp64 for fp64 inputs). ``LAUNCHES`` counts the
launches made through the helpers. Run on CPU tensors with ``TRITON_INTERPRET=1``.
"""
from __future__ import annotations

import collections

import torch
import triton
import triton.language as tl

from fastgan.activations import CODES

#: Kernel launches made through this module's helpers, by kernel name.
LAUNCHES: collections.Counter = collections.Counter()

# Activation codes: fastgan.activations' table (csrc/activation_math.h's).
ACT_CODES = CODES
RELU, LRELU, TANH, SOFTPLUS, SILU, SIGMOID, ELU, GELU, LINEAR = (
    CODES[n] for n in ("relu", "lrelu", "tanh", "softplus", "silu", "sigmoid", "elu", "gelu", "linear"))
SOFTPLUS_THRESHOLD = 20.0

# Epilogues of _gemm_kernel.
EPI_STORE, EPI_BIAS_ACT, EPI_ACT_GRAD = 0, 1, 2


@triton.jit
def _sigmoid(a):
    return 1.0 / (1.0 + tl.exp(-a))


@triton.jit
def _activation(a, ALPHA: tl.constexpr, ACT: tl.constexpr):
    """s(a), s'(a), s''(a); the same formulas as csrc/activation_math.h. Scalars that
    must keep double precision are constexpr: float arguments would arrive as fp32."""
    zero = tl.zeros_like(a)
    one = zero + 1.0
    if ACT == 0:  # relu
        s = tl.where(a > 0, a, zero)
        ds = tl.where(a > 0, one, zero)
        d2s = zero
    elif ACT == 1:  # lrelu
        s = tl.where(a > 0, a, ALPHA * a)
        ds = tl.where(a > 0, one, zero + ALPHA)
        d2s = zero
    elif ACT == 2:  # tanh, from exp(-2|a|) so that it never overflows
        t = tl.exp(-2.0 * tl.abs(a))
        s = tl.where(a >= 0, one, -one) * (1.0 - t) / (1.0 + t)
        ds = 1.0 - s * s
        d2s = -2.0 * s * ds
    elif ACT == 3:  # softplus (beta 1, identity above the threshold, as torch.nn.Softplus)
        sg = _sigmoid(a)
        linear = a > 20.0
        s = tl.where(linear, a, tl.maximum(a, zero) + tl.log(1.0 + tl.exp(-tl.abs(a))))
        ds = tl.where(linear, one, sg)
        d2s = tl.where(linear, zero, sg * (1.0 - sg))
    elif ACT == 4:  # silu
        sg = _sigmoid(a)
        s = a * sg
        ds = sg * (1.0 + a * (1.0 - sg))
        d2s = sg * (1.0 - sg) * (2.0 + a * (1.0 - 2.0 * sg))
    elif ACT == 5:  # sigmoid
        s = _sigmoid(a)
        ds = s * (1.0 - s)
        d2s = ds * (1.0 - 2.0 * s)
    elif ACT == 6:  # elu (scale ALPHA)
        e = tl.exp(tl.minimum(a, zero))
        s = tl.where(a > 0, a, ALPHA * (e - 1.0))
        ds = tl.where(a > 0, one, ALPHA * e)
        d2s = tl.where(a > 0, zero, ALPHA * e)
    elif ACT == 7:  # gelu, the exact erf form
        cdf = 0.5 * (1.0 + tl.math.erf(a * 0.70710678118654752440))
        pdf = tl.exp(-0.5 * a * a) * 0.39894228040143267794
        s = a * cdf
        ds = cdf + a * pdf
        d2s = pdf * (2.0 - a * a)
    else:  # linear
        s = a
        ds = one
        d2s = zero
    return s, ds, d2s


@triton.jit
def _derivative_from_saved(saved, ALPHA: tl.constexpr, ACT: tl.constexpr):
    """s'(a) from what the forward kept: the output's sign for relu/lrelu, else s'(a)."""
    zero = tl.zeros_like(saved)
    if ACT == 0:
        return tl.where(saved > 0, zero + 1.0, zero)
    elif ACT == 1:
        return tl.where(saved > 0, zero + 1.0, zero + ALPHA)
    elif ACT == 8:
        return zero + 1.0
    else:
        return saved


@triton.jit
def _gemm_kernel(
    a_ptr, b_ptr, c_ptr, M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    bias_ptr, d1_ptr, d2_ptr, d2_row0,          # EPI_BIAS_ACT: z = acc + bias; d1 = s', d2 = s''
    saved_ptr, add_ptr, coef_ptr, coef_row0,    # EPI_ACT_GRAD: c = s'(saved) acc + add; coef *= acc
    rowsum_ptr, rowsum_k,                       # rowsum[m] = sum_{k < rowsum_k} A[m, k]
    ALPHA: tl.constexpr,                        # the leaky-ReLU slope
    EPILOGUE: tl.constexpr, ACT: tl.constexpr, ACCUMULATE: tl.constexpr,
    HAS_D1: tl.constexpr, HAS_D2: tl.constexpr, HAS_ADD: tl.constexpr, HAS_COEF: tl.constexpr,
    HAS_ROWSUM: tl.constexpr, FP64: tl.constexpr, IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    acc_dtype = tl.float64 if FP64 else tl.float32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
    rowsum = tl.zeros((BLOCK_M,), dtype=acc_dtype)
    for k0 in range(0, K, BLOCK_K):
        rk = (k0 + tl.arange(0, BLOCK_K)).to(tl.int64)
        a = tl.load(a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak,
                    mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bn,
                    mask=(rk[:, None] < K) & (rn[None, :] < N), other=0.0)
        if IEEE:
            acc += tl.dot(a, b, input_precision="ieee", out_dtype=acc_dtype)
        else:
            acc += tl.dot(a, b, out_dtype=acc_dtype)
        if HAS_ROWSUM:
            rowsum += tl.sum(tl.where(rk[None, :] < rowsum_k, a, 0.0).to(acc_dtype), axis=1)

    mask = (rm[:, None] < M) & (rn[None, :] < N)
    c_ptrs = c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn
    out_dtype = c_ptr.dtype.element_ty
    if EPILOGUE == 1:
        bias = tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(acc_dtype)
        s, ds, d2s = _activation(acc + bias[None, :], ALPHA, ACT)
        tl.store(c_ptrs, s.to(out_dtype), mask=mask)
        if HAS_D1:
            tl.store(d1_ptr + rm[:, None] * N + rn[None, :], ds.to(out_dtype), mask=mask)
        if HAS_D2:
            tl.store(d2_ptr + (rm[:, None] - d2_row0) * N + rn[None, :], d2s.to(out_dtype),
                     mask=mask & (rm[:, None] >= d2_row0))
    elif EPILOGUE == 2:
        # Everything is read before anything is written: c may alias saved.
        saved = tl.load(saved_ptr + rm[:, None] * N + rn[None, :], mask=mask, other=0.0).to(acc_dtype)
        value = _derivative_from_saved(saved, ALPHA, ACT) * acc
        if HAS_ADD:
            value += tl.load(add_ptr + rm[:, None] * N + rn[None, :], mask=mask, other=0.0).to(acc_dtype)
        if HAS_COEF:
            cmask = mask & (rm[:, None] >= coef_row0)
            coef_ptrs = coef_ptr + (rm[:, None] - coef_row0) * N + rn[None, :]
            coef = tl.load(coef_ptrs, mask=cmask, other=0.0).to(acc_dtype)
            tl.store(coef_ptrs, (coef * acc).to(out_dtype), mask=cmask)
        tl.store(c_ptrs, value.to(out_dtype), mask=mask)
    else:
        if ACCUMULATE:
            acc += tl.load(c_ptrs, mask=mask, other=0.0).to(acc_dtype)
        tl.store(c_ptrs, acc.to(out_dtype), mask=mask)
    if HAS_ROWSUM:
        if pid_n == 0:
            tl.store(rowsum_ptr + rm, rowsum.to(out_dtype), mask=rm < M)


@triton.jit
def _penalty_kernel(g_ptr, u_ptr, phi_ptr, B, D, LAM: tl.constexpr, CENTER: tl.constexpr,
                    ONE_SIDED: tl.constexpr, FP64: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    rm = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    acc_dtype = tl.float64 if FP64 else tl.float32
    sq = tl.zeros((BLOCK_M,), dtype=acc_dtype)
    for d0 in range(0, D, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        g = tl.load(g_ptr + rm[:, None] * D + rd[None, :],
                    mask=(rm[:, None] < B) & (rd[None, :] < D), other=0.0).to(acc_dtype)
        sq += tl.sum(g * g, axis=1)
    n = tl.sqrt(sq)
    d = n - CENTER
    if ONE_SIDED:
        d = tl.maximum(d, 0.0)
    tl.store(phi_ptr + rm, (d * d).to(phi_ptr.dtype.element_ty), mask=rm < B)
    scale = LAM / (tl.zeros_like(n) + B)  # lam / B at the accumulation precision
    k = tl.where(n > 0, scale * 2.0 * d / tl.where(n > 0, n, 1.0), 0.0)
    for d0 in range(0, D, BLOCK_D):
        rd = d0 + tl.arange(0, BLOCK_D)
        m = (rm[:, None] < B) & (rd[None, :] < D)
        g = tl.load(g_ptr + rm[:, None] * D + rd[None, :], mask=m, other=0.0).to(acc_dtype)
        tl.store(u_ptr + rm[:, None] * D + rd[None, :], (k[:, None] * g).to(u_ptr.dtype.element_ty), mask=m)


@triton.jit
def _stack_kernel(real_ptr, fake_ptr, eps_ptr, x_ptr, B, D, HAS_EPS: tl.constexpr,
                  FP64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    rm = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rd = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    m = (rm[:, None] < B) & (rd[None, :] < D)
    offs = rm[:, None] * D + rd[None, :]
    real = tl.load(real_ptr + offs, mask=m, other=0.0)
    fake = tl.load(fake_ptr + offs, mask=m, other=0.0)
    tl.store(x_ptr + offs, real, mask=m)
    tl.store(x_ptr + B * D + offs, fake, mask=m)
    if HAS_EPS:
        acc_dtype = tl.float64 if FP64 else tl.float32
        e = tl.load(eps_ptr + rm, mask=rm < B, other=0.0).to(acc_dtype)[:, None]
        x_hat = e * real.to(acc_dtype) + (1.0 - e) * fake.to(acc_dtype)
        tl.store(x_ptr + 2 * B * D + offs, x_hat.to(x_ptr.dtype.element_ty), mask=m)


# ----------------------------------------------------------------------------- launchers

def _block(n: int, cap: int) -> int:
    return max(16, min(cap, triton.next_power_of_2(max(int(n), 1))))


def gemm(a, b, out=None, *, epilogue=EPI_STORE, act=LINEAR, alpha=0.0, accumulate=False,
         bias=None, d1=None, d2=None, d2_row0=0, saved=None, add=None, coef=None, coef_row0=0,
         rowsum=None, rowsum_k=0):
    """``out = A @ B`` followed by one of the fused epilogues (see the kernel's arguments).

    ``a`` and ``b`` may be any strided views; ``out``, ``d1``, ``d2``, ``saved``, ``add``
    and ``coef`` are contiguous with ``out``'s number of columns. Returns ``out``.
    """
    M, K = a.shape
    N = b.shape[1]
    if out is None:
        out = torch.empty((M, N), dtype=a.dtype, device=a.device)
    dummy = out
    bm, bn, bk = _block(M, 64), _block(N, 64), _block(K, 32)
    grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
    _gemm_kernel[grid](
        a, b, out, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
        out.stride(0), out.stride(1),
        bias if bias is not None else dummy, d1 if d1 is not None else dummy,
        d2 if d2 is not None else dummy, d2_row0,
        saved if saved is not None else dummy, add if add is not None else dummy,
        coef if coef is not None else dummy, coef_row0,
        rowsum if rowsum is not None else dummy, rowsum_k, ALPHA=float(alpha),
        EPILOGUE=epilogue, ACT=act, ACCUMULATE=accumulate, HAS_D1=d1 is not None,
        HAS_D2=d2 is not None, HAS_ADD=add is not None, HAS_COEF=coef is not None,
        HAS_ROWSUM=rowsum is not None, FP64=a.dtype == torch.float64,
        IEEE=a.dtype in (torch.float32, torch.float64),
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
    )
    LAUNCHES["gemm"] += 1
    return out


def penalty_rows(g, u, lam, center, one_sided):
    """Writes ``u = (lam/B) phi'(|g|) g/|g|`` (may alias ``g``) and returns the
    per-sample ``phi``."""
    B, D = g.shape
    phi = torch.empty(B, dtype=torch.float64 if g.dtype == torch.float64 else torch.float32,
                      device=g.device)
    bm = _block(B, 32)
    _penalty_kernel[(triton.cdiv(B, bm),)](
        g, u, phi, B, D, LAM=float(lam), CENTER=float(center), ONE_SIDED=bool(one_sided),
        FP64=g.dtype == torch.float64, BLOCK_M=bm, BLOCK_D=_block(D, 64))
    LAUNCHES["penalty"] += 1
    return phi


def stack(real, fake, eps, out):
    """``out = [real; fake; eps real + (1 - eps) fake]`` (the last block only with eps)."""
    B, D = real.shape
    bm, bd = _block(B, 32), _block(D, 64)
    _stack_kernel[(triton.cdiv(B, bm), triton.cdiv(D, bd))](
        real, fake, eps if eps is not None else real, out, B, D, HAS_EPS=eps is not None,
        FP64=real.dtype == torch.float64, BLOCK_M=bm, BLOCK_D=bd)
    LAUNCHES["stack"] += 1
    return out


# ----------------------------------------------------------------------------- the ops
# The same contracts, and the same order of GEMMs and epilogues, as csrc/critic.cpp
# (see its comments and shared/docs/fused-gp-math.md); here every GEMM carries its
# epilogue.

def _unpack(params):
    hidden = [(params[i], params[i + 1]) for i in range(0, len(params) - 2, 2)]
    return hidden, params[-2], params[-1]


def _smooth(act):
    return act in (TANH, SOFTPLUS, SILU)


def _forward(x, hidden, act, alpha, d2_row0):
    """Step 1: h_l for every row; s'(a_l), and s''(a_l) from row d2_row0 on, if smooth."""
    rows = x.shape[0]
    h, d1, d2 = [], [], []
    prev = x
    for W, b in hidden:
        width = W.shape[0]
        dd1 = torch.empty((rows, width), dtype=x.dtype, device=x.device) if _smooth(act) else None
        dd2 = (torch.empty((rows - d2_row0, width), dtype=x.dtype, device=x.device)
               if _smooth(act) and d2_row0 < rows else None)
        prev = gemm(prev, W.t(), epilogue=EPI_BIAS_ACT, act=act, alpha=alpha, bias=b,
                    d1=dd1, d2=dd2, d2_row0=d2_row0)
        h.append(prev)
        d1.append(dd1)
        d2.append(dd2)
    return h, d1, d2


def _signal(seed, hidden, w_out, h, d1, d2, d2_row0, act, alpha):
    """Step 2: delta_l = s'(a_l) e_l from the output seed; q_l = s''(a_l) e_l in d2."""
    rows = seed.shape[0]
    delta = [None] * len(hidden)
    e_seed, e_w = seed.view(rows, 1), w_out  # e_{L-1} = seed w_L: a GEMM with K = 1
    for l in range(len(hidden) - 1, -1, -1):
        saved = d1[l] if _smooth(act) else h[l]
        a, b = (e_seed, e_w) if l == len(hidden) - 1 else (delta[l + 1], hidden[l + 1][0])
        delta[l] = gemm(a, b, epilogue=EPI_ACT_GRAD, act=act, alpha=alpha, saved=saved,
                        coef=d2[l], coef_row0=d2_row0)
    return delta


def mlp_forward(x, params, act_name, alpha):
    """Triton twin of ``fastgan::mlp_forward``: D(x) and the saved tensors."""
    act = ACT_CODES[act_name]
    hidden, w_out, b_out = _unpack(params)
    x = x.contiguous()
    h, d1, _ = _forward(x, hidden, act, alpha, x.shape[0])
    out = gemm(h[-1], w_out.t(), epilogue=EPI_BIAS_ACT, act=LINEAR, bias=b_out)
    return out, h + (d1 if _smooth(act) else [])


def mlp_backward(grad_out, x, params, saved, act_name, alpha, input_grad, param_grads):
    """Triton twin of ``fastgan::mlp_backward``."""
    act = ACT_CODES[act_name]
    hidden, w_out, _ = _unpack(params)
    H, rows = len(hidden), x.shape[0]
    h, d1 = list(saved[:H]), list(saved[H:]) if _smooth(act) else [None] * H
    seed = grad_out.reshape(rows).contiguous()
    delta = _signal(seed, hidden, w_out, h, d1, [None] * H, rows, act, alpha)
    grads = []
    if input_grad:
        grads.append(gemm(delta[0], hidden[0][0]))
    if param_grads:
        for l in range(H):
            gb = torch.empty(hidden[l][1].shape, dtype=x.dtype, device=x.device)
            grads += [gemm(delta[l].t(), x if l == 0 else h[l - 1], rowsum=gb, rowsum_k=rows), gb]
        gb_out = torch.empty(1, dtype=x.dtype, device=x.device)
        grads += [gemm(seed.view(1, rows), h[-1], rowsum=gb_out, rowsum_k=rows), gb_out]
    return grads


def critic_step(real, fake, eps, params, act_name, alpha, lam, center, one_sided, param_grads):
    """Triton twin of ``fastgan::critic_step``: (loss, wasserstein, penalty, grads)."""
    act = ACT_CODES[act_name]
    hidden, w_out, _ = _unpack(params)
    H = len(hidden)
    B, d0 = real.shape
    gp = eps is not None
    rows = 3 * B if gp else 2 * B
    smooth_gp = gp and _smooth(act)
    opts = dict(dtype=real.dtype, device=real.device)
    X = stack(real.contiguous(), fake.contiguous(), eps, torch.empty((rows, d0), **opts))
    h, d1, d2 = _forward(X, hidden, act, alpha, 2 * B if smooth_gp else rows)
    int_rows = slice(2 * B, 3 * B)

    seed = torch.full((rows,), 1.0 / B, **opts)
    seed[:B] = -1.0 / B
    if gp:
        seed[int_rows] = 1.0
    # D's output layer is linear: mean h(fake) - mean h(real) is grad w_L of the loss,
    # and gives the W estimate.
    grad_w_out = gemm(seed[:2 * B].view(1, 2 * B), h[-1][:2 * B])
    wasserstein = -(grad_w_out.view(-1) @ w_out.view(-1))
    penalty = torch.zeros((), **opts)
    if not gp and not param_grads:
        return -wasserstein, wasserstein, penalty, []

    delta = _signal(seed, hidden, w_out, h, d1, d2, 2 * B, act, alpha)
    if gp:
        # Step 3. With ReLU-like activations u replaces x^ in X (one weight GEMM per layer).
        g = gemm(delta[0][int_rows], hidden[0][0])
        u = g if smooth_gp else X[int_rows]
        penalty = (penalty_rows(g, u, lam, center, one_sided).sum() / B).to(real.dtype)
    loss = lam * penalty - wasserstein
    if not param_grads:
        return loss, wasserstein, penalty, []

    grad_W = [None] * H
    if gp:
        # Step 4: the adjoint over the interpolate rows; ebar_l overwrites h_l's
        # interpolate rows (ReLU-like) or goes to its own matrix, q_l becomes abar_l.
        if smooth_gp:
            grad_W[0] = gemm(delta[0][int_rows].t(), u)
        v = u
        for l in range(H):
            saved = d1[l][int_rows] if smooth_gp else h[l][int_rows]
            target = torch.empty_like(saved) if smooth_gp else h[l][int_rows]
            ebar = gemm(v, hidden[l][0].t(), target, epilogue=EPI_ACT_GRAD, act=act, alpha=alpha,
                        saved=saved, coef=d2[l] if smooth_gp else None)
            if l + 1 == H:
                gemm(torch.ones((1, B), **opts), ebar, grad_w_out, accumulate=True)
            elif smooth_gp:
                grad_W[l + 1] = gemm(delta[l + 1][int_rows].t(), ebar)
            v = ebar
    # Step 5: the ordinary backward; a smooth critic's interpolate rows carry abar.
    if smooth_gp:
        delta[H - 1][int_rows] = d2[H - 1]
    bias_rows = 3 * B if smooth_gp else 2 * B
    grads = []
    for l in range(H - 1, -1, -1):
        prev = X if l == 0 else h[l - 1]
        gb = torch.empty(hidden[l][1].shape, **opts)
        if grad_W[l] is None:
            grad_W[l] = gemm(delta[l].t(), prev, rowsum=gb, rowsum_k=bias_rows)
        else:
            gemm(delta[l].t(), prev, grad_W[l], accumulate=True, rowsum=gb, rowsum_k=bias_rows)
        grads = [grad_W[l], gb] + grads
        if smooth_gp and l > 0:
            gemm(delta[l][int_rows], hidden[l][0], delta[l - 1][int_rows], epilogue=EPI_ACT_GRAD,
                 act=act, alpha=alpha, saved=d1[l - 1][int_rows], add=d2[l - 1])
    # grad b_L: the real and fake seeds cancel, and the penalty does not depend on b_L.
    grads += [grad_w_out, torch.zeros(1, **opts)]
    return loss, wasserstein, penalty, grads



def row_penalty(g, center, one_sided):
    """Triton twin of ``fastgan::row_penalty``: (mean phi, u shaped like g)."""
    B = g.shape[0]
    rows = g.reshape(B, -1).contiguous()
    u = torch.empty_like(rows)
    mean_phi = (penalty_rows(rows, u, 1.0, center, one_sided).sum() / B).to(g.dtype)
    return mean_phi, u.view(g.shape)
