// Copies between the row-major layout of tfsvd's buffers and LAPACK's column-major one.
#pragma once

#include <algorithm>

#include "core/scalar.h"
#include "core/thread_team.h"

namespace tfsvd {

// dst[i * dst_ld + j] = f(src[i * src_ld + j]) for i < count, j < len: `count` runs of `len`
// entries (rows of a row-major matrix, or columns of a column-major one) from one leading
// dimension to another.
template <typename T, typename F>
void CopyStrided(Index count, Index len, const T* src, Index src_ld, T* dst, Index dst_ld, F f) {
  for (Index i = 0; i < count; ++i) {
    for (Index j = 0; j < len; ++j) dst[i * dst_ld + j] = f(src[i * src_ld + j]);
  }
}
// The same without a function of the entries (std::copy per run).
template <typename T>
void CopyStrided(Index count, Index len, const T* src, Index src_ld, T* dst, Index dst_ld) {
  for (Index i = 0; i < count; ++i) {
    std::copy(src + i * src_ld, src + i * src_ld + len, dst + i * dst_ld);
  }
}

// dst[r * dst_ld + c] = f(src[c * src_ld + r]) for r < rows, c < cols: the rows x cols matrix
// that src holds column-major, written row-major. In square tiles, so that both sides stream
// through whole cache lines (one side of an element-by-element transpose misses on every entry
// once a matrix outgrows the cache).
template <typename T, typename F>
void CopyTransposed(Index rows, Index cols, const T* src, Index src_ld, T* dst, Index dst_ld,
                    F f) {
  constexpr Index kTile = 32;
  for (Index r0 = 0; r0 < rows; r0 += kTile) {
    const Index r1 = std::min(rows, r0 + kTile);
    for (Index c0 = 0; c0 < cols; c0 += kTile) {
      const Index c1 = std::min(cols, c0 + kTile);
      for (Index r = r0; r < r1; ++r) {
        for (Index c = c0; c < c1; ++c) dst[r * dst_ld + c] = f(src[c * src_ld + r]);
      }
    }
  }
}

// CopyTransposed by chunks of rows on a team (large matrices: the copy is bound by memory
// bandwidth, which two cores have more of than one).
template <typename T, typename F>
void CopyTransposed(ThreadTeam& team, Index rows, Index cols, const T* src, Index src_ld, T* dst,
                    Index dst_ld, F f) {
  const Index chunks = StepChunks(rows, rows * cols);
  team.ForEachRange(rows, chunks, 32, [&](Index b, Index e) {
    CopyTransposed(e - b, cols, src + b, src_ld, dst + b * dst_ld, dst_ld, f);
  });
}

}  // namespace tfsvd
