// CPU kernels of conv2d and its two backward ops. Layout is NCHW inside; channels_last in and out
// is converted at the edges.
//
// float32: im2col packed block by block straight into our own GEMM (packed_gemm.h), so the
// column matrix never leaves the cache: the forward, the weight gradient, and the input gradient
// of stride-1 convolutions (a convolution itself). Depthwise: direct stencils
// (depthwise_conv2d.cpp). Other dtypes, strided input gradients, and the forward and input
// gradient of pointwise (1x1, stride 1, unpadded) convolutions, which are plain GEMMs on the image
// that ATen's BLAS (MKL) runs faster than our micro-kernel: im2col (or col2im) on bands of output
// rows, where needed, and a GEMM through ATen's BLAS (gemm.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <utility>
#include <vector>

#include "../shape_checks.h"
#include "conv2d_kernel.h"
#include "depthwise_conv2d.h"
#include "gemm.h"
#include "gemm_microkernel.h"
#include "im2col.h"
#include "packed_gemm.h"

namespace fastconv::cpu {
namespace {

// Column workspace per thread. Larger images are processed in bands of output rows.
constexpr int64_t kWorkspaceBytes = 16 << 20;

// Per group g of one image, with C = in channels and K = out channels per group, P = out_h*out_w,
// rows = C*kh*kw and `band` the output pixels of a band of output rows:
//   forward          y_g[K x band]    = w_g[K x rows] * columns[rows x band]
//   input backward   columns          = w_g^T * gy_g[K x band], then col2im
//   weight backward  gw_g[K x rows]  += gy_g[K x band] * columns^T
// A pointwise convolution uses the image x_g[C x P] itself in place of the columns.

template <typename scalar_t>
void forward_image(const Conv2dGeometry& g, int64_t band_rows, const scalar_t* x,
                   const scalar_t* w, const scalar_t* bias, scalar_t* y, scalar_t* columns) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(),
                C = g.in_channels_per_group(), rows = g.column_rows();
  if (bias != nullptr) {
    for (int64_t k = 0; k < g.out_channels; ++k) {
      std::fill_n(y + k * P, P, bias[k]);
    }
  }
  const bool accumulate = bias != nullptr;
  for (int64_t group = 0; group < g.groups; ++group) {
    const Matrix<scalar_t> w_g{w + group * K * rows, K, rows, rows};
    scalar_t* y_g = y + group * K * P;
    if (g.is_pointwise()) {
      gemm(w_g, Matrix<scalar_t>{x + group * C * g.in_plane(), C, P, P}, y_g, P, accumulate);
      continue;
    }
    for (int64_t oh = 0; oh < g.out_h; oh += band_rows) {
      const int64_t oh_end = std::min(g.out_h, oh + band_rows);
      const int64_t band = (oh_end - oh) * g.out_w;
      im2col(x + group * C * g.in_plane(), C, g, oh, oh_end, columns);
      gemm(w_g, Matrix<scalar_t>{columns, rows, band, band}, y_g + oh * g.out_w, P, accumulate);
    }
  }
}

template <typename scalar_t>
void input_backward_image(const Conv2dGeometry& g, int64_t band_rows, const scalar_t* gy,
                          const scalar_t* w, scalar_t* gx, scalar_t* columns) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(),
                C = g.in_channels_per_group(), rows = g.column_rows();
  for (int64_t group = 0; group < g.groups; ++group) {
    const auto w_t = transposed(Matrix<scalar_t>{w + group * K * rows, rows, K, rows});
    const scalar_t* gy_g = gy + group * K * P;
    scalar_t* gx_g = gx + group * C * g.in_plane();
    if (g.is_pointwise()) {
      gemm(w_t, Matrix<scalar_t>{gy_g, K, P, P}, gx_g, P, false);
      continue;
    }
    for (int64_t oh = 0; oh < g.out_h; oh += band_rows) {
      const int64_t oh_end = std::min(g.out_h, oh + band_rows);
      const int64_t band = (oh_end - oh) * g.out_w;
      gemm(w_t, Matrix<scalar_t>{gy_g + oh * g.out_w, K, band, P}, columns, band, false);
      col2im_gather(columns, C, g, oh, oh_end, gx_g);
    }
  }
}

