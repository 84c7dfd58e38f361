"""Under torch.autocast fastconv follows torch's policy for the matching torch ops: conv2d and
conv_transpose2d run in the autocast dtype (their float32 inputs cast down), max-pooling and
unpooling keep their input's dtype. Checked against torch under the same autocast, on the CPU
(bfloat16, float16) and, where a GPU is present, on CUDA (float16, bfloat16)."""

import pytest
import torch
import torch.nn.functional as F

import fastconv
from architectures import LeNet5
from cuda_helpers import CUDA_TESTS
from helpers import assert_close

CASES = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bfloat16"),
    pytest.param("cpu", torch.float16, id="cpu-float16"),
    pytest.param("cuda", torch.float16, id="cuda-float16", marks=CUDA_TESTS),
    pytest.param("cuda", torch.bfloat16, id="cuda-bfloat16", marks=CUDA_TESTS),
]


@pytest.mark.parametrize("device, dtype", CASES)
def test_conv_transpose2d_runs_in_the_autocast_dtype(device, dtype):
    x = torch.randn(2, 4, 6, 6, device=device)
    w = torch.randn(4, 3, 3, 3, device=device)
    b = torch.randn(6, device=device)
    with torch.autocast(device, dtype=dtype):
        actual = fastconv.conv_transpose2d(x, w, b, 2, 1, 1, 2)
        expected = F.conv_transpose2d(x, w, b, 2, 1, 1, 2)
    assert expected.dtype == dtype and actual.dtype == dtype
    assert_close(actual, expected)
    assert torch.equal(
        actual, fastconv.conv_transpose2d(x.to(dtype), w.to(dtype), b.to(dtype), 2, 1, 1, 2)
    )


@pytest.mark.parametrize("device, dtype", CASES)
@pytest.mark.parametrize("padding", [1, "same"])
def test_conv2d_runs_in_the_autocast_dtype(device, dtype, padding):
    x = torch.randn(2, 3, 12, 12, device=device)
    w = torch.randn(8, 3, 3, 3, device=device)
    b = torch.randn(8, device=device)
    with torch.autocast(device, dtype=dtype):
        actual = fastconv.conv2d(x, w, b, padding=padding)
        expected = F.conv2d(x, w, b, padding=padding)
    assert expected.dtype == dtype  # the test's premise: torch casts down
    assert actual.dtype == expected.dtype
    assert_close(actual, expected)
    # The same as casting by hand: the inputs are rounded to the autocast dtype first.
    assert torch.equal(
        actual, fastconv.conv2d(x.to(dtype), w.to(dtype), b.to(dtype), padding=padding)
    )


@pytest.mark.parametrize("device, dtype", CASES)
def test_conv2d_gradients_under_autocast_match_torch(device, dtype):
    x = torch.randn(2, 3, 10, 10, device=device)
    w = torch.randn(4, 3, 3, 3, device=device)
    grads = []
    for conv in (fastconv.conv2d, F.conv2d):
        leaves = [x.clone().requires_grad_(), w.clone().requires_grad_()]
        with torch.autocast(device, dtype=dtype):
            y = conv(*leaves, None, 1, 1)
        y.float().square().sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for actual, expected in zip(*grads):
        assert actual.dtype == expected.dtype == torch.float32  # leaves keep their dtype
        torch.testing.assert_close(
            actual, expected, rtol=5e-2, atol=5e-2 * expected.abs().max().item()
        )


@pytest.mark.parametrize("device, dtype", CASES)
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.float64])
def test_pooling_keeps_its_input_dtype(device, dtype, input_dtype):
    x = torch.randn(2, 3, 9, 9, device=device, dtype=input_dtype)
    with torch.autocast(device, dtype=dtype):
        values, indices = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
        expected, expected_indices = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        unpooled = fastconv.max_unpool2d(values, indices, 3, 2, 1, output_size=x.shape)
        average = fastconv.avg_pool2d(x, 3, 2, 1)
        expected_average = F.avg_pool2d(x, 3, 2, 1)
    assert values.dtype == expected.dtype == input_dtype
    assert torch.equal(values, expected) and torch.equal(indices, expected_indices)
    assert unpooled.dtype == input_dtype
    assert average.dtype == expected_average.dtype == input_dtype
    torch.testing.assert_close(average, expected_average)


@pytest.mark.parametrize("device, dtype", CASES)
def test_float64_is_not_cast(device, dtype):
    """torch's autocast leaves float64 tensors alone, and so does fastconv's."""
    x = torch.randn(1, 2, 6, 6, device=device, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, device=device, dtype=torch.float64)
    with torch.autocast(device, dtype=dtype):
        assert fastconv.conv2d(x, w).dtype == F.conv2d(x, w).dtype == torch.float64


@pytest.mark.parametrize("device, dtype", CASES)
def test_a_converted_model_under_autocast_matches_torch(device, dtype):
    torch.manual_seed(0)
    reference = LeNet5(torch.nn).to(device).eval()
    model = fastconv.convert(reference)
    x = torch.randn(4, 1, 32, 32, device=device)
    with torch.autocast(device, dtype=dtype), torch.no_grad():
        actual, expected = model(x), reference(x)
        features, expected_features = model.features(x), reference.features(x)
    assert features.dtype == expected_features.dtype == dtype  # conv -> tanh -> pool stays low
    assert actual.dtype == expected.dtype
    torch.testing.assert_close(actual, expected, rtol=5e-2, atol=5e-2 * expected.abs().max().item())


def test_autocast_off_leaves_float32_alone():
    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert fastconv.conv2d(x, w).dtype == torch.float32
