// Which instruction set the CPU kernels' vector paths may use, decided once per process.
#pragma once

namespace fastconv::cpu {

// True where the CPU has AVX2 and FMA and ATen's CPU capability allows them: ATEN_CPU_CAPABILITY
// =default turns the vector paths off, as it does ATen's own, which is how tests reach the
// portable code on an AVX2 machine. The AVX2 code is compiled per function
// (__attribute__((target("avx2,fma")))), so the library still loads on CPUs without it.
bool cpu_uses_avx2();

} // namespace fastconv::cpu