template <typename scalar_t>
void weight_backward_image(const Conv2dGeometry& g, int64_t band_rows, const scalar_t* x,
                           const scalar_t* gy, scalar_t* gw, scalar_t* columns) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(),
                C = g.in_channels_per_group(), rows = g.column_rows();
  for (int64_t group = 0; group < g.groups; ++group) {
    const scalar_t* x_g = x + group * C * g.in_plane();
    const scalar_t* gy_g = gy + group * K * P;
    scalar_t* gw_g = gw + group * K * rows;
    if (g.is_pointwise()) {
      gemm(Matrix<scalar_t>{gy_g, K, P, P}, transposed(Matrix<scalar_t>{x_g, P, C, P}), gw_g,
           rows, true);
      continue;
    }
    for (int64_t oh = 0; oh < g.out_h; oh += band_rows) {
      const int64_t oh_end = std::min(g.out_h, oh + band_rows);
      const int64_t band = (oh_end - oh) * g.out_w;
      im2col(x_g, C, g, oh, oh_end, columns);
      gemm(Matrix<scalar_t>{gy_g + oh * g.out_w, K, band, P},
           transposed(Matrix<scalar_t>{columns, band, rows, band}), gw_g, rows, true);
    }
  }
}

// Output pixels per task of the packed forward: its B block, kKC x kPixelBlock floats (128 KiB),
// stays in L2 while every weight panel passes over it.
constexpr int64_t kPixelBlock = 128;
// At most this many weight rows per task, so that their kKC-deep slice (192 KiB) also fits in L2.
constexpr int64_t kMaxRowBlock = 192;

// The packed forward's tasks: (group, block of output pixels, block of weight rows). The pixels
// of the whole batch are numbered image after image, so a block may span small images; blocks are
// whole 16-pixel panels, shared out evenly, so that tasks take the same time. When there are few
// pixel blocks the weight rows are split too, so that every thread gets work.
struct ForwardTiling {
  int64_t pixels, panels, pixel_blocks, row_block, row_blocks;

  explicit ForwardTiling(const Conv2dGeometry& g) {
    const int64_t K = g.out_channels_per_group();
    pixels = g.batch * g.out_plane();
    panels = (pixels + kNR - 1) / kNR;
    pixel_blocks = (panels + kPixelBlock / kNR - 1) / (kPixelBlock / kNR);
    const int64_t pixel_tasks = g.groups * pixel_blocks;
    const int64_t wanted = 2 * at::get_num_threads();
    int64_t splits = std::clamp<int64_t>((wanted + pixel_tasks - 1) / pixel_tasks, 1,
                                         (K + kMR - 1) / kMR);
    splits = std::max(splits, (K + kMaxRowBlock - 1) / kMaxRowBlock);
    row_block = round_up((K + splits - 1) / splits, kMR);
    row_blocks = (K + row_block - 1) / row_block;
  }
  int64_t tasks(const Conv2dGeometry& g) const { return g.groups * pixel_blocks * row_blocks; }
  // The first pixel of pixel block b, and its pixel count (at most kPixelBlock).
  std::pair<int64_t, int64_t> pixel_block(int64_t b) const {
    const int64_t first = b * panels / pixel_blocks * kNR;
    const int64_t end = std::min(pixels, (b + 1) * panels / pixel_blocks * kNR);
    return {first, end - first};
  }
};

