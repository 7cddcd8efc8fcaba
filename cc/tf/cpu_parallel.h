// Runs a batch of independent matrices on TensorFlow's intra-op CPU pool: split across the pool
// as far as there are matrices for every thread, the rest one after the other, each with a
// ThreadTeam borrowed from the pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>

#include "core/thread_team.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/denormal.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tfsvd {

// Runs work(begin, end) over [0, batch) on the pool; cost_per_matrix is in flops. Unless
// range_cost picks near-equal ranges of matrices (below), every range but the last starts and
// ends at a multiple of `align` (matrices solved together, as a SIMD group: TF's Shard cuts any
// block size, and a range ending inside a group pays for all of it).
//
// Shard (Eigen's parallelFor) cuts the units into up to 4 blocks per thread and then coarsens them
// to fill every thread's last round, which leaves blocks of unequal size: 10 matrices on 2 threads
// became 3 + 3 + 3 + 1, so one thread solved 6 and the other 4. While there are fewer than
// kEvenSplitUnitsPerThread units per thread, they are instead cut into one near-equal range per
// thread (5 + 5). Where range_cost(count), the estimated cost of a range of count matrices, says
// it is faster, the matrices themselves are cut that way instead: each range may then end in a
// part-filled group, but none is longer than the others (20 64x64 float32 matrices, units of 8:
// as 8 + 12, a group of 8 and a part-filled one of 16; as 10 + 10, a group of 8 and 2 lone
// matrices each). The faster slowest range wins, then the less work in all.
//
// TensorFlow runs kernels with denormals flushed to zero; LAPACK's scaling of tiny matrices relies
// on gradual underflow (without it, spectra reaching 1e-300 lost all accuracy), so each range
// runs with denormals kept, on whichever pool thread executes it.
inline constexpr std::int64_t kEvenSplitUnitsPerThread = 8;

// Whether cutting at matrix_bound(r), r = 0 .. threads, beats cutting at unit_bound(r) by
// range_cost (see ForEachMatrixRange): the faster slowest range, then the less work in all.
template <typename UnitBound, typename MatrixBound, typename RangeCost>
bool MatrixCutBeatsUnitCut(std::int64_t threads, const UnitBound& unit_bound,
                           const MatrixBound& matrix_bound, RangeCost&& range_cost) {
  double unit_max = 0.0, unit_sum = 0.0, matrix_max = 0.0, matrix_sum = 0.0;
  for (std::int64_t r = 0; r < threads; ++r) {
    const double by_units = range_cost(unit_bound(r + 1) - unit_bound(r));
    const double by_matrices = range_cost(matrix_bound(r + 1) - matrix_bound(r));
    unit_max = std::max(unit_max, by_units);
    unit_sum += by_units;
    matrix_max = std::max(matrix_max, by_matrices);
    matrix_sum += by_matrices;
  }
  return matrix_max < unit_max || (matrix_max == unit_max && matrix_sum < unit_sum);
}

inline double CountCost(std::int64_t count) { return static_cast<double>(count); }

template <typename Work, typename RangeCost = double (*)(std::int64_t)>
void ForEachMatrixRange(tensorflow::OpKernelContext* ctx, std::int64_t batch,
                        double cost_per_matrix, std::int64_t align, Work&& work,
                        RangeCost&& range_cost = &CountCost) {
  if (batch <= 0) return;
  align = std::max<std::int64_t>(1, align);
  const std::int64_t units = (batch + align - 1) / align;
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const std::int64_t threads = std::max(1, workers->num_threads);
  const auto run = [&work, align, batch](std::int64_t begin_unit, std::int64_t end_unit) {
    tsl::port::ScopedDontFlushDenormal keep_denormals;
    work(begin_unit * align, std::min(end_unit * align, batch));
  };
  if (units > threads && units < kEvenSplitUnitsPerThread * threads) {
    // Range r starts at unit_bound(r) (units [r units / threads, (r + 1) units / threads)) or at
    // matrix_bound(r) (matrices [r batch / threads, (r + 1) batch / threads)).
    const auto unit_bound = [units, threads, align, batch](std::int64_t r) {
      return std::min(r * units / threads * align, batch);
    };
    const auto matrix_bound = [batch, threads](std::int64_t r) { return r * batch / threads; };
    const bool by_matrices =
        align > 1 && MatrixCutBeatsUnitCut(threads, unit_bound, matrix_bound, range_cost);
    const double capped =
        std::min(cost_per_matrix * static_cast<double>(align * units / threads), 1e15);
    tensorflow::Shard(workers->num_threads, workers->workers, threads,
                      static_cast<std::int64_t>(capped),
                      [&](std::int64_t first, std::int64_t last) {
                        tsl::port::ScopedDontFlushDenormal keep_denormals;
                        if (by_matrices) {
                          work(matrix_bound(first), matrix_bound(last));
                        } else {
                          work(unit_bound(first), unit_bound(last));
                        }
                      });
    return;
  }
  const double capped = std::min(cost_per_matrix * static_cast<double>(align), 1e15);
  tensorflow::Shard(workers->num_threads, workers->workers, units,
                    static_cast<std::int64_t>(capped), run);
}

