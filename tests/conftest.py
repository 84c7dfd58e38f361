"""Fixtures of every test; the helpers tests import are in helpers.py (CUDA's: cuda_helpers.py)."""

import sys
from pathlib import Path

import pytest
import torch

# The example networks (examples/architectures.py) are the ones the tests check.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _exact_fp32_references(request):
    """cuDNN would use TF32 for float32 convolutions on Ampere and later: the CUDA tests (marked
    `cuda`) compare with full float32."""
    if request.node.get_closest_marker("cuda") is None:
        yield
        return
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
