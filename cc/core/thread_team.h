// Threads working together on one large matrix, framework-free.
//
// A kernel that factors a single large matrix splits each step into a fixed number of chunks that
// depends only on the problem's shape, never on how many threads run them, so a matrix gets the
// same bits with 1, 2 or 64 threads, alone or inside a batch. The threads come from the framework
// (TensorFlow's intra-op pool, or std::threads in the pybind11 module) through a ThreadLender; a
// team borrows them for the duration of one factorisation.
#pragma once

#include <functional>
#include <memory>
#include <type_traits>

#include "core/scalar.h"

namespace tfsvd {

// How many chunks a step that touches `elements` matrix entries is cut into along a dimension of
// `length`: 1 when the step is too small for a team to pay off, else chunks of at least 64 (at
// most 8). A function of the sizes only, as the chunks must be.
Index StepChunks(Index length, Index elements);
inline constexpr Index kMaxStepChunks = 8;  // the most StepChunks returns

// Bounds [*begin, *end) of chunk `chunk` when [0, length) is cut into `chunks` pieces whose
// boundaries are multiples of `align` (the last piece takes the remainder; trailing pieces may be
// empty).
inline void ChunkBounds(Index length, Index chunks, Index align, Index chunk, Index* begin,
                        Index* end) {
  Index per = (length + chunks - 1) / chunks;
  per = (per + align - 1) / align * align;
  *begin = chunk * per < length ? chunk * per : length;
  *end = (chunk + 1) * per < length ? (chunk + 1) * per : length;
}

// Lends threads of a pool to a ThreadTeam.
class ThreadLender {
 public:
  virtual ~ThreadLender() = default;
  // How many threads besides the caller may work at the same time without oversubscribing the
  // cores (0: the caller works alone).
  virtual int MaxHelpers() const = 0;
  // Runs `fn` on a pool thread, soon or late; never inline on the calling thread.
  virtual void Lend(std::function<void()> fn) = 0;
};

// The caller plus up to `helpers` borrowed threads. Helpers that the pool starts late (it may be
// busy) simply join late; ForEachChunk never waits for a helper to arrive, the caller runs
// whatever nobody else has claimed. Each member first takes the chunks of its own contiguous share
// of every step, so consecutive steps over the same data find it in the same core's cache.
// Helpers spin briefly between steps and then sleep, so long sequential phases of the caller cost
// the pool nothing. Each helper runs with the caller's floating-point control state (denormal
// handling, rounding), so every chunk rounds the same wherever it runs. Not copyable; one caller
// thread at a time.
class ThreadTeam {
 public:
  // lender may be null (no helpers).
  ThreadTeam(ThreadLender* lender, int helpers);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  // fn(chunk) for every chunk in [0, chunks), spread over the team; returns when all are done.
  // Calls for different chunks may run concurrently and must write disjoint memory.
  template <class Fn>
  void ForEachChunk(Index chunks, Fn&& fn) {
    if (chunks <= 0) return;
    if (chunks == 1 || state_ == nullptr) {
      for (Index c = 0; c < chunks; ++c) fn(c);
      return;
    }
    using Callable = std::remove_reference_t<Fn>;
    Run(chunks, [](void* f, Index c) { (*static_cast<Callable*>(f))(c); }, &fn);
  }

  // fn(begin, end) for every non-empty piece [begin, end) of [0, length) when it is cut into
  // `chunks` pieces aligned to `align` (ChunkBounds), spread over the team like ForEachChunk.
  template <class Fn>
  void ForEachRange(Index length, Index chunks, Index align, Fn&& fn) {
    ForEachChunk(chunks, [&](Index chunk) {
      Index begin, end;
      ChunkBounds(length, chunks, align, chunk, &begin, &end);
      if (begin < end) fn(begin, end);
    });
  }

 private:
  struct State;
  void Run(Index chunks, void (*invoke)(void*, Index), void* fn);
  std::shared_ptr<State> state_;
};

}  // namespace tfsvd
