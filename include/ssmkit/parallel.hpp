#pragma once
/// \file parallel.hpp
/// `ssmkit::parallel_for`, the one way ssmkit runs work on several threads.
///
/// With SSMKIT_OPENMP=1 in a translation unit compiled with OpenMP, the range is split into
/// contiguous blocks over an OpenMP team (static schedule: each thread gets neighbouring indices,
/// which keeps its data in its own cache). Otherwise it is a plain serial loop, in order.
/// The library keeps no thread pool and no global state: OpenMP's runtime owns the threads.

#include <cstddef>
#include <exception>
#include <type_traits>

#include <ssmkit/config.hpp>
#include <ssmkit/error.hpp>

#if SSMKIT_HAS_OPENMP
#include <omp.h>
#endif

namespace ssmkit {

/// How parallel_for may split its range.
struct parallel_options {
  /// Threads to use: 0 means the OpenMP default (OMP_NUM_THREADS, or one per core); 1 runs serially.
  int num_threads = 0;
  /// Indices below which a range is not worth splitting: with fewer than 2 * min_block indices the
  /// loop runs serially on the calling thread.
  std::ptrdiff_t min_block = 1;
};

/// True when parallel_for can run on more than one thread in this translation unit.
constexpr bool parallel_enabled() noexcept { return SSMKIT_HAS_OPENMP != 0; }

/// The number of threads parallel_for uses for `num_threads` (0 = default): 1 without OpenMP.
inline int resolved_threads(int num_threads = 0) noexcept {
#if SSMKIT_HAS_OPENMP
  return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  (void)num_threads;
  return 1;
#endif
}

/**
 * Calls `fn(i)` once for every i in [begin, end), possibly from several threads at once.
 *
 * `fn` must be safe to call concurrently for distinct i. Calls for one thread's block happen in
 * increasing i. If calls throw, every thread finishes its block, and the first exception caught
 * is rethrown on the calling thread (OpenMP itself would terminate the program).
 *
 * \pre end >= begin (otherwise nothing runs); options.num_threads >= 0.
 * \throws ssmkit::error when options.num_threads < 0 or options.min_block < 1; whatever fn throws.
 */
template <class Index, class Fn>
void parallel_for(Index begin, Index end, Fn&& fn, const parallel_options& options = {}) {
  static_assert(std::is_integral_v<Index>, "parallel_for: the index must be an integer type");
  detail::require(options.num_threads >= 0, "parallel_for", "num_threads must be >= 0, got ",
                  options.num_threads);
  detail::require(options.min_block >= 1, "parallel_for", "min_block must be >= 1, got ", options.min_block);
  if (!(begin < end)) return;
  const auto count = static_cast<std::ptrdiff_t>(end - begin);
  const int threads = resolved_threads(options.num_threads);
  if (threads <= 1 || count < 2 * options.min_block) {
    for (Index i = begin; i < end; ++i) fn(i);
    return;
  }
#if SSMKIT_HAS_OPENMP
  std::exception_ptr first_error;
#pragma omp parallel num_threads(threads)
  {
    // Static blocks: thread t takes [begin + t*count/n, begin + (t+1)*count/n).
    const auto team = static_cast<std::ptrdiff_t>(omp_get_num_threads());
    const auto t = static_cast<std::ptrdiff_t>(omp_get_thread_num());
    const auto lo = static_cast<Index>(begin + static_cast<Index>(count * t / team));
    const auto hi = static_cast<Index>(begin + static_cast<Index>(count * (t + 1) / team));
    try {
      for (Index i = lo; i < hi; ++i) fn(i);
    } catch (...) {
#pragma omp critical(ssmkit_parallel_for_error)
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
#endif
}

}  // namespace ssmkit
