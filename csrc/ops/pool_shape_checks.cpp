// Argument checks with torch's exception messages, and the output geometry, of the pooling ops
// (max, average, unpooling and the gather by indices), for every backend (shape_checks.h).
#include "ops/shape_checks.h"

#include <ATen/TensorUtils.h>
#include <c10/util/Exception.h>
#include <c10/util/irange.h>

#include <array>
#include <limits>
#include <vector>

namespace fastconv {

namespace {

// Floor division that rounds towards negative infinity, as torch's pooling shape formula does.
int64_t div_round_down(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t pooling_output_size(int64_t input, int64_t kernel, int64_t pad, int64_t stride,
                            int64_t dilation, bool ceil_mode) {
  TORCH_CHECK(stride != 0, "stride should not be zero");
  TORCH_CHECK(pad >= 0, "pad must be non-negative, but got pad: ", pad);
  TORCH_CHECK(pad <= ((kernel - 1) * dilation + 1) / 2,
              "pad should be at most half of effective kernel size, but got pad=", pad,
              ", kernel_size=", kernel, " and dilation=", dilation);
  int64_t out =
      div_round_down(input + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0),
                     stride) +
      1;
  // In ceil mode the last window must still start inside the (left-padded) input.
  if (ceil_mode && (out - 1) * stride >= input + pad) {
    --out;
  }
  return out;
}

}  // namespace

namespace {

// torch holds the pooling parameters as int (safe_downcast).
void check_int_range(std::initializer_list<at::IntArrayRef> lists) {
  for (const auto values : lists) {
    for (const int64_t v : values) {
      TORCH_CHECK(
          v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
          "value cannot be converted to type int without overflow");
    }
  }
}

// The output geometry, then torch's pool2d_shape_check, in its order (max and average pooling).
Pool2dGeometry pool2d_geometry(const at::Tensor& input, at::IntArrayRef kernel_size,
                               at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, bool ceil_mode) {
  Pool2dGeometry g{};
  g.batch = input.dim() == 4 ? input.size(0) : 1;
  g.channels = input.size(-3);  // torch's IndexError for fewer than 3 dims
  g.in_h = input.size(-2);
  g.in_w = input.size(-1);
  g.kernel_h = kernel_size[0];
  g.kernel_w = kernel_size[1];
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.out_h = pooling_output_size(g.in_h, g.kernel_h, g.pad_h, g.stride_h, g.dilation_h, ceil_mode);
  g.out_w = pooling_output_size(g.in_w, g.kernel_w, g.pad_w, g.stride_w, g.dilation_w, ceil_mode);

  TORCH_CHECK(g.kernel_w > 0 && g.kernel_h > 0,
              "kernel size should be greater than zero, but got kH: ", g.kernel_h,
              " kW: ", g.kernel_w);
  TORCH_CHECK(g.stride_w > 0 && g.stride_h > 0,
              "stride should be greater than zero, but got dH: ", g.stride_h, " dW: ", g.stride_w);
  TORCH_CHECK(g.dilation_h > 0 && g.dilation_w > 0,
              "dilation should be greater than zero, but got dilationH: ", g.dilation_h,
              " dilationW: ", g.dilation_w);
  const bool valid_dims = input.size(1) != 0 && input.size(2) != 0;
  if (is_channels_last(input)) {
    TORCH_CHECK(input.dim() == 4 && valid_dims && input.size(3) != 0,
                "Expected 4D (batch mode) tensor expected for input with channels_last layout"
                " with optional 0 dim batch size for input, but got: ",
                input.sizes());
  } else {
    TORCH_CHECK((input.dim() == 3 && input.size(0) != 0 && valid_dims) ||
                    (input.dim() == 4 && valid_dims && input.size(3) != 0),
                "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
                "but got:",
                input.sizes());
  }
  TORCH_CHECK(g.kernel_w / 2 >= g.pad_w && g.kernel_h / 2 >= g.pad_h,
              "pad should be smaller than or equal to half of kernel size, but got padW = ",
              g.pad_w, ", padH = ", g.pad_h, ", kW = ", g.kernel_w, ", kH = ", g.kernel_h);
  TORCH_CHECK(g.out_w >= 1 && g.out_h >= 1, "Given input size: (", g.channels, "x", g.in_h, "x",
              g.in_w, "). Calculated output size: (", g.channels, "x", g.out_h, "x", g.out_w,
              "). Output size is too small");
  return g;
}

// torch's check_dim_size of grad_output (or indices) against the output's last three sizes.
void check_pool2d_gradient_dims(const at::Tensor& t, const at::Tensor& input,
                                const Pool2dGeometry& g) {
  const int64_t ndim = input.dim();
  const std::array<int64_t, 3> dims{ndim - 3, ndim - 2, ndim - 1};
  const std::array<int64_t, 3> sizes{g.channels, g.out_h, g.out_w};
  for (const size_t i : {0, 1, 2}) {
    TORCH_CHECK(t.dim() == ndim && t.size(dims[i]) == sizes[i], "Expected a tensor of dimension ",
                ndim, " and tensor.size[", dims[i], "] == ", sizes[i], " but got: dimension ",
                t.dim(), " and tensor.size[", dims[i], "] = ", t.size(dims[i]));
  }
}

// The output's sizes for this input: the input's, with the last two replaced.
std::vector<int64_t> pooled_sizes(const at::Tensor& input, const Pool2dGeometry& g) {
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  return sizes;
}

}  // namespace

Pool2dGeometry check_max_pool2d(const at::Tensor& input, at::IntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, bool ceil_mode) {
  TORCH_CHECK(
      kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
      "fastconv max_pool2d expects kernel_size, stride, padding and dilation as pairs");
  check_int_range({kernel_size, stride, padding, dilation});
  if (is_channels_last(input)) {
    TORCH_CHECK(input.dim() == 4,
                "non-empty 4D (batch mode) tensor expected for input with channels_last layout");
  } else {
    TORCH_CHECK(input.dim() == 3 || input.dim() == 4,
                "non-empty 3D or 4D (batch mode) tensor expected for input");
  }
  return pool2d_geometry(input, kernel_size, stride, padding, dilation, ceil_mode);
}

Pool2dGeometry check_max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& indices, at::IntArrayRef kernel_size,
                                         at::IntArrayRef stride, at::IntArrayRef padding,
                                         at::IntArrayRef dilation, bool ceil_mode) {
  const auto g = check_max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
  // torch's max_pool2d_backward_shape_check (check_dim_size), then its data access for the dtype.
  check_pool2d_gradient_dims(grad_output, input, g);
  check_pool2d_gradient_dims(indices, input, g);
  const auto expected = pooled_sizes(input, g);
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected),
              "max_pool2d backward: expected grad_output of size ", at::IntArrayRef(expected),
              ", but got ", grad_output.sizes());
  TORCH_CHECK(indices.sizes() == at::IntArrayRef(expected),
              "max_pool2d backward: expected indices of size ", at::IntArrayRef(expected),
              ", but got ", indices.sizes());
  TORCH_CHECK(indices.scalar_type() == at::kLong, "expected scalar type Long but found ",
              indices.scalar_type());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(), "expected grad_output of type ",
              input.scalar_type(), " but got ", grad_output.scalar_type());
  return g;
}