void forward_packed(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                    float* y) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(),
                C = g.in_channels_per_group(), rows = g.column_rows();
  std::vector<GemmA> weights;
  weights.reserve(g.groups);
  for (int64_t group = 0; group < g.groups; ++group) {
    weights.emplace_back(w + group * K * rows, K, rows, rows);
  }
  const ForwardTiling tiling(g);
  const MicroKernel kernel = select_microkernel();
  at::parallel_for(0, tiling.tasks(g), 1, [&](int64_t begin, int64_t end) {
    const AlignedBuffer packed_columns(packed_b_elements(kPixelBlock));
    std::vector<float*> output_columns(kPixelBlock);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t row_block = task % tiling.row_blocks;
      const int64_t pixel_block = task / tiling.row_blocks % tiling.pixel_blocks;
      const int64_t group = task / (tiling.row_blocks * tiling.pixel_blocks);
      const auto [first, count] = tiling.pixel_block(pixel_block);
      for (int64_t j = 0; j < count; ++j) {
        const int64_t n = (first + j) / P, p = (first + j) % P;
        output_columns[j] = y + (n * g.out_channels + group * K) * P + p;
      }
      const int64_t row_begin = row_block * tiling.row_block;
      const int64_t row_end = std::min(K, row_begin + tiling.row_block);
      const float* group_input = x + group * C * g.in_plane();
      const auto runs = pixel_runs(g, first, count);
      packed_gemm(
          kernel, weights[group], row_begin, row_end, count,
          [&](int64_t k0, int64_t kc, float* packed) {
            pack_columns(group_input, g, runs, count, k0, kc, packed);
          },
          packed_columns.data(), output_columns.data(), P,
          bias != nullptr ? bias + group * K : nullptr, /*accumulate=*/false);
    }
  });
}

// Where the packed GEMM beats im2col + ATen's BLAS: not on pointwise layers (a plain GEMM on the
// image, which MKL runs faster than our micro-kernel) nor on deep ones, whose weight rows (read in
// place, kMR at a time, C*kh*kw apart) stream less well than MKL's packed copy; measured with
// bench/ on the build machine (README).
constexpr int64_t kDeepColumnRows = 2048;

bool packed_gemm_pays_off(const Conv2dGeometry& g) {
  return !g.is_pointwise() && g.column_rows() < kDeepColumnRows;
}

// A stride-1 convolution's input gradient is itself a convolution: of grad_output with the
// weights flipped and their in/out channels swapped, padded by dilation * (kernel - 1) - padding.
// It then runs on the packed forward, with no col2im.
bool input_backward_is_a_convolution(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h <= g.dilation_h * (g.kernel_h - 1) &&
      g.pad_w <= g.dilation_w * (g.kernel_w - 1);
}

Conv2dGeometry input_backward_geometry(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  t.in_channels = g.out_channels, t.in_h = g.out_h, t.in_w = g.out_w;
  t.out_channels = g.in_channels, t.out_h = g.in_h, t.out_w = g.in_w;
  t.pad_h = g.dilation_h * (g.kernel_h - 1) - g.pad_h;
  t.pad_w = g.dilation_w * (g.kernel_w - 1) - g.pad_w;
  return t;
}

// weight[K, C/g, kh, kw] -> [C, K/g, kh, kw], flipped in both spatial dims, group by group.
at::Tensor input_backward_weight(const at::Tensor& weight, const Conv2dGeometry& g) {
  return weight
      .view({g.groups, g.out_channels_per_group(), g.in_channels_per_group(), g.kernel_h,
             g.kernel_w})
      .transpose(1, 2)
      .flip({3, 4})
      .reshape({g.in_channels, g.out_channels_per_group(), g.kernel_h, g.kernel_w})
      .contiguous();
}

// Weight-gradient columns per task (a multiple of kNR) and weight rows per task.
constexpr int64_t kWeightColumnBlock = 128;

// A small weight gradient (few tasks over its blocks) of a large batch is also split by images:
// chunks of kImagesPerChunk images are summed into separate partial gradients in parallel, which
// are then added in chunk order. The split depends on the geometry alone, never on the thread
// count, and the partial gradients together stay under kMaxPartialElements.
constexpr int64_t kImagesPerChunk = 8;
constexpr int64_t kMaxPartialElements = 1 << 20;

// The packed weight gradient's tasks: (chunk of images, group, block of grad_weight rows, block of
// its columns). Every grad_weight element is summed over the images and pixels in the same order
// whatever the thread count.
struct WeightBackwardTiling {
  int64_t image_chunks, row_block, row_blocks, column_block, column_blocks;

