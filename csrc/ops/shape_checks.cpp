// Argument checks with torch's exception messages, and the output geometry, for the convolutions
// (conv2d, conv_transpose2d), for every backend; the shared helpers and layouts (shape_checks.h).
#include "ops/shape_checks.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <limits>

namespace fastconv {

namespace {

// torch's names of a tensor's type in its messages: the legacy names, e.g. "torch.FloatTensor",
// "torch.cuda.HalfTensor", and for dtypes without one its type string, e.g. "CPUBFloat16Type".
std::string legacy_type_name(const at::Tensor& t) {
  const auto dtype = t.scalar_type();
  const bool has_legacy_name = dtype == at::kByte || dtype == at::kChar || dtype == at::kShort ||
      dtype == at::kInt || dtype == at::kLong || dtype == at::kHalf || dtype == at::kFloat ||
      dtype == at::kDouble || dtype == at::kBool;
  if (!has_legacy_name) {
    return std::string(t.is_cuda() ? "CUDA" : "CPU") + c10::toString(dtype) + "Type";
  }
  std::string name = "torch.";
  if (t.is_cuda()) {
    name += "cuda.";
  }
  return name + c10::toString(t.scalar_type()) + "Tensor";
}

// A complex input reaches here only with parameters of other types (the Python entries convolve
// complex tensors as three real convolutions). torch's complex_convolution checks their types
// before the shapes.
void check_complex_parameter_types(const at::Tensor& input, const at::Tensor& weight,
                                   const at::Tensor* bias) {
  if (!input.is_complex()) {
    return;
  }
  TORCH_CHECK(input.options().type_equal(weight.options()), "Input type (", legacy_type_name(input),
              ") and weight type (", legacy_type_name(weight), ") should be the same");
  TORCH_CHECK(bias == nullptr || input.options().type_equal(bias->options()), "Input type (",
              legacy_type_name(input), ") and bias type (", legacy_type_name(*bias),
              ") should be the same");
}

bool any_of(at::IntArrayRef values, bool (*pred)(int64_t)) {
  return std::any_of(values.begin(), values.end(), pred);
}

}  // namespace

bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && t.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

at::MemoryFormat layout_of(const at::Tensor& t) {
  return is_channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

at::MemoryFormat conv2d_output_memory_format(const at::Tensor& input, const at::Tensor& weight) {
  return (is_channels_last(input) || is_channels_last(weight)) ? at::MemoryFormat::ChannelsLast
                                                               : at::MemoryFormat::Contiguous;
}

namespace {

// Whether torch's CPU convolution would run this call on oneDNN: its use_mkldnn heuristic for
// float32 (Convolution.cpp), oneDNN always for the half types. Some of torch's errors come from the
// backend it picks, and read differently.
bool torch_uses_onednn(const Conv2dGeometry& g, const at::Tensor& input) {
  const auto dtype = input.scalar_type();
  if (!input.is_cpu() || (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)) {
    return false;
  }
  if (dtype != at::kFloat) {
    return true;
  }
  const bool strided = g.stride_h != 1 || g.stride_w != 1;
  const bool dilated = g.dilation_h != 1 || g.dilation_w != 1;
  const bool worth_it_1x1 = strided || dilated || g.batch >= 16 || g.kernel_w != 1 ||
      g.kernel_h != 1 || at::get_num_threads() > 1;
  const bool worth_it =
      g.groups > 1 || (g.kernel_w > 3 && g.kernel_h > 3) || g.batch > 1 || input.numel() > 20480;
  return worth_it_1x1 && worth_it;
}

}  // namespace

namespace {

// The shape checks of torch's check_shape_forward, in its order, on sizes alone.
Conv2dGeometry conv2d_geometry(at::IntArrayRef input, at::IntArrayRef w, const at::Tensor* bias,
                               at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(w.size() >= 3, "weight should have at least three dimensions");
  TORCH_CHECK(groups > 0, "non-positive groups is not supported");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "fastconv conv2d expects stride, padding and dilation of two values each");
  TORCH_CHECK(!any_of(padding, [](int64_t p) { return p < 0; }),
              "negative padding is not supported");
  TORCH_CHECK(!any_of(stride, [](int64_t s) { return s <= 0; }),
              "non-positive stride is not supported");
  // Zero dilation passes here, as in torch; its backends refuse it (check_conv2d).
  TORCH_CHECK(!any_of(dilation, [](int64_t d) { return d < 0; }),
              "dilation should be greater than zero");
  TORCH_CHECK(input.size() == w.size(), "Expected ", w.size(), "-dimensional input for ", w.size(),
              "-dimensional weight ", w, ", but got ", input.size(), "-dimensional input of size ",
              input, " instead");
  TORCH_CHECK(w.size() == 4, "fastconv conv2d expects a 4-dimensional weight, got ", w);
  TORCH_CHECK(w[0] >= groups, "Given groups=", groups, ", expected weight to be at least ", groups,
              " at dimension 0, but got weight of size ", w, " instead");
  TORCH_CHECK(w[0] % groups == 0, "Given groups=", groups, ", expected weight to be divisible by ",
              groups, " at dimension 0, but got weight of size [", w, "] instead");
  TORCH_CHECK(input[1] == w[1] * groups, "Given groups=", groups, ", weight of size ", w,
              ", expected input", input, " to have ", w[1] * groups, " channels, but got ",
              input[1], " channels instead");
  TORCH_CHECK(bias == nullptr || (bias->dim() == 1 && bias->size(0) == w[0]),
              "Given weight of size ", w, ", expected bias to be 1-dimensional with ", w[0],
              " elements, but got bias of size ", bias->sizes(), " instead");

  for (const int i : {0, 1}) {
    TORCH_CHECK(padding[i] <= std::numeric_limits<int64_t>::max() - padding[i],
                "Given padding=", padding[i], " at dimension ", i,
                " , expected padding to be at most ", std::numeric_limits<int64_t>::max() / 2);
  }
  // Wrapping as torch's does: an input side past int64 after padding then fails the check below
  // with torch's message.
  const auto padded = [](int64_t size, int64_t pad) {
    return static_cast<int64_t>(static_cast<uint64_t>(size) + 2 * static_cast<uint64_t>(pad));
  };
  const int64_t padded_h = padded(input[2], padding[0]);
  const int64_t padded_w = padded(input[3], padding[1]);
  // The dilated kernel span, wrapping past int64 as torch's arithmetic does, so that the check
  // below gives torch's message; a span that wrapped yet passes it is refused after the check,
  // where torch would go on with a meaningless shape (README, "Supported, and not yet").
  int64_t span_h = 0, span_w = 0;
  bool span_overflows = __builtin_mul_overflow(dilation[0], w[2] - 1, &span_h);
  span_overflows |= __builtin_mul_overflow(dilation[1], w[3] - 1, &span_w);
  span_overflows |= __builtin_add_overflow(span_h, 1, &span_h);
  span_overflows |= __builtin_add_overflow(span_w, 1, &span_w);
  TORCH_CHECK(padded_h >= span_h && padded_w >= span_w,
              "Calculated padded input size per channel: (", padded_h, " x ", padded_w,
              "). Kernel size: (", span_h, " x ", span_w,
              "). Kernel size can't be greater than actual input size");
  TORCH_CHECK(!span_overflows,
              "fastconv conv2d: dilation * (kernel_size - 1) overflows int64 "
              "(dilation ",
              dilation, ", weight ", w, ")");

  Conv2dGeometry g{};
  g.batch = input[0];
  g.in_channels = input[1];
  g.in_h = input[2];
  g.in_w = input[3];
  g.out_channels = w[0];
  g.kernel_h = w[2];
  g.kernel_w = w[3];
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.groups = groups;
  g.out_h = (padded_h - span_h) / g.stride_h + 1;
  g.out_w = (padded_w - span_w) / g.stride_w + 1;
  return g;
}

}  // namespace

Conv2dGeometry check_conv2d(const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  // torch's conv2d checks the bias dtype first, then the shapes, and the backend the rest.
  const at::Tensor* b = bias.has_value() && bias->defined() ? &*bias : nullptr;
  TORCH_CHECK(b == nullptr || b->dtype() == input.dtype(), "Input type (", input.dtype().name(),
              ") and bias type (", b->dtype().name(), ") should be the same");
  check_complex_parameter_types(input, weight, b);
  const auto g =
      conv2d_geometry(input.sizes(), weight.sizes(), b, stride, padding, dilation, groups);
  // torch's backend selection: an empty batch or no channels give an empty result, other empty
  // input is refused.
  const bool empty_batch_or_channels = g.batch == 0 || g.in_channels == 0;
  TORCH_CHECK(
      empty_batch_or_channels || input.numel() != 0,
      "Only zero batch or zero channel inputs are supported, but got input shape: ", input.sizes());

  // An empty kernel with an empty batch: torch fails on an internal select() (IndexError); this
  // says what is wrong. With no channels torch returns an empty result, as below.
  TORCH_CHECK(g.batch != 0 || (g.kernel_h > 0 && g.kernel_w > 0),
              "kernel size should be greater than zero, but got kernel_height: ", g.kernel_h,
              " kernel_width: ", g.kernel_w);
  if (empty_batch_or_channels) {  // torch's Empty backend: no further checks
    return g;
  }
  // The rest are the checks of the backend torch would pick, each with its own words.
  const bool onednn = torch_uses_onednn(g, input);
  const bool dilated = g.dilation_h != 1 || g.dilation_w != 1;
  const bool zero_dilation = g.dilation_h == 0 || g.dilation_w == 0;
  const bool zero_kernel = g.kernel_h <= 0 || g.kernel_w <= 0;
  const bool same_type =
      input.scalar_type() == weight.scalar_type() && input.device() == weight.device();
  if (!onednn && input.is_cpu() && weight.is_cpu()) {
    // slow_conv2d or, dilated, slow_conv_dilated2d: shape checks first, types when reading data.
    if (dilated) {
      TORCH_CHECK(!zero_kernel, "kernel size should be greater than zero, but got ",
                  at::IntArrayRef{g.kernel_h, g.kernel_w});
      TORCH_CHECK(!zero_dilation, "dilation should be greater than zero, but got ", dilation);
    } else {
      TORCH_CHECK(!zero_kernel,
                  "kernel size should be greater than zero, but got kernel_height: ", g.kernel_h,
                  " kernel_width: ", g.kernel_w);
    }
    TORCH_CHECK(same_type, "expected scalar type ", input.scalar_type(), " but found ",
                weight.scalar_type());
  }
  TORCH_CHECK(
      same_type, "Input type (", legacy_type_name(input), ") and weight type (",
      legacy_type_name(weight), ") should be the same",
      input.is_cpu() ? " or input should be a MKLDNN tensor and weight is a dense tensor" : "");
  TORCH_CHECK(b == nullptr || b->device() == input.device(), "Input type (",
              legacy_type_name(input), ") and bias type (", legacy_type_name(*b),
              ") should be the same");
  TORCH_CHECK(!zero_dilation, "non-positive dilation is not supported");
  // oneDNN fails on an empty kernel with an internal message ("could not create a primitive
  // descriptor"); this one says what is wrong.
  TORCH_CHECK(!zero_kernel,
              "kernel size should be greater than zero, but got kernel_height: ", g.kernel_h,
              " kernel_width: ", g.kernel_w);
  return g;
}

Conv2dGeometry conv2d_backward_geometry(const at::Tensor& grad_output, at::IntArrayRef input_size,
                                        at::IntArrayRef weight_size, at::IntArrayRef stride,
                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                        int64_t groups) {
  const auto g =
      conv2d_geometry(input_size, weight_size, nullptr, stride, padding, dilation, groups);
  TORCH_CHECK(g.batch == 0 || g.in_channels == 0 || (g.dilation_h > 0 && g.dilation_w > 0),
              "dilation should be greater than zero, but got ", dilation);
  // No input channels: the forward gave no output channels either (torch's Empty backend).
  const std::array<int64_t, 4> expected{g.batch, g.in_channels == 0 ? 0 : g.out_channels, g.out_h,
                                        g.out_w};
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected),
              "conv2d backward: expected grad_output of size ", at::IntArrayRef(expected),
              ", but got ", grad_output.sizes());
  return g;
}

