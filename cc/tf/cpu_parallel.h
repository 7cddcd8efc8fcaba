// Splits a batch of independent matrices across TensorFlow's intra-op CPU pool.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/denormal.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tfsvd {

// Runs work(begin, end) over [0, batch) on the pool; cost_per_matrix is in flops.
//
// TensorFlow runs kernels with denormals flushed to zero; LAPACK's scaling of tiny matrices relies
// on gradual underflow (without it, spectra reaching 1e-300 lost all accuracy), so each range
// runs with denormals kept, on whichever pool thread executes it.
template <typename Work>
void ForEachMatrixRange(tensorflow::OpKernelContext* ctx, std::int64_t batch,
                        double cost_per_matrix, Work&& work) {
  if (batch <= 0) return;
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const double capped = std::min(cost_per_matrix, 1e15);
  tensorflow::Shard(workers->num_threads, workers->workers, batch,
                    static_cast<std::int64_t>(capped),
                    [&work](std::int64_t begin, std::int64_t end) {
                      tsl::port::ScopedDontFlushDenormal keep_denormals;
                      work(begin, end);
                    });
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
