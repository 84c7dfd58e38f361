"""Drop-in modules: subclasses of torch.nn's Conv2d, ConvTranspose2d, Conv1d, ConvTranspose1d,
MaxPool2d, MaxUnpool2d, AvgPool2d, LPPool2d and their 1-d pooling counterparts, that run
fastconv's kernels. Constructor arguments, parameters, initialisation, state_dict keys and repr
are torch's, so isinstance checks and pretrained weights carry over.

Their forwards call the TorchScript-compatible cores of fastconv.functional with the arguments
torch's modules hold (tuples, or a padding string), so converted models script with
torch.jit.script, as torch's own layers do; eager calls skip the functional API's argument
parsing, which the modules' arguments do not need."""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as torch_F
from torch.jit.annotations import BroadcastingList1
from torch.nn.modules.utils import _single

from .. import _conv_functional as conv_F, _pool_functional as pool_F

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "Conv1d",
    "ConvTranspose1d",
    "MaxPool2d",
    "MaxUnpool2d",
    "AvgPool2d",
    "LPPool2d",
    "MaxPool1d",
    "MaxUnpool1d",
    "AvgPool1d",
    "LPPool1d",
]


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d computed by fastconv.conv2d. padding_mode 'reflect', 'replicate' and
    'circular' pad the input first, as torch does."""

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]
    ):
        if self.padding_mode != "zeros":
            input = torch_F.pad(
                input, self._reversed_padding_repeated_twice, mode=self.padding_mode
            )
            return conv_F._conv2d_pairs(
                input, weight, bias, self.stride, [0, 0], self.dilation, self.groups
            )
        padding = self.padding
        if isinstance(padding, str):
            return conv_F._conv2d_padding_string(
                input, weight, bias, self.stride, padding, self.dilation, self.groups
            )
        return conv_F._conv2d_pairs(
            input, weight, bias, self.stride, padding, self.dilation, self.groups
        )


class ConvTranspose2d(torch.nn.ConvTranspose2d):
    """torch.nn.ConvTranspose2d computed by fastconv.conv_transpose2d. forward(input, output_size)
    picks output_padding from output_size with torch's own rule (its _output_padding)."""

    def forward(self, input: torch.Tensor, output_size: Optional[List[int]] = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for ConvTranspose2d")
        output_padding = self._output_padding(
            input,
            output_size,
            self.stride,  # type: ignore[arg-type]
            self.padding,  # type: ignore[arg-type]
            self.kernel_size,  # type: ignore[arg-type]
            2,
            self.dilation,  # type: ignore[arg-type]
        )
        return conv_F._conv_transpose2d_pairs(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


class Conv1d(torch.nn.Conv1d):
    """torch.nn.Conv1d computed by fastconv.conv1d (fastconv's conv2d on (N, C, 1, L)).
    padding_mode 'reflect', 'replicate' and 'circular' pad the input first, as torch does."""

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]
    ):
        if self.padding_mode != "zeros":
            input = torch_F.pad(
                input, self._reversed_padding_repeated_twice, mode=self.padding_mode
            )
            return conv_F._conv1d_core(
                input, weight, bias, self.stride, [0], self.dilation, self.groups
            )
        padding = self.padding
        if isinstance(padding, str):
            return conv_F._conv1d_padding_string(
                input, weight, bias, self.stride, padding, self.dilation, self.groups
            )
        return conv_F._conv1d_core(
            input, weight, bias, self.stride, padding, self.dilation, self.groups
        )


class ConvTranspose1d(torch.nn.ConvTranspose1d):
    """torch.nn.ConvTranspose1d computed by fastconv.conv_transpose1d, output_size as torch's."""

    def forward(self, input: torch.Tensor, output_size: Optional[List[int]] = None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for ConvTranspose1d")
        output_padding = self._output_padding(
            input,
            output_size,
            self.stride,  # type: ignore[arg-type]
            self.padding,  # type: ignore[arg-type]
            self.kernel_size,  # type: ignore[arg-type]
            1,
            self.dilation,  # type: ignore[arg-type]
        )
        return conv_F._conv_transpose1d_core(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


class MaxPool2d(torch.nn.MaxPool2d):
    """torch.nn.MaxPool2d computed by fastconv.max_pool2d (return_indices gives the indices of the
    maxima)."""

    def forward(self, input: torch.Tensor):
        output, indices = pool_F._max_pool2d_pairs(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )
        if self.return_indices:
            return output, indices
        return output


class MaxUnpool2d(torch.nn.MaxUnpool2d):
    """torch.nn.MaxUnpool2d computed by fastconv.max_unpool2d."""

    # torch's __init__ stores pairs; torch annotates int-or-pair, which TorchScript cannot pass on
    # (torch's own MaxUnpool2d does not script for that reason).
    kernel_size: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]

    def forward(
        self, input: torch.Tensor, indices: torch.Tensor, output_size: Optional[List[int]] = None
    ):
        return pool_F._max_unpool2d_core(
            input, indices, self.kernel_size, self.stride, self.padding, output_size
        )


class AvgPool2d(torch.nn.AvgPool2d):
    """torch.nn.AvgPool2d computed by fastconv.avg_pool2d."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return pool_F._avg_pool2d_pairs(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class LPPool2d(torch.nn.LPPool2d):
    """torch.nn.LPPool2d computed by fastconv.lp_pool2d (average pooling of x ** p)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return pool_F._lp_pool2d_core(
            input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode
        )


class MaxPool1d(torch.nn.MaxPool1d):
    """torch.nn.MaxPool1d computed by fastconv.max_pool1d (return_indices gives the indices of the
    maxima along the length)."""

    def forward(self, input: torch.Tensor):
        output, indices = pool_F._max_pool1d_core(
            input,
            self.kernel_size,
            _strides(self.stride),
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )
        if self.return_indices:
            return output, indices
        return output


class AvgPool1d(torch.nn.AvgPool1d):
    """torch.nn.AvgPool1d computed by fastconv.avg_pool1d."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return pool_F._avg_pool1d_core(
            input,
            self.kernel_size,
            _strides(self.stride),
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )


class MaxUnpool1d(torch.nn.MaxUnpool1d):
    """torch.nn.MaxUnpool1d computed by fastconv.max_unpool1d."""

    kernel_size: Tuple[int]
    stride: Tuple[int]
    padding: Tuple[int]

    def forward(
        self, input: torch.Tensor, indices: torch.Tensor, output_size: Optional[List[int]] = None
    ):
        return pool_F._max_unpool1d_core(
            input, indices, self.kernel_size, self.stride, self.padding, output_size
        )


class LPPool1d(torch.nn.LPPool1d):
    """torch.nn.LPPool1d computed by fastconv.lp_pool1d."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return pool_F._lp_pool1d_core(
            input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode
        )


def _strides(stride: BroadcastingList1[int]) -> List[int]:
    """A 1-d module's stride (an int or a one-element tuple) as the 1-d cores take it."""
    return _single(stride)
