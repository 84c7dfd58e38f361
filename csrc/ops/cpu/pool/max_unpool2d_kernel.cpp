// The CPU kernels of max_unpool2d (a scatter by max-pool indices) and of the gather that reverses
// it (max_unpool2d_kernels.h).
#include <ATen/Dispatch.h>

#include <atomic>

#include "ops/cpu/parallel.h"
#include "ops/max_unpool2d_kernels.h"

namespace fastconv::cpu {
namespace {

// Records the first invalid index seen by any thread; reported once the threads are done.
class InvalidIndex {
 public:
  void record(int64_t index) {
    if (!seen_.exchange(true)) {
      index_ = index;
    }
  }
  void throw_if_seen(int64_t height, int64_t width) const {
    if (seen_.load()) {
      throw_invalid_index(index_, height, width);
    }
  }

 private:
  std::atomic<bool> seen_{false};
  int64_t index_ = 0;
};

}  // namespace

void max_unpool2d_forward(const Unpool2dGeometry& g, const at::Tensor& x, const at::Tensor& indices,
                          at::Tensor& output) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
  InvalidIndex invalid;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "max_unpool2d", [&] {
    parallel_for(0, g.batch * g.channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const scalar_t* x_p = x.const_data_ptr<scalar_t>() + plane * in_plane;
        const int64_t* i_p = indices.const_data_ptr<int64_t>() + plane * in_plane;
        scalar_t* y_p = output.mutable_data_ptr<scalar_t>() + plane * out_plane;
        for (int64_t i = 0; i < in_plane; ++i) {
          if (i_p[i] < 0 || i_p[i] >= out_plane) {
            invalid.record(i_p[i]);
          } else {
            y_p[i_p[i]] = x_p[i];
          }
        }
      }
    });
  });
  invalid.throw_if_seen(g.out_h, g.out_w);
}

void gather_by_indices(const at::Tensor& source, const at::Tensor& indices, at::Tensor& out) {
  const int64_t source_plane = source.size(-2) * source.size(-1);
  const int64_t plane = indices.size(-2) * indices.size(-1);
  InvalidIndex invalid;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, source.scalar_type(), "max_unpool2d_backward", [&] {
        parallel_for(0, out.numel() / plane, 1, [&](int64_t begin, int64_t end) {
          for (int64_t p = begin; p < end; ++p) {
            const scalar_t* src = source.const_data_ptr<scalar_t>() + p * source_plane;
            const int64_t* i_p = indices.const_data_ptr<int64_t>() + p * plane;
            scalar_t* o_p = out.mutable_data_ptr<scalar_t>() + p * plane;
            for (int64_t i = 0; i < plane; ++i) {
              if (i_p[i] < 0 || i_p[i] >= source_plane) {
                invalid.record(i_p[i]);
                o_p[i] = scalar_t(0);
              } else {
                o_p[i] = src[i_p[i]];
              }
            }
          }
        });
      });
  invalid.throw_if_seen(source.size(-2), source.size(-1));
}

}  // namespace fastconv::cpu
