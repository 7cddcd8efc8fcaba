// Scalar traits shared by every kernel: real type of a (possibly complex) scalar, conj, |z|^2.
// Written as host/device inline functions so the CUDA kernels can reuse them.
#pragma once

#include <cmath>
#include <complex>
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define TFSVD_HD __host__ __device__
#else
#define TFSVD_HD
#endif

namespace tfsvd {

using Index = std::int64_t;  // every size and offset; int32 overflows past 2^31 elements

template <typename T> struct ScalarTraits {
  using Real = T;
  static constexpr bool kComplex = false;
};
template <typename R> struct ScalarTraits<std::complex<R>> {
  using Real = R;
  static constexpr bool kComplex = true;
};
template <typename T> using RealOf = typename ScalarTraits<T>::Real;
template <typename T> inline constexpr bool kIsComplex = ScalarTraits<T>::kComplex;

template <typename R> TFSVD_HD inline R Conj(R x) { return x; }
template <typename R> inline std::complex<R> Conj(const std::complex<R>& x) { return std::conj(x); }

// |z|^2 computed the same way everywhere, so "largest entry" ties resolve identically.
template <typename R> TFSVD_HD inline R AbsSquared(R x) { return x * x; }
template <typename R> inline R AbsSquared(const std::complex<R>& x) {
  return x.real() * x.real() + x.imag() * x.imag();
}

template <typename R> inline bool IsFinite(R x) { return std::isfinite(x); }
template <typename R> inline bool IsFinite(const std::complex<R>& x) {
  return std::isfinite(x.real()) && std::isfinite(x.imag());
}

template <typename R> inline R RealPart(R x) { return x; }
template <typename R> inline R RealPart(const std::complex<R>& x) { return x.real(); }
template <typename R> inline R ImagPart(R) { return R(0); }
template <typename R> inline R ImagPart(const std::complex<R>& x) { return x.imag(); }

}  // namespace tfsvd
