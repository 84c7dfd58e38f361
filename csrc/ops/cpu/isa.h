// The one place that says which instruction sets the CPU kernels may use, and how a kernel picks
// its build.
//
// Vector code is compiled per function for AVX2+FMA (FASTCONV_AVX2), never with a global -mavx2,
// so the library still loads on CPUs without it. Every kernel with a vector build comes as a pair,
// `name_portable` and (where FASTCONV_X86 is 1) `name_avx2`, with the same signature, and callers
// pick one only through FASTCONV_SELECT_ISA(name). A kernel that gains from 512-bit vectors also
// comes as `name_avx512` (FASTCONV_AVX512), picked through FASTCONV_SELECT_ISA_AVX512(name): the
// GEMM micro-kernels (f32_gemm_12x16, f32_gemm_12x32), the direct convolution's (f32_conv_8x48,
// f32_conv_weight_2x9), the packed path's gathers (f32_gather_panels) and Winograd's transforms.
// ATEN_CPU_CAPABILITY limits both, as it limits ATen's own kernels.
//
// ATen's Vectorized<T> is not used: its AVX2 specialisations need the whole translation unit
// compiled for AVX2 (ATen builds each kernel file once per capability), which a per-function
// target cannot give; the portable builds rely on the compiler's vectorisation instead.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTCONV_X86 1
#include <immintrin.h>
// A function compiled for AVX2+FMA.
#define FASTCONV_AVX2 __attribute__((target("avx2,fma")))
// A helper of AVX2 code, inlined into its callers whatever gcc's size heuristics say: out of line,
// every __m256 argument and result goes through memory.
#define FASTCONV_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
// The same for AVX-512F.
#define FASTCONV_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define FASTCONV_AVX512_INLINE __attribute__((target("avx512f,avx2,fma"), always_inline)) inline
#else
#define FASTCONV_X86 0
#endif

// Before a loop whose pointers never overlap: lets the compiler vectorise it without run-time
// overlap checks (which it gives up on past a few pointers, and GCC ignores __restrict locals).
#if defined(__clang__)
#define FASTCONV_NO_OVERLAP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define FASTCONV_NO_OVERLAP _Pragma("GCC ivdep")
#else
#define FASTCONV_NO_OVERLAP
#endif

namespace fastconv::cpu {

// True where the CPU has AVX2 and FMA and ATen's CPU capability allows them: ATEN_CPU_CAPABILITY
// =default turns the vector builds off, as it does ATen's own, which is how tests reach the
// portable code on an AVX2 machine. Decided once per process.
bool cpu_uses_avx2();
// True where, besides, the CPU has AVX-512F and ATen's capability is AVX512
// (ATEN_CPU_CAPABILITY=avx2 turns it off alone).
bool cpu_uses_avx512();

}  // namespace fastconv::cpu

// The build of kernel `name` for this CPU: name_avx2 where cpu_uses_avx2(), else name_portable.
#if FASTCONV_X86
#define FASTCONV_SELECT_ISA(name) \
  (::fastconv::cpu::cpu_uses_avx2() ? &name##_avx2 : &name##_portable)
#else
#define FASTCONV_SELECT_ISA(name) (&name##_portable)
#endif

// The same, with name_avx512 first where cpu_uses_avx512().
#if FASTCONV_X86
#define FASTCONV_SELECT_ISA_AVX512(name) \
  (::fastconv::cpu::cpu_uses_avx512() ? &name##_avx512 : FASTCONV_SELECT_ISA(name))
#else
#define FASTCONV_SELECT_ISA_AVX512(name) (&name##_portable)
#endif