namespace {

// torch's transposed output size, (in - 1) * stride - 2 * pad + dilation * (kernel - 1) +
// output_padding + 1; nullopt where int64 overflows (padding is at most INT64_MAX / 2 by now).
std::optional<int64_t> transposed_output_size(int64_t in, int64_t kernel, int64_t stride,
                                              int64_t pad, int64_t dilation,
                                              int64_t output_padding) {
  int64_t out = 0, span = 0;
  bool overflows = __builtin_mul_overflow(in - 1, stride, &out);
  overflows |= __builtin_sub_overflow(out, 2 * pad, &out);
  overflows |= __builtin_mul_overflow(dilation, kernel - 1, &span);
  overflows |= __builtin_add_overflow(out, span, &out);
  overflows |= __builtin_add_overflow(out, output_padding + 1, &out);
  return overflows ? std::nullopt : std::optional<int64_t>(out);
}

}  // namespace

namespace {

// torch's _convolution, then its check_shape_forward for transposed=1, in their order: the
// checks that come before any output size. Returns the output channels.
int64_t check_transposed_arguments(const at::Tensor& input, const at::Tensor& weight,
                                   const at::Tensor* b, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef output_padding,
                                   int64_t groups, at::IntArrayRef dilation) {
  const auto in = input.sizes();
  const auto w = weight.sizes();
  TORCH_CHECK(w.size() >= 3, "weight should have at least three dimensions");
  TORCH_CHECK(groups > 0, "non-positive groups is not supported");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && output_padding.size() == 2 &&
                  dilation.size() == 2,
              "fastconv conv_transpose2d expects stride, padding, output_padding and dilation of "
              "two values each");
  TORCH_CHECK(!any_of(padding, [](int64_t p) { return p < 0; }),
              "negative padding is not supported");
  TORCH_CHECK(!any_of(output_padding, [](int64_t p) { return p < 0; }),
              "negative output_padding is not supported");
  TORCH_CHECK(!any_of(stride, [](int64_t s) { return s <= 0; }),
              "non-positive stride is not supported");
  TORCH_CHECK(!any_of(dilation, [](int64_t d) { return d < 0; }),
              "dilation should be greater than zero");
  TORCH_CHECK(in.size() == w.size(), "Expected ", w.size(), "-dimensional input for ", w.size(),
              "-dimensional weight ", w, ", but got ", in.size(), "-dimensional input of size ", in,
              " instead");
  TORCH_CHECK(w.size() == 4, "fastconv conv_transpose2d expects a 4-dimensional weight, got ", w);
  TORCH_CHECK(w[0] >= groups, "Given groups=", groups, ", expected weight to be at least ", groups,
              " at dimension 0, but got weight of size ", w, " instead");
  TORCH_CHECK(w[0] % groups == 0, "Given groups=", groups, ", expected weight to be divisible by ",
              groups, " at dimension 0, but got weight of size [", w, "] instead");
  for (const int i : {0, 1}) {
    TORCH_CHECK(padding[i] <= std::numeric_limits<int64_t>::max() - padding[i],
                "Given padding=", padding[i], " at dimension ", i,
                " , expected padding to be at most ", std::numeric_limits<int64_t>::max() / 2);
  }
  TORCH_CHECK(in[1] == w[0], "Given transposed=1, weight of size ", w, ", expected input", in,
              " to have ", w[0], " channels, but got ", in[1], " channels instead");
  int64_t out_channels = 0;
  TORCH_CHECK(!__builtin_mul_overflow(w[1], groups, &out_channels),
              "fastconv conv_transpose2d: output channels overflow int64 (weight ", w, ", groups ",
              groups, ")");
  TORCH_CHECK(b == nullptr || (b->dim() == 1 && b->numel() == out_channels),
              "Given transposed=1, weight of size ", w, ", expected bias to be 1-dimensional with ",
              out_channels, " elements, but got bias of size ", b->sizes(), " instead");
  return out_channels;
}