AvgPool2dGeometry check_avg_pool2d(const at::Tensor& input, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                                   bool count_include_pad,
                                   std::optional<int64_t> divisor_override) {
  TORCH_CHECK(kernel_size.size() == 2 && stride.size() == 2 && padding.size() == 2,
              "fastconv avg_pool2d expects kernel_size, stride and padding as pairs");
  // torch's avg_pool2d meta function, in its order.
  check_int_range({kernel_size, stride, padding});
  TORCH_CHECK(!divisor_override.has_value() || *divisor_override != 0, "divisor must be not zero");
  const std::array<int64_t, 2> no_dilation{1, 1};
  AvgPool2dGeometry g{pool2d_geometry(input, kernel_size, stride, padding, no_dilation, ceil_mode)};
  g.count_include_pad = count_include_pad;
  g.divisor_override = divisor_override.value_or(0);
  return g;
}

AvgPool2dGeometry check_avg_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                            at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                            at::IntArrayRef padding, bool ceil_mode,
                                            bool count_include_pad,
                                            std::optional<int64_t> divisor_override) {
  const auto g = check_avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                  divisor_override);
  // torch's avg_pool2d_backward_shape_check (check_dim_size), then its kernel's dtype check.
  check_pool2d_gradient_dims(grad_output, input, g);
  const auto expected = pooled_sizes(input, g);
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected),
              "avg_pool2d backward: expected grad_output of size ", at::IntArrayRef(expected),
              ", but got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(), "expected dtype ", input.dtype(),
              " for `gradOutput` but got dtype ", grad_output.dtype());
  return g;
}

