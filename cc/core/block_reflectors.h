// A product of Householder reflectors Q = H_1 H_2 ... H_k applied to large matrices by a
// ThreadTeam, in blocks (the compact WY form I - V T V^H of Schreiber and Van Loan).
//
// The reflectors are those LAPACK leaves: column-stored below the diagonal (geqrf, and gebrd's
// Q), or row-stored right of the diagonal (gebrd's P), each with an implicit leading 1. The
// triangular factors T of all blocks are formed once, in parallel; then each chunk of the target's
// columns (or rows) takes every block in turn, so a whole application is a single team step.
// Chunks depend only on the sizes. This does what ormqr/ormbr do, with larger blocks (faster
// matrix products) and without recomputing T for every chunk.
#pragma once

#include "core/scalar.h"
#include "core/thread_team.h"
#include "core/workspace.h"

namespace tfsvd {

// c (rows x cols) := (I - V T V^H) c, or with `adjoint` (I - V T^H V^H) c, for one block given
// explicitly: V rows x count (ldv) with its unit diagonal and zeros, T count x count upper
// triangular with zeros below (ldt). By row chunks: each chunk's part of W = V^H c, the parts
// summed in chunk order, then c -= V (T W) chunk by chunk. For c with many rows and few
// columns, where column chunks would each re-read all of V. scratch is resized as needed.
template <typename T>
void ApplyBlockByRows(ThreadTeam& team, bool adjoint, Index rows, Index cols, Index count,
                      const T* v, Index ldv, const T* t, Index ldt, T* c, Index ldc,
                      AlignedArray<T>& scratch);

template <typename T>
class BlockReflectors {
 public:
  // k reflectors of order `order` stored column-wise (storev 'C': reflector i in column i of v,
  // from row i) or row-wise ('R': in row i, from column i), scalars tau. Both are copied (into
  // the blocks' explicit V and T), so they need not outlive this call.
  void Prepare(ThreadTeam& team, char storev, Index order, Index k, const T* v, Index ldv,
               const T* tau);

  // c := Q c, for c order x cols.
  void ApplyLeft(ThreadTeam& team, Index cols, T* c, Index ldc);

  // c := c Q^H, for c rows x order.
  void ApplyRightAdjoint(ThreadTeam& team, Index rows, T* c, Index ldc);

 private:
  static constexpr Index kBlock = 64;
  Index blocks() const { return (k_ + kBlock - 1) / kBlock; }
  Index VOffset(Index block) const;  // where block's explicit V starts in v_full_

  char storev_ = 'C';
  Index order_ = 0, k_ = 0;
  AlignedArray<T> t_;       // kBlock x kBlock per block
  AlignedArray<T> v_full_;  // per block, V with its unit diagonal and zeros (see Prepare)
  AlignedArray<T> work_;    // the applications' workspace (W and T W per chunk)
};

}  // namespace tfsvd