// Lends threads of the intra-op pool. The kernel itself runs on an inter-op thread (or, eagerly,
// on the caller's), so num_threads - 1 helpers keep num_threads threads busy: the pool's size,
// which is what TensorFlow was told it may use.
class PoolLender : public ThreadLender {
 public:
  explicit PoolLender(tensorflow::OpKernelContext* ctx)
      : workers_(ctx->device()->tensorflow_cpu_worker_threads()) {}
  int MaxHelpers() const override { return std::max(0, workers_->num_threads - 1); }
  void Lend(std::function<void()> fn) override { workers_->workers->Schedule(std::move(fn)); }

 private:
  const tensorflow::DeviceBase::CpuWorkerThreads* workers_;
};

// Runs work(begin, end, team) over [0, batch). When the matrices are too small for a team
// (uses_team false) or the pool has one thread, the batch is split across the pool (team null).
// Otherwise the largest multiple of the pool's size is split across the pool, one matrix per
// thread at a time, and the rest (fewer matrices than threads: all of them for a small batch) run
// in order, each on a team of the pool's threads: a lone last matrix would otherwise keep one
// thread busy while the others wait (3 matrices on 2 threads: 2 rounds one per thread, instead of
// one round and one matrix on both). The results are the same either way (svd.h's contract).
// Ranges split across the pool are aligned to `align` matrices or cut by range_cost, and every
// range runs with denormals kept (see ForEachMatrixRange).
template <typename Work, typename RangeCost = double (*)(std::int64_t)>
void ForEachMatrix(tensorflow::OpKernelContext* ctx, std::int64_t batch, double cost_per_matrix,
                   bool uses_team, std::int64_t align, Work&& work,
                   RangeCost&& range_cost = &CountCost) {
  if (batch <= 0) return;
  PoolLender lender(ctx);
  const std::int64_t threads = std::int64_t{lender.MaxHelpers()} + 1;
  const std::int64_t split = uses_team && threads > 1 ? batch - batch % threads : batch;
  if (split > 0) {
    ForEachMatrixRange(
        ctx, split, cost_per_matrix, align,
        [&work](std::int64_t begin, std::int64_t end) {
          work(begin, end, static_cast<ThreadTeam*>(nullptr));
        },
        range_cost);
  }
  if (split < batch) {
    tsl::port::ScopedDontFlushDenormal keep_denormals;
    ThreadTeam team(&lender, lender.MaxHelpers());  // helpers copy this thread's denormal mode
    work(split, batch, &team);
  }
}

// Product of all but the last two dimensions (valid also when a matrix dimension is 0).
inline std::int64_t BatchSize(const tensorflow::TensorShape& shape) {
  std::int64_t batch = 1;
  for (int i = 0; i + 2 < shape.dims(); ++i) batch *= shape.dim_size(i);
  return batch;
}

// `shape` with its last two dimensions replaced by (rows, cols), or with the last two dropped
// and `cols` appended when rows < 0.
inline tensorflow::TensorShape BatchShapeWith(const tensorflow::TensorShape& shape,
                                              std::int64_t rows, std::int64_t cols) {
  tensorflow::TensorShape out;
  for (int i = 0; i + 2 < shape.dims(); ++i) out.AddDim(shape.dim_size(i));
  if (rows >= 0) out.AddDim(rows);
  out.AddDim(cols);
  return out;
}

}  // namespace tfsvd