Unpool2dGeometry check_max_unpool2d(const at::Tensor& input, const at::Tensor& indices,
                                    at::IntArrayRef output_size, const char* kernel_name) {
  // The checks and their order follow torch's max_unpooling2d_forward_out.
  TORCH_CHECK(indices.scalar_type() == at::kLong,
              "elements in indices should be type int64 but got: ", indices.scalar_type());
  TORCH_CHECK(output_size.size() == 2,
              "There should be exactly two elements (height, width) in output_size, but got ",
              output_size.size(), " elements.");
  TORCH_CHECK(input.dim() == 3 || input.dim() == 4,
              "Input to max_unpooling2d should be a 3d or 4d Tensor, but got a tensor with ",
              input.dim(), " dimensions.");
  TORCH_CHECK(input.sizes() == indices.sizes(),
              "Expected shape of indices to be same as that of the input tensor (", input.sizes(),
              ") but got indices tensor with shape: ", indices.sizes());
  for (const auto i : c10::irange(1, input.dim())) {
    TORCH_CHECK(input.size(i) > 0, kernel_name,
                "(): Expected input to have non-zero size for non-batch dimensions, but got ",
                input.sizes(), " with dimension ", i, " being empty.");
  }
  TORCH_CHECK(
      output_size[0] >= 0 && output_size[1] >= 0,
      "max_unpooling2d(): output_size must contain non-negative spatial dimensions, but got "
      "output_size=(",
      output_size[0], ", ", output_size[1], ")");
  Unpool2dGeometry g{};
  g.batch = input.dim() == 4 ? input.size(0) : 1;
  g.channels = input.size(-3);
  g.in_h = input.size(-2);
  g.in_w = input.size(-1);
  g.out_h = output_size[0];
  g.out_w = output_size[1];
  return g;
}

void check_max_unpool2d_cuda_order(const at::Tensor& input, const at::Tensor& indices,
                                   at::IntArrayRef output_size) {
  TORCH_CHECK(indices.scalar_type() == at::kLong,
              "elements in indices should be type int64 but got: ", indices.scalar_type());
  at::checkAllSameGPU("max_unpooling2d_forward_out_cuda",
                      {{input, "self_", 2}, {indices, "indices_", 3}});
  for (const auto i : c10::irange(1, input.dim())) {
    TORCH_CHECK(input.size(i) > 0, "max_unpooling2d_forward_out_cuda(): ",
                "Expected input to have non-zero size for non-batch dimensions, but got ",
                input.sizes(), " with dimension ", i, " being empty.");
  }
  TORCH_CHECK(input.dim() == 3 || input.dim() == 4,
              "Input to max_unpooling2d should be a 3d or 4d Tensor, but got tensor with "
              "dimension: ",
              input.dim());
  TORCH_CHECK(input.sizes() == indices.sizes(), "Expected shape of indices to be: ", input.sizes(),
              " but got: ", indices.sizes());
  TORCH_CHECK(output_size.size() == 2,
              "There should be exactly two elements (height, width) in output_size, but got ",
              output_size.size(), " elements.");
}

void check_gather_by_indices(const at::Tensor& source, const at::Tensor& indices) {
  TORCH_CHECK(indices.scalar_type() == at::kLong,
              "elements in indices should be type int64 but got: ", indices.scalar_type());
  TORCH_CHECK(source.dim() == indices.dim() && source.dim() >= 3,
              "gather by indices: expected source and indices of the same rank (3 or 4), got ",
              source.sizes(), " and ", indices.sizes());
  for (int64_t d = 0; d < source.dim() - 2; ++d) {
    TORCH_CHECK(source.size(d) == indices.size(d), "gather by indices: leading dims of source ",
                source.sizes(), " and indices ", indices.sizes(), " differ");
  }
}

void throw_invalid_index(int64_t index, int64_t height, int64_t width) {
  TORCH_CHECK(false, "Found an invalid max index: ", index, " (output volumes are of size ", height,
              "x", width, ")");
}

}  // namespace fastconv
