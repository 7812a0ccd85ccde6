"""Build of fastgan and its one extension, fastgan._C.

The C++ CPU sources are always built. The CUDA sources are added when torch sees a
CUDA toolkit and a GPU, or when FASTGAN_FORCE_CUDA=1 (with TORCH_CUDA_ARCH_LIST set),
which compiles every .cu file on a machine without a GPU, as CI does.
"""
import glob
import os
import re
import shutil
import subprocess

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def cuda_home_from_nvcc():
    """The toolkit directory the `nvcc` on PATH compiles with.

    torch guesses CUDA_HOME as the parent of nvcc's directory, which is wrong when nvcc
    is a wrapper script (for example /usr/local/bin/nvcc); nvcc's dry run names it.
    """
    if os.environ.get("CUDA_HOME") or not shutil.which("nvcc"):
        return
    dry = subprocess.run(["nvcc", "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                         capture_output=True, text=True)
    top = re.search(r"^#\$ TOP=(.+)$", dry.stdout + dry.stderr, re.MULTILINE)
    if top:
        os.environ["CUDA_HOME"] = os.path.normpath(top.group(1).strip())


cuda_home_from_nvcc()
from torch.utils import cpp_extension  # noqa: E402  (reads CUDA_HOME when imported)


def version():
    """fastgan.__version__, read from the source (the package is not importable while
    it is being built)."""
    with open(os.path.join(ROOT, "fastgan", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.MULTILINE).group(1)


def sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def want_cuda():
    forced = os.environ.get("FASTGAN_FORCE_CUDA", "0") == "1"
    if forced:
        if cpp_extension.CUDA_HOME is None:
            raise RuntimeError("FASTGAN_FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME")
        if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            raise RuntimeError("FASTGAN_FORCE_CUDA=1 needs TORCH_CUDA_ARCH_LIST (e.g. '8.0;9.0')")
        return True
    import torch

    return cpp_extension.CUDA_HOME is not None and torch.cuda.is_available()


def extension():
    cxx_flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
    cpp_sources = sources("csrc/*.cpp") + sources("csrc/graph/*.cpp") + sources("csrc/cpu/*.cpp")
    if not want_cuda():
        return cpp_extension.CppExtension(
            "fastgan._C", cpp_sources, extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    return cpp_extension.CUDAExtension(
        "fastgan._C",
        cpp_sources + sources("csrc/cuda/*.cu"),
        define_macros=[("FASTGAN_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3"]},
        extra_link_args=["-fopenmp"],
    )


setup(
    name="fastgan",
    version=version(),
    description="Fused kernels and a thin trainer for Wasserstein GANs",
    # every subpackage of fastgan/, and the Triton kernels of kernels/ as fastgan.kernels
    packages=find_packages(include=["fastgan", "fastgan.*"]) + ["fastgan.kernels"],
    package_dir={"fastgan.kernels": "kernels"},
    ext_modules=[extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    python_requires=">=3.10",
    install_requires=["torch>=2.4", "numpy>=1.26", "matplotlib>=3.8", "pot>=0.9", "scikit-learn>=1.4",
                      "tqdm>=4.66", "nvtx>=0.2", "torch-fidelity>=0.3"],
    extras_require={"tensorboard": ["tensorboard>=2.15"]},
    entry_points={"console_scripts": ["fastgan=fastgan.cli:main"]},
)
