"""The determinism and precision switch: float32 is full float32 wherever it runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnrepro.runtime import set_numerics

# Every device this machine has: the CUDA case runs where a GPU is (not a skip: on a CPU
# machine there is no such case to run).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def numerics():
    """Leave the process's switches as the test found them."""
    state = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.conv.fp32_precision,
             torch.backends.cuda.matmul.fp32_precision,
             torch.utils.deterministic.fill_uninitialized_memory)
    yield
    torch.use_deterministic_algorithms(state[0])
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
     torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision,
     torch.utils.deterministic.fill_uninitialized_memory) = state[1:]


@pytest.mark.parametrize("device", DEVICES)
def test_ieee_conv_and_matmul_match_a_float64_reference(device, numerics):
    set_numerics(True, "ieee")
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(8, 64, 32, 32, generator=g), torch.randn(64, 64, 5, 5, generator=g)
    a, b = torch.randn(512, 1024, generator=g), torch.randn(1024, 256, generator=g)
    conv = F.conv2d(x.to(device), w.to(device), padding=2).cpu().double()
    conv64 = F.conv2d(x.double(), w.double(), padding=2)
    mm = (a.to(device) @ b.to(device)).cpu().double()
    mm64 = a.double() @ b.double()
    # full float32 over 1,600 (conv) and 1,024 (matmul) products: ~1e-7 of the largest
    # output; TF32 (10-bit mantissa) gives ~1e-3
    for ours, ref in ((conv, conv64), (mm, mm64)):
        assert ((ours - ref).abs().max() / ref.abs().max()).item() < 1e-5


def test_the_switch_sets_precision_and_keeps_autotuning_off_when_deterministic(numerics):
    set_numerics(True, "tf32")
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark
    assert not torch.utils.deterministic.fill_uninitialized_memory
    set_numerics(False, "ieee")
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="precision"):
        set_numerics(True, "bf16")