  explicit WeightBackwardTiling(const Conv2dGeometry& g) {
    const int64_t K = g.out_channels_per_group(), columns = g.column_rows();
    const int64_t chunks = (g.batch + kImagesPerChunk - 1) / kImagesPerChunk;
    image_chunks = chunks * g.out_channels * columns <= kMaxPartialElements ? chunks : 1;
    row_block = std::min(round_up(K, kMR), kMaxRowBlock);
    row_blocks = (K + row_block - 1) / row_block;
    column_block = kWeightColumnBlock;
    const int64_t wanted = 2 * at::get_num_threads();
    while (column_block > kNR && image_chunks * g.groups * row_blocks *
                                         ((columns + column_block - 1) / column_block) <
                                     wanted) {
      column_block /= 2;
    }
    column_blocks = (columns + column_block - 1) / column_block;
  }
  int64_t tasks(const Conv2dGeometry& g) const {
    return image_chunks * g.groups * row_blocks * column_blocks;
  }
};

void weight_backward_packed(const Conv2dGeometry& g, const float* x, const float* gy, float* gw) {
  const int64_t P = g.out_plane(), K = g.out_channels_per_group(),
                C = g.in_channels_per_group(), rows = g.column_rows();
  const int64_t weight_elements = g.out_channels * rows;
  const WeightBackwardTiling tiling(g);
  std::vector<float> partials(tiling.image_chunks > 1 ? tiling.image_chunks * weight_elements : 0);
  const MicroKernel kernel = select_microkernel();
  at::parallel_for(0, tiling.tasks(g), 1, [&](int64_t begin, int64_t end) {
    const AlignedBuffer packed_columns(packed_b_elements(tiling.column_block));
    std::vector<float*> weight_columns(tiling.column_block);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t column_block = task % tiling.column_blocks;
      const int64_t row_block = task / tiling.column_blocks % tiling.row_blocks;
      const int64_t group = task / (tiling.column_blocks * tiling.row_blocks) % g.groups;
      const int64_t chunk = task / (tiling.column_blocks * tiling.row_blocks * g.groups);
      const int64_t first = column_block * tiling.column_block;
      const int64_t count = std::min(tiling.column_block, rows - first);
      const int64_t row_begin = row_block * tiling.row_block;
      const int64_t row_count = std::min(K, row_begin + tiling.row_block) - row_begin;
      float* sum = tiling.image_chunks > 1 ? partials.data() + chunk * weight_elements : gw;
      for (int64_t j = 0; j < count; ++j) {
        weight_columns[j] = sum + (group * K + row_begin) * rows + first + j;
      }
      const int64_t first_image = tiling.image_chunks > 1 ? chunk * kImagesPerChunk : 0;
      const int64_t end_image =
          tiling.image_chunks > 1 ? std::min(g.batch, first_image + kImagesPerChunk) : g.batch;
      for (int64_t n = first_image; n < end_image; ++n) {
        const float* image = x + (n * g.in_channels + group * C) * g.in_plane();
        const GemmA grad_rows(gy + (n * g.out_channels + group * K + row_begin) * P, row_count, P,
                              P);
        packed_gemm(
            kernel, grad_rows, 0, row_count, count,
            [&](int64_t k0, int64_t kc, float* packed) {
              pack_columns_transposed(image, g, k0, kc, first, count, packed);
            },
            packed_columns.data(), weight_columns.data(), rows, nullptr,
            /*accumulate=*/n > first_image);
      }
    }
  });
  if (tiling.image_chunks > 1) {
    at::parallel_for(0, weight_elements, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float total = partials[i];
        for (int64_t chunk = 1; chunk < tiling.image_chunks; ++chunk) {
          total += partials[chunk * weight_elements + i];
        }
        gw[i] = total;
      }
    });
  }
}

int64_t workspace_elements(const Conv2dGeometry& g, int64_t band_rows) {
  return g.is_pointwise() ? 0 : g.column_rows() * band_rows * g.out_w;
}

} // namespace

