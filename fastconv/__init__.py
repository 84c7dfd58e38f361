"""fastconv: im2col-GEMM 2-D convolution, dilated and transposed convolution, index-recording
max-pooling, average and power-average pooling (and the 1-d forms of all, on the 2-d kernels) for
PyTorch, with CPU and CUDA kernels of its own, checked against torch.nn.functional.

    import fastconv
    y = fastconv.conv2d(x, w, b, stride=1, padding="same")
    y, indices = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    model = torch.nn.Sequential(fastconv.nn.Conv2d(3, 64, 3), fastconv.nn.MaxPool2d(2))
    model = fastconv.convert(torchvision.models.resnet18())  # torch.nn layers -> fastconv's
    print(fastconv.summary(model, (1, 3, 224, 224)))  # shapes, FLOPs, memory, receptive fields
    scores = fastconv.fully_convolutional(classifier, (1, 3, 224, 224))(larger_images)  # class maps
"""

# Each module loads fastconv._C through _extension, which checks it first. _ops registers the
# ops' fake kernels and autocast rule (their autograd is registered in C++).
from . import _ops, backends, nn  # noqa: F401
from ._extension import build_info, check_torch_version
from .convert import ConversionReport, conversion_report, convert, revert
from .fully_convolutional import fully_convolutional
from .functional import (
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    lp_pool1d,
    lp_pool2d,
    max_pool1d,
    max_pool2d,
    max_unpool1d,
    max_unpool2d,
)
from .summary import ModelSummary, summary

__all__ = [
    "conv2d",
    "conv_transpose2d",
    "conv1d",
    "conv_transpose1d",
    "max_pool2d",
    "max_unpool2d",
    "avg_pool2d",
    "lp_pool2d",
    "max_pool1d",
    "avg_pool1d",
    "max_unpool1d",
    "lp_pool1d",
    "nn",
    "backends",
    "convert",
    "revert",
    "conversion_report",
    "ConversionReport",
    "summary",
    "ModelSummary",
    "fully_convolutional",
    "build_info",
    "check_torch_version",
]
__version__ = "0.1.0"
