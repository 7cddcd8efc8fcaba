// Cache-line aligned scratch arrays. Kernels copy into these before calling LAPACK so that a
// matrix sees the same alignment alone or inside a batch (bit-identical results).
#pragma once

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/scalar.h"

namespace tfsvd {

template <typename T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(Index size) { Resize(size); }
  AlignedArray(const AlignedArray&) = delete;
  AlignedArray& operator=(const AlignedArray&) = delete;
  ~AlignedArray() { std::free(data_); }

  // Grows (never shrinks); contents are not preserved.
  void Resize(Index size) {
    if (size <= capacity_) return;
    std::free(data_);
    std::size_t bytes = static_cast<std::size_t>(size) * sizeof(T);
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    data_ = static_cast<T*>(std::aligned_alloc(kAlign, bytes));
    if (data_ == nullptr) throw std::bad_alloc();
    capacity_ = size;
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](Index i) { return data_[i]; }

 private:
  static constexpr std::size_t kAlign = 64;
  T* data_ = nullptr;
  Index capacity_ = 0;
};

}  // namespace tfsvd
