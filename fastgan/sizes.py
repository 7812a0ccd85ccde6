"""The image sizes the built-in networks take: square images of ``s = start * 2**n``
pixels, ``start`` in 4..7, up to 256 pixels. The generators start from ``start`` x
``start`` features and double them ``n`` times; the critics halve them back. DCGAN nets
need ``n >= 1`` (8, 10, 12, 14, 16, 20, 24, 28 from 7x7, 32, ...), the ResNets
``n >= 2`` (16, 20, 24, 28, 32, 40, ...)."""
from __future__ import annotations

ARCHS = ("dcgan", "resnet")
MAX_IMAGE_SIZE = 256
_MIN_LEVELS = {"dcgan": 1, "resnet": 2}


def levels(size: int, arch: str = "dcgan") -> tuple[int, int] | None:
    """``(start, n)`` with ``size = start * 2**n``, ``start`` in 4..7, of an image size
    that ``arch``'s networks take, or None for a size they cannot."""
    if not 8 <= size <= MAX_IMAGE_SIZE:
        return None
    start, n = size, 0
    while start > 7 and start % 2 == 0:
        start, n = start // 2, n + 1
    return (start, n) if 4 <= start <= 7 and n >= _MIN_LEVELS[arch] else None


def supported_sizes(arch: str) -> str:
    """The image sizes of ``arch``, in words."""
    sizes = [s for s in range(8, MAX_IMAGE_SIZE + 1) if levels(s, arch)]
    return f"{', '.join(map(str, sizes[:9]))}, ... {sizes[-1]} pixels (start * 2**n, start in 4..7, " \
           f"n >= {_MIN_LEVELS[arch]})"
