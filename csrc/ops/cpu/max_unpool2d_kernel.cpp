// CPU kernels of max_unpool2d (scatter by switches) and of the gather that reverses it.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <atomic>

#include "../shape_checks.h"

namespace fastconv::cpu {
namespace {

// Records the first invalid switch seen by any thread; reported once the threads are done.
class InvalidSwitch {
 public:
  void record(int64_t index) {
    if (!seen_.exchange(true)) {
      index_ = index;
    }
  }
  void throw_if_seen(int64_t height, int64_t width) const {
    if (seen_.load()) {
      throw_invalid_switch(index_, height, width);
    }
  }

 private:
  std::atomic<bool> seen_{false};
  int64_t index_ = 0;
};

at::MemoryFormat layout_of(const at::Tensor& t) {
  return is_channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

at::Tensor max_unpool2d_kernel(const at::Tensor& input, const at::Tensor& indices,
                               at::IntArrayRef output_size) {
  const auto g =
      check_max_unpool2d(input, indices, output_size, "max_unpooling2d_forward_out_cpu");
  auto sizes = input.sizes().vec();
  sizes[sizes.size() - 2] = g.out_h;
  sizes[sizes.size() - 1] = g.out_w;
  auto output = at::zeros(sizes, input.options());
  if (input.numel() == 0) {  // an empty batch; an empty output with input fails the index check
    return output.contiguous(layout_of(input));
  }
  const auto x = input.contiguous();
  const auto switches = indices.contiguous();
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  InvalidSwitch invalid;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_unpool2d", [&] {
    at::parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* x_p = x.const_data_ptr<scalar_t>() + plane * in_plane;
        const int64_t* s_p = switches.const_data_ptr<int64_t>() + plane * in_plane;
        scalar_t* y_p = output.mutable_data_ptr<scalar_t>() + plane * out_plane;
        for (int64_t i = 0; i < in_plane; ++i) {
          if (s_p[i] < 0 || s_p[i] >= out_plane) {
            invalid.record(s_p[i]);
          } else {
            y_p[s_p[i]] = x_p[i];
          }
        }
      }
    });
  });
  invalid.throw_if_seen(g.out_h, g.out_w);
  return output.contiguous(layout_of(input));
}

at::Tensor max_unpool2d_backward_kernel(const at::Tensor& grad_output, const at::Tensor& indices) {
  check_gather_by_switches(grad_output, indices);
  const auto source = grad_output.contiguous();
  const auto switches = indices.contiguous();
  auto output = at::empty(indices.sizes(), grad_output.options());
  const int64_t source_plane = source.size(-2) * source.size(-1);
  const int64_t plane = switches.size(-2) * switches.size(-1);
  if (output.numel() == 0) {
    return output.contiguous(layout_of(indices));
  }
  InvalidSwitch invalid;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, source.scalar_type(), "max_unpool2d_backward", [&] {
    at::parallel_for(0, output.numel() / plane, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* src = source.const_data_ptr<scalar_t>() + p * source_plane;
        const int64_t* s_p = switches.const_data_ptr<int64_t>() + p * plane;
        scalar_t* out = output.mutable_data_ptr<scalar_t>() + p * plane;
        for (int64_t i = 0; i < plane; ++i) {
          if (s_p[i] < 0 || s_p[i] >= source_plane) {
            invalid.record(s_p[i]);
            out[i] = scalar_t(0);
          } else {
            out[i] = src[s_p[i]];
          }
        }
      }
    });
  });
  invalid.throw_if_seen(source.size(-2), source.size(-1));
  return output.contiguous(layout_of(indices));
}

} // namespace

TORCH_LIBRARY_IMPL(fastconv, CPU, m) {
  m.impl("max_unpool2d", &max_unpool2d_kernel);
  m.impl("max_unpool2d_backward", &max_unpool2d_backward_kernel);
}

} // namespace fastconv::cpu
