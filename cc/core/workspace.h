// Cache-line aligned scratch arrays. Kernels copy into these before calling LAPACK so that a
// matrix sees the same alignment alone or inside a batch (bit-identical results).
#pragma once

#include <algorithm>
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

// A leading dimension for a column-major scratch matrix of `rows` rows: `rows`, plus one cache line
// when its columns would lie a multiple of 4096 bytes apart. Such columns fall into the same few
// sets of every cache level, so that the column blocks that BLAS packs and the strided row accesses
// of LAPACK evict each other: one 1024 x 1024 float32 SVD on one thread took 14% longer than the
// n^3 scaling from 1000 x 1000 predicts (divide and conquer 24%, the right back-transformation 26%
// longer), and 1040 x 1040 none. A function of the shape only, so results do not depend on where
// a matrix sits in a batch.
template <typename T>
Index PaddedLeadingDimension(Index rows) {
  constexpr Index kPage = 4096, kLine = 64;
  const Index bytes = rows * static_cast<Index>(sizeof(T));
  if (rows == 0 || bytes % kPage != 0) return rows > 0 ? rows : 1;
  return rows + std::max<Index>(1, kLine / static_cast<Index>(sizeof(T)));
}

}  // namespace tfsvd
