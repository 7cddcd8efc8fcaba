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
void BlockReflectors<T>::Prepare(ThreadTeam& team, char storev, Index order, Index k, const T* v,
                                 Index ldv, const T* tau) {
  storev_ = storev;
  order_ = order;
  k_ = k;
  v_ = v;
  ldv_ = ldv;
  t_.Resize(std::max<Index>(1, blocks() * kBlock * kBlock));
  team.ForEachChunk(blocks(), [&](Index block) {
    const Index first = block * kBlock, count = std::min(kBlock, k - first);
    // Reflector `first` starts at entry (first, first) in either storage.
    lapack::Larft<T>(storev, I32(order - first), I32(count), v + first + first * ldv, I32(ldv),
                     tau + first, t_.data() + block * kBlock * kBlock, I32(kBlock));
  });
}

template <typename T>
void BlockReflectors<T>::ApplyLeft(ThreadTeam& team, Index cols, T* c, Index ldc) {
  if (k_ == 0 || cols == 0) return;
  work_.Resize(cols * kBlock);
  const Index chunks = StepChunks(cols, order_ * cols);
  team.ForEachChunk(chunks, [&](Index chunk) {
    Index b, end;
    ChunkBounds(cols, chunks, kChunkAlign, chunk, &b, &end);
    if (b == end) return;
    T* work = work_.data() + b * kBlock;
    // Q C = B_1 (B_2 (... (B_last C))): the last block first.
    for (Index block = blocks() - 1; block >= 0; --block) {
      const Index first = block * kBlock, count = std::min(kBlock, k_ - first);
      lapack::Larfb<T>('L', 'N', storev_, I32(order_ - first), I32(end - b), I32(count),
                       v_ + first + first * ldv_, I32(ldv_), t_.data() + block * kBlock * kBlock,
                       I32(kBlock), c + first + b * ldc, I32(ldc), work, I32(end - b));
    }
  });
}

template <typename T>
void BlockReflectors<T>::ApplyRightAdjoint(ThreadTeam& team, Index rows, T* c, Index ldc) {
  if (k_ == 0 || rows == 0) return;
  work_.Resize(rows * kBlock);
  const Index chunks = StepChunks(rows, order_ * rows);
  team.ForEachChunk(chunks, [&](Index chunk) {
    Index b, end;
    ChunkBounds(rows, chunks, kChunkAlign, chunk, &b, &end);
    if (b == end) return;
    T* work = work_.data() + b * kBlock;
    // C Q^H = ((C B_last^H) ...) B_1^H: the last block first here too.
    for (Index block = blocks() - 1; block >= 0; --block) {
      const Index first = block * kBlock, count = std::min(kBlock, k_ - first);
      lapack::Larfb<T>('R', 'C', storev_, I32(end - b), I32(order_ - first), I32(count),
                       v_ + first + first * ldv_, I32(ldv_), t_.data() + block * kBlock * kBlock,
                       I32(kBlock), c + b + first * ldc, I32(ldc), work, I32(end - b));
    }
  });
}

template class BlockReflectors<float>;
template class BlockReflectors<double>;
template class BlockReflectors<std::complex<float>>;
template class BlockReflectors<std::complex<double>>;

}  // namespace tfsvd
