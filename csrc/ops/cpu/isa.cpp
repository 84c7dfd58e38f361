// Decides once per process whether the CPU kernels' AVX2 builds may run (isa.h).
#include "ops/cpu/isa.h"

#include <ATen/Version.h>

#include <string>

namespace fastconv::cpu {
namespace {

bool avx2_allowed() {
#if FASTCONV_X86
  // ATen's capability string honours ATEN_CPU_CAPABILITY; cpuid guards builds where ATen
  // reports more than this CPU has.
  const std::string capability = at::get_cpu_capability();
  return (capability == "AVX2" || capability == "AVX512") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool avx512_allowed() {
#if FASTCONV_X86
  return at::get_cpu_capability() == "AVX512" && __builtin_cpu_supports("avx512f") &&
      avx2_allowed();
#else
  return false;
#endif
}

}  // namespace

bool cpu_uses_avx512() {
  static const bool allowed = avx512_allowed();
  return allowed;
}

bool cpu_uses_avx2() {
  static const bool allowed = avx2_allowed();
  return allowed;
}

}  // namespace fastconv::cpu
