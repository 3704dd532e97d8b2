"""The size arithmetic of convolutions, once for every study (Dumoulin & Visin, "A guide
to convolution arithmetic", 2016; PyTorch's ``Conv2d``/``ConvTranspose2d`` documentation).

One argument order, PyTorch's (size, kernel, then stride, padding, dilation by keyword
only: two studies once passed them in different orders). The studies check these formulas
against real layers; nothing here builds one.
"""

from __future__ import annotations


def dilated_kernel_size(kernel: int, dilation: int = 1) -> int:
    """Extent of a ``kernel``-tap kernel with ``dilation - 1`` gaps between taps:
    K + (K − 1)(d − 1) = d(K − 1) + 1."""
    return kernel + (kernel - 1) * (dilation - 1)


def output_size(size: int, kernel: int, *, stride: int = 1, padding: int = 0,
                dilation: int = 1) -> int:
    """A convolution's (or pooling's) output width: ⌊(W + 2P − d(K − 1) − 1)/S⌋ + 1."""
    return (size + 2 * padding - dilated_kernel_size(kernel, dilation)) // stride + 1


def transposed_output_size(size: int, kernel: int, *, stride: int = 1, padding: int = 0,
                           dilation: int = 1, output_padding: int = 0) -> int:
    """A transposed convolution's output width (PyTorch):
    (W_i − 1)·S − 2P + d(K − 1) + output_padding + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
