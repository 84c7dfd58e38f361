// Scratch memory of the CPU kernels. Every workspace a kernel allocates is a Workspace<T>, which
// counts the bytes alive, so that tests and the benchmark can read the peak a call really used
// (workspace_peak_bytes) and check it against the figure the path choice reports.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace fastconv::cpu {

namespace workspace_accounting {
inline std::atomic<int64_t> live_bytes{0};
inline std::atomic<int64_t> peak_bytes{0};

inline void add(int64_t bytes) {
  const int64_t now = live_bytes.fetch_add(bytes) + bytes;
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace workspace_accounting

// Raises torch's out-of-memory error (workspace.cpp: the one place here with torch's headers).
[[noreturn]] void throw_workspace_out_of_memory(int64_t bytes);

// The most workspace bytes alive at once since the last reset (all threads together).
inline int64_t workspace_peak_bytes() { return workspace_accounting::peak_bytes.load(); }
inline void reset_workspace_peak() {
  workspace_accounting::peak_bytes.store(workspace_accounting::live_bytes.load());
}

// The bytes a Workspace of `elements` values of `element_size` bytes takes: what the workspace
// figures add up.
constexpr int64_t workspace_bytes(int64_t elements, int64_t element_size) {
  return (elements * element_size + 63) / 64 * 64;
}

// `elements` values of T, 64-byte aligned (packed panels then sit on whole cache lines and the
// micro-kernel may use aligned loads), zeroed when asked.
template <typename T>
class Workspace {
 public:
  explicit Workspace(int64_t elements, bool zeroed = false)
      : bytes_(workspace_bytes(elements, sizeof(T))) {
    data_ = static_cast<T*>(std::aligned_alloc(64, std::max<int64_t>(bytes_, 64)));
    if (data_ == nullptr) {
      throw_workspace_out_of_memory(bytes_);
    }
    if (zeroed) {
      std::fill_n(data_, elements, T(0));
    }
    workspace_accounting::add(bytes_);
  }
  ~Workspace() {
    std::free(data_);
    workspace_accounting::live_bytes.fetch_sub(bytes_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  T* data() const { return data_; }
  T& operator[](int64_t i) const { return data_[i]; }

 private:
  int64_t bytes_;
  T* data_;
};

}  // namespace fastconv::cpu
