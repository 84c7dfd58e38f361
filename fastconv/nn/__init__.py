"""Drop-in modules: subclasses of torch.nn.Conv2d, MaxPool2d and MaxUnpool2d that run fastconv's
kernels. Constructor arguments, parameters, initialisation, state_dict keys and repr are torch's,
so isinstance checks and pretrained weights carry over."""

import torch
import torch.nn.functional as torch_F
from torch.nn.modules.utils import _pair

from .. import functional as F

__all__ = ["Conv2d", "MaxPool2d", "MaxUnpool2d"]


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d computed by fastconv.conv2d. padding_mode 'reflect', 'replicate' and
    'circular' pad the input first, as torch does."""

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = torch_F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(input, weight, bias, self.stride, _pair(0), self.dilation, self.groups)
        return F.conv2d(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2d(torch.nn.MaxPool2d):
    """torch.nn.MaxPool2d computed by fastconv.max_pool2d (return_indices gives the switches)."""

    def forward(self, input):
        return F.max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            ceil_mode=self.ceil_mode,
            return_indices=self.return_indices,
        )


class MaxUnpool2d(torch.nn.MaxUnpool2d):
    """torch.nn.MaxUnpool2d computed by fastconv.max_unpool2d."""

    def forward(self, input, indices, output_size=None):
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding, output_size)