// The output size of a transposed convolution, or torch's error where it overflows.
struct TransposedOutput {
  std::optional<int64_t> out_h, out_w;
  void check_no_overflow(at::IntArrayRef in, at::IntArrayRef w, at::IntArrayRef stride,
                         at::IntArrayRef dilation) const {
    TORCH_CHECK(out_h && out_w,
                "fastconv conv_transpose2d: the output size overflows int64 "
                "(input ",
                in, ", weight ", w, ", stride ", stride, ", dilation ", dilation, ")");
  }
};

// torch's Empty backend, for an empty batch or no channels: only the output shape.
ConvTranspose2dGeometry empty_transposed(at::IntArrayRef in, at::IntArrayRef w,
                                         int64_t out_channels, const TransposedOutput& out,
                                         at::IntArrayRef stride, at::IntArrayRef dilation) {
  // torch fails on an internal select() (IndexError) here; these say what is wrong.
  TORCH_CHECK(w[2] > 0 && w[3] > 0,
              "kernel size should be greater than zero, but got "
              "kernel_height: ",
              w[2], " kernel_width: ", w[3]);
  TORCH_CHECK(w[1] > 0, "non-empty 2D or 4D weight tensor expected, but got: ", w);
  out.check_no_overflow(in, w, stride, dilation);
  ConvTranspose2dGeometry t{};
  t.output_size = {in[0], out_channels, *out.out_h, *out.out_w};
  // torch views an empty tensor as the output shape: a negative size fails as its infer_size
  // says (-1 reads as "infer this dimension").
  const at::IntArrayRef shape(t.output_size);
  bool inferred = false;
  for (const int d : {2, 3}) {
    TORCH_CHECK(shape[d] != -1 || !inferred, "only one dimension can be inferred");
    TORCH_CHECK(shape[d] >= -1, "invalid shape dimension ", shape[d], " at index ", d, " of shape ",
                shape);
    inferred |= shape[d] == -1;
  }
  TORCH_CHECK(!inferred, "cannot reshape tensor of 0 elements into shape ", shape,
              " because the unspecified dimension size -1 can be any value and is ambiguous");
  return t;
}

