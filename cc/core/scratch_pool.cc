#include "core/scratch_pool.h"

#include <cstdlib>
#include <deque>
#include <mutex>
#include <new>

namespace tfsvd {

namespace {

struct KeptBlock {
  void* data;
  std::size_t bytes;
};

struct Pool {
  std::mutex mutex;
  std::deque<KeptBlock> blocks;  // oldest first
  std::size_t kept_bytes = 0;
};

// Never destroyed: AlignedArrays in static objects may return blocks during exit.
Pool& ThePool() {
  static Pool* pool = new Pool;
  return *pool;
}

}  // namespace

void* TakeScratch(std::size_t bytes, std::size_t* block_bytes) {
  if (bytes >= kMinKeptBytes) {
    Pool& pool = ThePool();
    std::lock_guard<std::mutex> lock(pool.mutex);
    auto best = pool.blocks.end();
    for (auto it = pool.blocks.begin(); it != pool.blocks.end(); ++it) {
      if (it->bytes >= bytes && it->bytes / 2 <= bytes &&
          (best == pool.blocks.end() || it->bytes < best->bytes)) {
        best = it;
      }
    }
    if (best != pool.blocks.end()) {
      void* data = best->data;
      *block_bytes = best->bytes;
      pool.kept_bytes -= best->bytes;
      pool.blocks.erase(best);
      return data;
    }
  }
  void* data = std::aligned_alloc(kScratchAlignment, bytes);
  if (data == nullptr) throw std::bad_alloc();
  *block_bytes = bytes;
  return data;
}

void ReturnScratch(void* block, std::size_t bytes) {
  if (block == nullptr) return;
  if (bytes < kMinKeptBytes || bytes > kMaxKeptBytes) {
    std::free(block);
    return;
  }
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  while (pool.kept_bytes + bytes > kMaxKeptBytes) {
    std::free(pool.blocks.front().data);
    pool.kept_bytes -= pool.blocks.front().bytes;
    pool.blocks.pop_front();
  }
  pool.blocks.push_back({block, bytes});
  pool.kept_bytes += bytes;
}

std::size_t KeptScratchBytes() {
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  return pool.kept_bytes;
}

}  // namespace tfsvd
