"""The Triton kernels compile for real GPUs (sm_80 and sm_90), without one: Triton's
ahead-of-time compiler lowers them to PTX and ptxas assembles a cubin. This catches
what the interpreter lets through: illegal tl.dot shapes, dtype errors, code that only
the interpreter accepts.

The suite runs Triton in interpreter mode, where kernels cannot be compiled, so the
test runs this file as a script in a process of its own with TRITON_INTERPRET=0.
"""
import os
import subprocess
import sys

ACT_NAMES = ["RELU", "LRELU", "TANH", "SOFTPLUS", "SILU", "SIGMOID", "ELU", "GELU", "LINEAR"]


def cases(K, P, O, A):
    """(name, kernel, pointer type, constexprs, arch) for every kernel variant used."""
    for dtype in ("*fp32", "*bf16"):
        yield (f"penalty {dtype}", P._penalty_kernel, dtype,
               dict(LAM=10.0, CENTER=1.0, ONE_SIDED=True, FP64=False, BLOCK_M=32, BLOCK_D=64), 80)
        yield (f"clip {dtype}", O._clip_kernel, dtype, dict(BLOCK=1024), 80)
        yield (f"rmsprop radicand {dtype}", O._radicand_kernel, dtype,
               dict(WEIGHT_DECAY=True, CENTERED=True, BLOCK=1024), 80)
        yield (f"rmsprop update {dtype}", O._update_kernel, dtype,
               dict(WEIGHT_DECAY=True, MOMENTUM=True, CLIP=True, BLOCK=1024), 80)
        for act in ACT_NAMES:
            for mode in (0, 1, 2):
                yield (f"bias_act {act} mode {mode} {dtype}", A._bias_act_kernel, dtype,
                       dict(ALPHA=0.2, GAIN=1.4, CLAMP=256.0, ACT=getattr(K, act), MODE=mode,
                            HAS_B=True, X_IS_Y=False, FP64=False, BLOCK=1024), 80 if dtype == "*fp32" else 90)


def compile_all():
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile as triton_compile

    from fastgan.kernels import activation as K
    from fastgan.kernels import bias_act as A
    from fastgan.kernels import optim as O
    from fastgan.kernels import penalty as P

    failures = 0
    for name, fn, ptr_type, constexprs, arch in cases(K, P, O, A):
        sig = {}
        for arg in fn.arg_names:
            if arg in constexprs:
                sig[arg] = "constexpr"
            elif arg.endswith("_ptr"):
                sig[arg] = "*fp32" if arg in ("phi_ptr", "hp_ptr") else ptr_type
            else:
                sig[arg] = "i64" if arg.startswith("stride") else "i32"
        try:
            src = ASTSource(fn=fn, signature=sig, constexprs=constexprs)
            cubin = triton_compile(src, target=GPUTarget("cuda", arch, 32)).asm["cubin"]
            print(f"ok   {name}: {len(cubin)} bytes of sm_{arch} cubin")
        except Exception as exc:
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
    return failures


def test_triton_kernels_compile_for_sm80_and_sm90():
    env = dict(os.environ, TRITON_INTERPRET="0")
    out = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok   ") == 2 * (4 + 9 * 3), out.stdout


if __name__ == "__main__":
    sys.exit(1 if compile_all() else 0)
