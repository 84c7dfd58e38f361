#include "cpu_capability.h"

#include <ATen/Version.h>

#include <string>

namespace fastconv::cpu {
namespace {

bool avx2_allowed() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // ATen's capability string honours ATEN_CPU_CAPABILITY; cpuid guards builds where ATen
  // reports more than this CPU has.
  const std::string capability = at::get_cpu_capability();
  return (capability == "AVX2" || capability == "AVX512") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

} // namespace

bool cpu_uses_avx2() {
  static const bool allowed = avx2_allowed();
  return allowed;
}

} // namespace fastconv::cpu
