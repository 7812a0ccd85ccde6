"""Triton kernels of fastgan, installed as ``fastgan.kernels``: bias_act
(:mod:`.bias_act`), the penalty (:mod:`.penalty`), the optimiser updates
(:mod:`.optim`), and the elementwise twins the graph step calls on the ``triton``
backend (:mod:`.graph_elementwise`). Run on CPU tensors with ``TRITON_INTERPRET=1``."""
import collections

#: Kernel launches made through the launch helpers of this package, by kernel name.
LAUNCHES: collections.Counter = collections.Counter()