// The checks of torch's slow kernel (slow_conv_transpose2d_shape_check), in its order. oneDNN
// takes an empty output, and a zero dilation along a kernel of one tap (it changes nothing
// there); torch's slow kernel refuses both.
void check_slow_kernel_shapes(bool onednn, const at::Tensor& input, const at::Tensor& weight,
                              const TransposedOutput& out, at::IntArrayRef stride,
                              at::IntArrayRef output_padding, int64_t groups,
                              at::IntArrayRef dilation) {
  const auto in = input.sizes();
  const auto w = weight.sizes();
  const auto dilation_ok = [&](int d) { return dilation[d] > 0 || (onednn && w[d + 2] == 1); };
  TORCH_CHECK(w[3] > 0 && w[2] > 0,
              "kernel size should be greater than zero, but got "
              "kernel_height: ",
              w[2], " kernel_width: ", w[3]);
  TORCH_CHECK(dilation_ok(1) && dilation_ok(0),
              "dilation should be greater than zero, but "
              "got dilation_height: ",
              dilation[0], ", dilation_width: ", dilation[1]);
  TORCH_CHECK((output_padding[1] < stride[1] || output_padding[1] < dilation[1]) &&
                  (output_padding[0] < stride[0] || output_padding[0] < dilation[0]),
              "output padding must be smaller than either stride or dilation, but got "
              "output_padding_height: ",
              output_padding[0], " output_padding_width: ", output_padding[1],
              " stride_height: ", stride[0], " stride_width: ", stride[1],
              " dilation_height: ", dilation[0], " dilation_width: ", dilation[1]);
  // torch runs its slow kernel group by group, on one group's slice of the weight.
  TORCH_CHECK(weight.numel() != 0, "non-empty 2D or 4D weight tensor expected, but got: ",
              at::IntArrayRef{w[0] / groups, w[1], w[2], w[3]});
  out.check_no_overflow(in, w, stride, dilation);
  const int64_t least = onednn ? 0 : 1;
  TORCH_CHECK(*out.out_h >= least && *out.out_w >= least, "Given input size per channel: (", in[2],
              " x ", in[3], "). Calculated output size per channel: (", *out.out_h, " x ",
              *out.out_w, "). Output size is too small");
}

