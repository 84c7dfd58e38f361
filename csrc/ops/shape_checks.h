// Argument validation and output geometry, shared by every op's frontend (ops/<op>.cpp).
//
// Every check raises the exception PyTorch raises for the same bad call, with the same message, so
// that fastconv is a drop-in replacement down to its errors. The frontends call these first; the
// kernels then work only with the validated geometry.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>

namespace fastconv {

struct Conv2dGeometry {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, kernel_h, kernel_w, out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;

  int64_t in_channels_per_group() const { return in_channels / groups; }
  int64_t out_channels_per_group() const { return out_channels / groups; }
  int64_t in_plane() const { return in_h * in_w; }
  int64_t out_plane() const { return out_h * out_w; }
  // Rows of one group's im2col matrix: one per (input channel, kernel row, kernel column).
  int64_t column_rows() const { return in_channels_per_group() * kernel_h * kernel_w; }
  // A 1x1, stride-1, unpadded convolution can use the image itself as its column matrix.
  bool is_pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 &&
        pad_w == 0;
  }
  // Output rows per im2col band so that one band's columns fit in `workspace_bytes`.
  int64_t rows_per_band(int64_t element_size, int64_t workspace_bytes) const;
};

// Checks conv2d(input, weight, bias) as torch's convolution does; input must be 4-D (the Python
// wrapper batches unbatched input first, as torch does).
Conv2dGeometry check_conv2d(
    const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// conv_transpose2d(input, weight) is the input gradient of the conv2d whose output has input's
// shape: `conv` is that conv2d (its input has the transposed convolution's output shape, its
// weight is `weight` as it is). Where output_padding reaches stride (allowed below dilation), that
// conv2d's output is taller or wider than `input` by extra_h / extra_w zero rows / columns.
// `conv` is filled in only where the result is non-empty.
struct ConvTranspose2dGeometry {
  std::array<int64_t, 4> output_size;
  Conv2dGeometry conv;
  int64_t extra_h, extra_w;
  bool cast_bias;  // torch's slow CPU kernel takes a bias of another dtype and casts it
};

// Checks conv_transpose2d as torch's convolution does (its generic checks, then those of the
// backend torch would pick); input must be 4-D (the Python wrapper batches unbatched input).
ConvTranspose2dGeometry check_conv_transpose2d(
    const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef output_padding,
    int64_t groups, at::IntArrayRef dilation);

// Geometry for the backward ops, from the sizes the forward saw; checks grad_output against it.
Conv2dGeometry conv2d_backward_geometry(
    const at::Tensor& grad_output, at::IntArrayRef input_size, at::IntArrayRef weight_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// Torch returns a channels_last convolution output when input or weight is channels_last.
at::MemoryFormat conv2d_output_memory_format(const at::Tensor& input, const at::Tensor& weight);

// True for a 4-D tensor laid out channels_last and not also plain contiguous.
bool is_channels_last(const at::Tensor& t);

// ChannelsLast where is_channels_last(t), else Contiguous: the layout torch gives results.
at::MemoryFormat layout_of(const at::Tensor& t);

struct Pool2dGeometry {
  int64_t batch, channels, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;

  int64_t in_plane() const { return in_h * in_w; }
  int64_t out_plane() const { return out_h * out_w; }
};

// Checks max_pool2d_with_indices(input, ...) as torch does. Input is 3-D (C, H, W) or 4-D; the
// geometry then has batch 1 for 3-D input. kernel_size, stride, padding, dilation are pairs.
Pool2dGeometry check_max_pool2d(
    const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode);

// The same, plus grad_output and indices against the forward's output shape.
Pool2dGeometry check_max_pool2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
    at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
    at::IntArrayRef dilation, bool ceil_mode);

// Average pooling: Pool2dGeometry without dilation (1), and how windows are divided.
struct AvgPool2dGeometry : Pool2dGeometry {
  bool count_include_pad;
  int64_t divisor_override;  // 0: none (torch refuses 0 as a divisor)
};

// Checks avg_pool2d(input, ...) as torch does. Input is 3-D (C, H, W) or 4-D.
AvgPool2dGeometry check_avg_pool2d(
    const at::Tensor& input, at::IntArrayRef kernel_size, at::IntArrayRef stride,
    at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
    std::optional<int64_t> divisor_override);

// The same, plus grad_output against the forward's output shape and dtype.
AvgPool2dGeometry check_avg_pool2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef kernel_size,
    at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode, bool count_include_pad,
    std::optional<int64_t> divisor_override);

struct Unpool2dGeometry {
  int64_t batch, channels, in_h, in_w, out_h, out_w;
};

// Checks max_unpool2d(input, indices, output_size) as torch does. `kernel_name` names the kernel in
// torch's empty-input message ("max_unpooling2d_forward_out_cpu" on the CPU).
Unpool2dGeometry check_max_unpool2d(
    const at::Tensor& input, const at::Tensor& indices, at::IntArrayRef output_size,
    const char* kernel_name);

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

} // namespace fastconv
