// Transparent huge pages for large output tensors.
//
// TensorFlow's CPU allocator takes large buffers from malloc, and glibc maps every block of 32 MB
// or more afresh on each allocation, so writing such an output costs a page fault per 4 KB page:
// 0.35-0.4 ms per MB on the 2-core Zen 3 VM (a 40 MB tensor: 16 ms for x * 2, against 0.06-0.09
// ms per MB below 32 MB, where malloc reuses its heap). Where the kernel's huge pages are on
// "madvise" (Ubuntu's default), advising MADV_HUGEPAGE before the first write maps 2 MB per fault
// (first write of 40 MB: 22.5 ms with 4 KB pages, 3.2 ms with huge pages). With "always" they are
// huge already and with "never" the advice does nothing. Only whole huge pages inside the buffer
// are advised, so no page the output does not write is made huge.
//
// TFSVD_HUGE_PAGES=0 turns it off (the kernel may compact memory to find a huge page, which some
// deployments prefer to avoid).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "tensorflow/core/framework/tensor.h"

namespace tfsvd {

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
// Smaller outputs hold few whole huge pages, and malloc serves them from its heap once warm.
inline constexpr std::size_t kMinHugePageOutputBytes = 4 * kHugePageBytes;

inline bool HugePagesEnabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("TFSVD_HUGE_PAGES");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return enabled;
}

// Advises huge pages for the whole 2 MB pages of an output not yet written. Advice only: any
// error leaves the buffer as it was.
inline void AdviseHugePages(const tensorflow::Tensor& output) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const std::size_t bytes = output.TotalBytes();
  if (bytes < kMinHugePageOutputBytes || !HugePagesEnabled()) return;
  const auto begin = reinterpret_cast<std::uintptr_t>(output.tensor_data().data());
  const std::uintptr_t first = (begin + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  const std::uintptr_t last = (begin + bytes) & ~(kHugePageBytes - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)output;
#endif
}

}  // namespace tfsvd
