// Completion of orthonormal columns to an orthonormal basis: the extra columns of full_matrices
// factors (and, on the Jacobi path, the partners of singular values too small to normalise).
#pragma once

#include "core/scalar.h"
#include "core/thread_team.h"

namespace tfsvd {

// Fills columns first..cols-1 of the row-major rows x cols matrix q (rows >= cols) with
// orthonormal columns orthogonal to its columns 0..first-1, which must be orthonormal. Depends
// only on those columns and the sizes, not on `team` (null: the caller alone), which shares the
// large products. x: rows values of scratch.
template <typename T>
void CompleteBasis(T* q, Index rows, Index cols, Index first, T* x, ThreadTeam* team = nullptr);

}  // namespace tfsvd
