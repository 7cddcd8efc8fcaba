#include "core/block_reflectors.h"

#include <algorithm>
#include <complex>

#include "core/bidiagonalize.h"
#include "core/lapack.h"

namespace tfsvd {

namespace {

constexpr Index kChunkAlign = 16;

inline lapack::Int I32(Index x) { return static_cast<lapack::Int>(x); }

}  // namespace

template <typename T>
void ApplyBlockByRows(ThreadTeam& team, bool adjoint, Index rows, Index cols, Index count,
                      const T* v, Index ldv, const T* t, Index ldt, T* c, Index ldc,
                      AlignedArray<T>& scratch) {
  if (rows == 0 || cols == 0 || count == 0) return;
  const Index chunks = StepChunks(rows, rows * cols);
  const Index block = count * cols;
  scratch.Resize((chunks + 1) * block);
  T* const parts = scratch.data();        // chunk i's part of V^H c at parts + i * block
  T* const w = parts + chunks * block;    // T W (or T^H W)
  team.ForEachChunk(chunks, [&](Index chunk) {
    Index b, e;
    ChunkBounds(rows, chunks, kChunkAlign, chunk, &b, &e);
    T* part = parts + chunk * block;
    if (b == e) {
      std::fill(part, part + block, T(0));
      return;
    }
    lapack::Gemm<T>('C', 'N', I32(count), I32(cols), I32(e - b), T(1), v + b, I32(ldv), c + b,
                    I32(ldc), T(0), part, I32(count));
  });
  for (Index chunk = 1; chunk < chunks; ++chunk) {
    const T* part = parts + chunk * block;
    for (Index x = 0; x < block; ++x) parts[x] += part[x];
  }
  lapack::Gemm<T>(adjoint ? 'C' : 'N', 'N', I32(count), I32(cols), I32(count), T(1), t, I32(ldt),
                  parts, I32(count), T(0), w, I32(count));
  team.ForEachRange(rows, chunks, kChunkAlign, [&](Index b, Index e) {
    lapack::Gemm<T>('N', 'N', I32(e - b), I32(cols), I32(count), T(-1), v + b, I32(ldv), w,
                    I32(count), T(1), c + b, I32(ldc));
  });
}

template <typename T>
void BlockReflectors<T>::Prepare(ThreadTeam& team, char storev, Index order, Index k, const T* v,
                                 Index ldv, const T* tau) {
  storev_ = storev;
  order_ = order;
  k_ = k;
  t_.Resize(std::max<Index>(1, blocks() * kBlock * kBlock));
  v_full_.Resize(std::max<Index>(1, VOffset(blocks())));
  team.ForEachChunk(blocks(), [&](Index block) {
    const Index first = block * kBlock, count = std::min(kBlock, k - first);
    const Index len = order - first;  // the block's reflectors act on entries [first, order)
    // Reflector `first` starts at entry (first, first) in either storage.
    const T* vb = v + first + first * ldv;
    T* t = t_.data() + block * kBlock * kBlock;
    std::fill(t, t + kBlock * kBlock, T(0));
    lapack::Larft<T>(storev, I32(len), I32(count), vb, I32(ldv), tau + first, t, I32(kBlock));
    // V with its unit diagonal and zeros on the other side, so that applying the block is three
    // plain matrix products: column-wise len x count (ld len), row-wise count x len (ld count).
    // Each loop runs along the stored columns, so that both sides are read and written in order.
    T* full = v_full_.data() + VOffset(block);
    const auto entry = [](Index i, Index r, T stored) {
      return i < r ? T(0) : (i == r ? T(1) : stored);
    };
    if (storev == 'C') {
      for (Index r = 0; r < count; ++r) {
        for (Index i = 0; i < len; ++i) full[i + r * len] = entry(i, r, vb[i + r * ldv]);
      }
    } else {
      for (Index i = 0; i < len; ++i) {
        for (Index r = 0; r < count; ++r) full[r + i * count] = entry(i, r, vb[r + i * ldv]);
      }
    }
  });
}

template <typename T>
Index BlockReflectors<T>::VOffset(Index block) const {
  // Each block b < `block` holds kBlock x (order - b kBlock) entries.
  return kBlock * (block * order_ - kBlock * (block * (block - 1) / 2));
}

template <typename T>
void BlockReflectors<T>::ApplyLeft(ThreadTeam& team, Index cols, T* c, Index ldc) {
  if (k_ == 0 || cols == 0) return;
  if (storev_ == 'C' && order_ >= 4 * cols) {
    // Tall and narrow (the QR's Q on thin vectors): each block by row chunks.
    for (Index block = blocks() - 1; block >= 0; --block) {
      const Index first = block * kBlock, count = std::min(kBlock, k_ - first);
      const Index len = order_ - first;
      ApplyBlockByRows(team, false, len, cols, count, v_full_.data() + VOffset(block), len,
                       t_.data() + block * kBlock * kBlock, kBlock, c + first, ldc, work_);
    }
    return;
  }
  work_.Resize(2 * cols * kBlock);
  const Index chunks = StepChunks(cols, order_ * cols);
  team.ForEachRange(cols, chunks, kChunkAlign, [&](Index b, Index end) {
    const Index w = end - b;
    T* w1 = work_.data() + 2 * b * kBlock;  // count x w each
    T* w2 = w1 + w * kBlock;
    // Q C = B_1 (B_2 (... (B_last C))), B = I - V T V^H: the last block first.
    for (Index block = blocks() - 1; block >= 0; --block) {
      const Index first = block * kBlock, count = std::min(kBlock, k_ - first);
      const Index len = order_ - first;
      const T* full = v_full_.data() + VOffset(block);
      const T* t = t_.data() + block * kBlock * kBlock;
      T* cb = c + first + b * ldc;
      lapack::Gemm<T>('C', 'N', I32(count), I32(w), I32(len), T(1), full, I32(len), cb, I32(ldc),
                      T(0), w1, I32(count));
      lapack::Gemm<T>('N', 'N', I32(count), I32(w), I32(count), T(1), t, I32(kBlock), w1,
                      I32(count), T(0), w2, I32(count));
      lapack::Gemm<T>('N', 'N', I32(len), I32(w), I32(count), T(-1), full, I32(len), w2,
                      I32(count), T(1), cb, I32(ldc));
    }
  });
}

template <typename T>
void BlockReflectors<T>::ApplyRightAdjoint(ThreadTeam& team, Index rows, T* c, Index ldc) {
  if (k_ == 0 || rows == 0) return;
  work_.Resize(2 * rows * kBlock);
  const Index chunks = StepChunks(rows, order_ * rows);
  team.ForEachRange(rows, chunks, kChunkAlign, [&](Index b, Index end) {
    const Index h = end - b;
    T* w1 = work_.data() + 2 * b * kBlock;  // h x count each
    T* w2 = w1 + h * kBlock;
    // C Q^H = ((C B_last^H) ...) B_1^H: the last block first here too. Row-wise
    // B = I - V^H T V, so C B^H = C - (C V^H) T^H V; column-wise B = I - V T V^H, so
    // C B^H = C - (C V) T^H V^H.
    for (Index block = blocks() - 1; block >= 0; --block) {
      const Index first = block * kBlock, count = std::min(kBlock, k_ - first);
      const Index len = order_ - first;
      const T* full = v_full_.data() + VOffset(block);
      const T* t = t_.data() + block * kBlock * kBlock;
      T* cb = c + b + first * ldc;
      const bool rowwise = storev_ == 'R';
      lapack::Gemm<T>('N', rowwise ? 'C' : 'N', I32(h), I32(count), I32(len), T(1), cb, I32(ldc),
                      full, I32(rowwise ? count : len), T(0), w1, I32(h));
      lapack::Gemm<T>('N', 'C', I32(h), I32(count), I32(count), T(1), w1, I32(h), t,
                      I32(kBlock), T(0), w2, I32(h));
      lapack::Gemm<T>('N', rowwise ? 'N' : 'C', I32(h), I32(len), I32(count), T(-1), w2, I32(h),
                      full, I32(rowwise ? count : len), T(1), cb, I32(ldc));
    }
  });
}

template class BlockReflectors<float>;
template class BlockReflectors<double>;
template class BlockReflectors<std::complex<float>>;
template class BlockReflectors<std::complex<double>>;


#define TFSVD_INSTANTIATE(T)                                                                      \
  template void ApplyBlockByRows<T>(ThreadTeam&, bool, Index, Index, Index, const T*, Index,     \
                                    const T*, Index, T*, Index, AlignedArray<T>&);
TFSVD_INSTANTIATE(float)
TFSVD_INSTANTIATE(double)
TFSVD_INSTANTIATE(std::complex<float>)
TFSVD_INSTANTIATE(std::complex<double>)
#undef TFSVD_INSTANTIATE

}  // namespace tfsvd