// torch's CPU backend choice: oneDNN by conv2d's heuristic, but never for an output_padding that
// reaches the stride; otherwise its slow kernel, which checks shapes before dtypes.
bool torch_uses_slow_kernel(const at::Tensor& input, const at::Tensor& weight,
                            at::IntArrayRef stride, at::IntArrayRef output_padding, int64_t groups,
                            at::IntArrayRef dilation) {
  const auto w = weight.sizes();
  Conv2dGeometry heuristic{};
  heuristic.batch = input.size(0);
  heuristic.kernel_h = w[2];
  heuristic.kernel_w = w[3];
  heuristic.stride_h = stride[0];
  heuristic.stride_w = stride[1];
  heuristic.dilation_h = dilation[0];
  heuristic.dilation_w = dilation[1];
  heuristic.groups = groups;
  const bool big_output_padding = output_padding[0] >= stride[0] || output_padding[1] >= stride[1];
  return input.is_cpu() && weight.is_cpu() &&
      (big_output_padding || !torch_uses_onednn(heuristic, input));
}

}  // namespace

ConvTranspose2dGeometry check_conv_transpose2d(const at::Tensor& input, const at::Tensor& weight,
                                               const std::optional<at::Tensor>& bias,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef output_padding, int64_t groups,
                                               at::IntArrayRef dilation) {
  const auto in = input.sizes();
  const auto w = weight.sizes();
  const at::Tensor* b = bias.has_value() && bias->defined() ? &*bias : nullptr;
  check_complex_parameter_types(input, weight, b);
  const int64_t out_channels = check_transposed_arguments(input, weight, b, stride, padding,
                                                          output_padding, groups, dilation);
  const bool empty_batch_or_channels = in[0] == 0 || in[1] == 0;
  TORCH_CHECK(empty_batch_or_channels || input.numel() != 0,
              "Only zero batch or zero channel inputs are supported, but got input shape: ", in);
  const TransposedOutput out{
      transposed_output_size(in[2], w[2], stride[0], padding[0], dilation[0], output_padding[0]),
      transposed_output_size(in[3], w[3], stride[1], padding[1], dilation[1], output_padding[1])};
  if (empty_batch_or_channels) {
    return empty_transposed(in, w, out_channels, out, stride, dilation);
  }
  const bool slow_cpu_kernel =
      torch_uses_slow_kernel(input, weight, stride, output_padding, groups, dilation);
  const bool same_type =
      input.scalar_type() == weight.scalar_type() && input.device() == weight.device();
  if (slow_cpu_kernel) {
    check_slow_kernel_shapes(false, input, weight, out, stride, output_padding, groups, dilation);
    TORCH_CHECK(same_type, "expected scalar type ", input.scalar_type(), " but found ",
                weight.scalar_type());
  }
  const char* mkldnn_words = input.is_cpu() ? " or input should be a MKLDNN tensor and " : "";
  TORCH_CHECK(same_type, "Input type (", legacy_type_name(input), ") and weight type (",
              legacy_type_name(weight), ") should be the same", mkldnn_words,
              input.is_cpu() ? "weight is a dense tensor" : "");
  ConvTranspose2dGeometry t{};
  t.cast_bias = b != nullptr && slow_cpu_kernel && b->device() == input.device() &&
      b->scalar_type() != input.scalar_type();
  TORCH_CHECK(b == nullptr || t.cast_bias ||
                  (b->scalar_type() == input.scalar_type() && b->device() == input.device()),
              "Input type (", legacy_type_name(input), ") and bias type (", legacy_type_name(*b),
              ") should be the same", mkldnn_words, input.is_cpu() ? "bias is a dense tensor" : "");
  // oneDNN and cuDNN fail on these inside their libraries; the slow kernel's words say what is
  // wrong.
  check_slow_kernel_shapes(!slow_cpu_kernel, input, weight, out, stride, output_padding, groups,
                           dilation);

  t.output_size = {in[0], out_channels, *out.out_h, *out.out_w};
  t.extra_h = output_padding[0] / stride[0];
  t.extra_w = output_padding[1] / stride[1];
  const std::array<int64_t, 2> taps_apart{std::max<int64_t>(dilation[0], 1),
                                          std::max<int64_t>(dilation[1], 1)};
  t.conv = conv2d_geometry(t.output_size, w, nullptr, stride, padding, taps_apart, groups);
  TORCH_INTERNAL_ASSERT(t.conv.out_h == in[2] + t.extra_h && t.conv.out_w == in[3] + t.extra_w);
  return t;
}

}  // namespace fastconv
