// Large scratch blocks kept between calls for reuse.
//
// Every call of the SVD or its gradient builds its solvers afresh, and a 768 x 768 float32 matrix
// needs about 20 MB of scratch. Freed, such blocks go back to the system (glibc unmaps or trims
// them), and the next call pays again for page faults and zeroed pages: 2x768x768 fwd+bwd through
// TensorFlow took 86-87 ms with fresh blocks and 82 ms with kept ones (min of 30, 2-core Xeon).
// Smaller blocks pay too: glibc maps a block it has just unmapped afresh when the same size is
// asked for again, so a lone 1000x48 float32 Jacobi matrix (192 KB of B, 220 KB of kernel
// scratch) spent 233k of its 1780k cycles in page faults while it scaled its input, and 26k with
// the blocks kept (2-core AMD Zen 3, one thread; 640x64: 228k and 25k). So blocks of
// kMinKeptBytes and more are kept, up to kMaxKeptBytes in all for the process, and handed out
// again to requests of up to their size (and at least half of it).
#pragma once

#include <cstddef>

namespace tfsvd {

inline constexpr std::size_t kScratchAlignment = 64;
inline constexpr std::size_t kMinKeptBytes = std::size_t{64} << 10;
inline constexpr std::size_t kMaxKeptBytes = std::size_t{256} << 20;

// A block of at least `bytes` bytes (a multiple of kScratchAlignment), aligned to
// kScratchAlignment: the smallest kept one that fits, else a new one of `bytes`. *block_bytes gets
// its size. Its contents are undefined. Throws std::bad_alloc.
void* TakeScratch(std::size_t bytes, std::size_t* block_bytes);

// Gives back a block from TakeScratch with its size (null is ignored). It is kept when large
// enough; the oldest kept blocks are freed while the total would exceed kMaxKeptBytes.
void ReturnScratch(void* block, std::size_t bytes);

// The bytes kept now (tests).
std::size_t KeptScratchBytes();

}  // namespace tfsvd