int64_t conv2d_workspace_bytes(const Conv2dGeometry& g, c10::ScalarType dtype) {
  const int64_t element_size = c10::elementSize(dtype);
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), g.batch * g.out_channels);
  if (dtype == at::kFloat && depthwise_supported(g)) {
    return threads * element_size * depthwise_forward_workspace_elements(g);
  }
  if (dtype == at::kFloat && packed_gemm_pays_off(g)) {
    const ForwardTiling tiling(g);
    const int64_t K = g.out_channels_per_group();
    const int64_t weight_tails = K % kMR == 0 ? 0 : g.groups * kMR * g.column_rows();
    return element_size *
        (std::min(threads, tiling.tasks(g)) * packed_b_elements(kPixelBlock) + weight_tails);
  }
  const int64_t buffers = std::min<int64_t>(at::get_num_threads(), std::max<int64_t>(g.batch, 1));
  return buffers * element_size *
      workspace_elements(g, g.rows_per_band(element_size, kWorkspaceBytes));
}

namespace {

at::Tensor conv2d_kernel(const at::Tensor& input, const at::Tensor& weight,
                         const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto g = check_conv2d(input, weight, bias, stride, padding, dilation, groups);
  const auto memory_format = conv2d_output_memory_format(input, weight);
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, input.options());
  const bool has_bias = bias.has_value() && bias->defined();
  if (output.numel() == 0) {
    return output.contiguous(memory_format);
  }
  if (g.column_rows() == 0) {  // no input channels: every output is the empty sum (plus bias)
    output.zero_();
    if (has_bias) {
      output.add_(bias->view({1, -1, 1, 1}));
    }
    return output.contiguous(memory_format);
  }
  const auto x = input.contiguous();
  const auto w = weight.contiguous();
  const auto b = has_bias ? bias->contiguous() : at::Tensor();
  if (input.scalar_type() == at::kFloat && (depthwise_supported(g) || packed_gemm_pays_off(g))) {
    const auto forward = depthwise_supported(g) ? depthwise_forward : forward_packed;
    forward(g, x.const_data_ptr<float>(), w.const_data_ptr<float>(),
            has_bias ? b.const_data_ptr<float>() : nullptr, output.mutable_data_ptr<float>());
    return output.contiguous(memory_format);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "conv2d", [&] {
    const int64_t band_rows = g.rows_per_band(sizeof(scalar_t), kWorkspaceBytes);
    const int64_t in_image = g.in_channels * g.in_plane();
    const int64_t out_image = g.out_channels * g.out_plane();
    const scalar_t* bias_data = has_bias ? b.const_data_ptr<scalar_t>() : nullptr;
    // One image per task; a batch of one leaves the threads to im2col and the GEMM instead.
    at::parallel_for(0, g.batch, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> columns(workspace_elements(g, band_rows));
      for (int64_t n = begin; n < end; ++n) {
        forward_image(g, band_rows, x.const_data_ptr<scalar_t>() + n * in_image,
                      w.const_data_ptr<scalar_t>(), bias_data,
                      output.mutable_data_ptr<scalar_t>() + n * out_image, columns.data());
      }
    });
  });
  return output.contiguous(memory_format);
}

