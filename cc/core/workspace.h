// Cache-line aligned scratch arrays. Kernels copy into these before calling LAPACK so that a
// matrix sees the same alignment alone or inside a batch (bit-identical results). Large ones come
// from, and go back to, the blocks that scratch_pool.h keeps for reuse.
#pragma once

#include <algorithm>

#include "core/scalar.h"
#include "core/scratch_pool.h"

namespace tfsvd {

template <typename T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(Index size) { Resize(size); }
  AlignedArray(const AlignedArray&) = delete;
  AlignedArray& operator=(const AlignedArray&) = delete;
  ~AlignedArray() { ReturnScratch(data_, bytes_); }

  // Grows (never shrinks); contents are not preserved.
  void Resize(Index size) {
    if (size <= capacity_) return;
    ReturnScratch(data_, bytes_);
    data_ = nullptr;
    capacity_ = 0;
    bytes_ = 0;
    std::size_t bytes = static_cast<std::size_t>(size) * sizeof(T);
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    data_ = static_cast<T*>(TakeScratch(bytes, &bytes_));  // may be a larger, reused block
    capacity_ = static_cast<Index>(bytes_ / sizeof(T));
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](Index i) { return data_[i]; }
  const T& operator[](Index i) const { return data_[i]; }

 private:
  static constexpr std::size_t kAlign = kScratchAlignment;
  T* data_ = nullptr;
  std::size_t bytes_ = 0;
  Index capacity_ = 0;
};

// A leading dimension for a column-major scratch matrix of `rows` rows: `rows` rounded up to whole
// 64-byte cache lines, plus one line when its columns would then lie a multiple of 4096 bytes
// apart.
// - Whole lines: every column starts at the same place within a line, so the bidiagonalisation's
//   column pass loads aligned vectors (bidiag_pass.h).
// - Not 4096 bytes: such columns fall into the same few sets of every cache level, so that the
//   column blocks that BLAS packs and the strided row accesses of LAPACK evict each other: one
//   1024 x 1024 float32 SVD on one thread took 14% longer than the n^3 scaling from 1000 x 1000
//   predicts (divide and conquer 24%, the right back-transformation 26% longer), and 1040 x 1040
//   none.
// A function of the shape only, so results do not depend on where a matrix sits in a batch.
template <typename T>
Index PaddedLeadingDimension(Index rows) {
  constexpr Index kPage = 4096, kLine = 64;
  constexpr Index kPerLine = std::max<Index>(1, kLine / static_cast<Index>(sizeof(T)));
  if (rows <= 0) return 1;
  const Index ld = (rows + kPerLine - 1) / kPerLine * kPerLine;
  return ld * static_cast<Index>(sizeof(T)) % kPage == 0 ? ld + kPerLine : ld;
}

}  // namespace tfsvd
