// Argument validation and output geometry, shared by every op's frontend (ops/<op>.cpp).
//
// Every check raises the exception PyTorch raises for the same bad call, with the same message, so
// that fastconv is a drop-in replacement down to its errors. The frontends call these first; the
// kernels then work only with the validated geometry.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "ops/geometry.h"

namespace fastconv {

// Checks conv2d(input, weight, bias) as torch's convolution does; input must be 4-D (the Python
// wrapper batches unbatched input first, as torch does).
Conv2dGeometry check_conv2d(const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// Checks conv_transpose2d as torch's convolution does (its generic checks, then those of the
// backend torch would pick); input must be 4-D (the Python wrapper batches unbatched input).
ConvTranspose2dGeometry check_conv_transpose2d(const at::Tensor& input, const at::Tensor& weight,
                                               const std::optional<at::Tensor>& bias,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef output_padding, int64_t groups,
                                               at::IntArrayRef dilation);

// Geometry for the backward ops, from the sizes the forward saw; checks grad_output against it.
Conv2dGeometry conv2d_backward_geometry(const at::Tensor& grad_output, at::IntArrayRef input_size,
                                        at::IntArrayRef weight_size, at::IntArrayRef stride,
                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                        int64_t groups);

// Torch returns a channels_last convolution output when input or weight is channels_last
// (is_channels_last), as its CPU backends (thnn_conv_use_channels_last, and
// mkldnn_conv_use_channels_last) decide.
at::MemoryFormat conv2d_output_memory_format(const at::Tensor& input, const at::Tensor& weight);

// torch's test for channels_last, suggest_memory_format() == ChannelsLast, on a 4-D tensor: true
// for strides in channels_last order, also for a view that is not dense (a slice of a
// channels_last tensor) and for a tensor that is both contiguous and channels_last (C or H and W
// of size 1) once converted with .to(memory_format=torch.channels_last).
bool is_channels_last(const at::Tensor& t);

// ChannelsLast where is_channels_last(t), else Contiguous: the layout torch gives results.
at::MemoryFormat layout_of(const at::Tensor& t);

// Checks max_pool2d_with_indices(input, ...) as torch does. Input is 3-D (C, H, W) or 4-D; the
// geometry then has batch 1 for 3-D input. kernel_size, stride, padding, dilation are pairs.
Pool2dGeometry check_max_pool2d(const at::Tensor& input, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, bool ceil_mode);

// The same, plus grad_output and indices against the forward's output shape.
Pool2dGeometry check_max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& indices, at::IntArrayRef kernel_size,
                                         at::IntArrayRef stride, at::IntArrayRef padding,
                                         at::IntArrayRef dilation, bool ceil_mode);

// Checks avg_pool2d(input, ...) as torch does. Input is 3-D (C, H, W) or 4-D.
AvgPool2dGeometry check_avg_pool2d(const at::Tensor& input, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                                   bool count_include_pad, std::optional<int64_t> divisor_override);

// The same, plus grad_output against the forward's output shape and dtype.
AvgPool2dGeometry check_avg_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                            at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                            at::IntArrayRef padding, bool ceil_mode,
                                            bool count_include_pad,
                                            std::optional<int64_t> divisor_override);

// Checks max_unpool2d(input, indices, output_size) as torch does. `kernel_name` names the kernel in
// torch's empty-input message ("max_unpooling2d_forward_out_cpu" on the CPU).
Unpool2dGeometry check_max_unpool2d(const at::Tensor& input, const at::Tensor& indices,
                                    at::IntArrayRef output_size, const char* kernel_name);

// torch's CUDA max_unpool2d checks in another order and partly other words than its CPU kernel
// (aten/src/ATen/native/cuda/MaxUnpooling.cu): these are its checks up to the output size, after
// which check_max_unpool2d finds nothing more to complain about but the sign of output_size.
void check_max_unpool2d_cuda_order(const at::Tensor& input, const at::Tensor& indices,
                                   at::IntArrayRef output_size);

// Checks the gather that routes gradients back through max-pool indices: indices index the last
// two dims of `source` plane by plane, and the leading dims agree.
void check_gather_by_indices(const at::Tensor& source, const at::Tensor& indices);

// Torch's message for an index that points outside its plane.
[[noreturn]] void throw_invalid_index(int64_t index, int64_t height, int64_t width);

}  // namespace fastconv