at::Tensor conv2d_input_backward_kernel(const at::Tensor& grad_output, const at::Tensor& weight,
                                        at::IntArrayRef input_size, at::IntArrayRef stride,
                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                        int64_t groups) {
  const auto g = conv2d_backward_geometry(grad_output, input_size, weight.sizes(), stride,
                                          padding, dilation, groups);
  TORCH_CHECK(grad_output.scalar_type() == weight.scalar_type(),
              "conv2d backward: grad_output and weight must have the same dtype, got ",
              grad_output.scalar_type(), " and ", weight.scalar_type());
  const auto memory_format =
      is_channels_last(grad_output) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto grad_input = at::empty(input_size, grad_output.options());
  if (grad_input.numel() == 0 || grad_output.numel() == 0) {
    return grad_input.zero_().contiguous(memory_format);
  }
  const auto gy = grad_output.contiguous();
  const auto w = weight.contiguous();
  const auto t = input_backward_geometry(g);
  if (gy.scalar_type() == at::kFloat && input_backward_is_a_convolution(g) &&
      (depthwise_supported(t) || packed_gemm_pays_off(t))) {
    const auto flipped = input_backward_weight(w, g);
    const auto forward = depthwise_supported(t) ? depthwise_forward : forward_packed;
    forward(t, gy.const_data_ptr<float>(), flipped.const_data_ptr<float>(), nullptr,
            grad_input.mutable_data_ptr<float>());
    return grad_input.contiguous(memory_format);
  }
  if (gy.scalar_type() == at::kFloat && depthwise_supported(g)) {
    depthwise_input_backward(g, gy.const_data_ptr<float>(), w.const_data_ptr<float>(),
                             grad_input.mutable_data_ptr<float>());
    return grad_input.contiguous(memory_format);
  }
  grad_input.zero_();  // col2im adds to it
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, gy.scalar_type(), "conv2d_input_backward", [&] {
    const int64_t band_rows = g.rows_per_band(sizeof(scalar_t), kWorkspaceBytes);
    const int64_t in_image = g.in_channels * g.in_plane();
    const int64_t out_image = g.out_channels * g.out_plane();
    at::parallel_for(0, g.batch, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> columns(workspace_elements(g, band_rows));
      for (int64_t n = begin; n < end; ++n) {
        input_backward_image(g, band_rows, gy.const_data_ptr<scalar_t>() + n * out_image,
                             w.const_data_ptr<scalar_t>(),
                             grad_input.mutable_data_ptr<scalar_t>() + n * in_image,
                             columns.data());
      }
    });
  });
  return grad_input.contiguous(memory_format);
}

at::Tensor conv2d_weight_backward_kernel(const at::Tensor& grad_output, const at::Tensor& input,
                                         at::IntArrayRef weight_size, at::IntArrayRef stride,
                                         at::IntArrayRef padding, at::IntArrayRef dilation,
                                         int64_t groups) {
  const auto g = conv2d_backward_geometry(grad_output, input.sizes(), weight_size, stride,
                                          padding, dilation, groups);
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(),
              "conv2d backward: grad_output and input must have the same dtype, got ",
              grad_output.scalar_type(), " and ", input.scalar_type());
  auto grad_weight = at::empty(weight_size, grad_output.options());
  if (grad_weight.numel() == 0 || grad_output.numel() == 0) {
    return grad_weight.zero_();
  }
  const auto x = input.contiguous();
  const auto gy = grad_output.contiguous();
  if (x.scalar_type() == at::kFloat) {
    const auto weight_backward =
        depthwise_supported(g) ? depthwise_weight_backward : weight_backward_packed;
    weight_backward(g, x.const_data_ptr<float>(), gy.const_data_ptr<float>(),
                    grad_weight.mutable_data_ptr<float>());
    return grad_weight;
  }
  grad_weight.zero_();  // the GEMMs accumulate into it
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "conv2d_weight_backward", [&] {
    const int64_t band_rows = g.rows_per_band(sizeof(scalar_t), kWorkspaceBytes);
    const int64_t in_image = g.in_channels * g.in_plane();
    const int64_t out_image = g.out_channels * g.out_plane();
    std::vector<scalar_t> columns(workspace_elements(g, band_rows));
    // Images in order, each GEMM accumulating into grad_weight: a fixed summation order, so the
    // result does not depend on the thread count or timing. The threads work inside each step.
    for (int64_t n = 0; n < g.batch; ++n) {
      weight_backward_image(g, band_rows, x.const_data_ptr<scalar_t>() + n * in_image,
                            gy.const_data_ptr<scalar_t>() + n * out_image,
                            grad_weight.mutable_data_ptr<scalar_t>(), columns.data());
    }
  });
  return grad_weight;
}

} // namespace

TORCH_LIBRARY_IMPL(fastconv, CPU, m) {
  m.impl("conv2d", &conv2d_kernel);
  m.impl("conv2d_input_backward", &conv2d_input_backward_kernel);
  m.impl("conv2d_weight_backward", &conv2d_weight_backward_kernel);
}

} // namespace fastconv::cpu
