// Row-major GEMM on raw memory through ATen, which hands it to the BLAS torch was built with
// (MKL, OpenBLAS, oneDNN for reduced precision). ATen's cpublas entry points are not exported
// from libtorch, so the operands are wrapped as strided tensors instead: no copy is made as long
// as each matrix has unit stride along one dimension, which all of ours do.
#pragma once

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

namespace fastconv::cpu {

// A matrix of `rows` x `cols` stored row-major with row stride `ld`; `transposed` reads the
// stored matrix as its transpose (then `rows` x `cols` is the shape after transposing).
template <typename T>
struct Matrix {
  const T* data;
  int64_t rows, cols, ld;
  bool transposed = false;

  at::Tensor view() const {
    const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    auto* p = const_cast<T*>(data);
    return transposed ? at::from_blob(p, {rows, cols}, {1, ld}, options)
                      : at::from_blob(p, {rows, cols}, {ld, 1}, options);
  }
};

template <typename T>
Matrix<T> transposed(Matrix<T> m) {
  m.transposed = true;
  return m;
}

// c = a * b, or c += a * b when `accumulate`. c is rows(a) x cols(b), row-major with stride ldc.
template <typename T>
void gemm(const Matrix<T>& a, const Matrix<T>& b, T* c, int64_t ldc, bool accumulate) {
  // Plain buffers inside a kernel: no autograd to record, so skip its dispatch layer.
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto out = at::from_blob(c, {a.rows, b.cols}, {ldc, 1}, options);
  if (accumulate) {
    out.addmm_(a.view(), b.view());
  } else {
    at::mm_out(out, a.view(), b.view());
  }
}

}  // namespace fastconv::cpu
