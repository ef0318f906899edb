// Contract: the CPU backend's one parallel loop. Work is split into one
// contiguous block per thread (static partitioning), so the assignment of
// elements to threads depends only on n and the thread count; small loops run
// serially to keep per-node overhead under a microsecond.
#pragma once

#include <cstdint>

#ifdef REMAT_HAVE_OPENMP
#include <omp.h>
#endif

namespace remat::cpu {

inline constexpr std::int64_t serial_below = 1 << 15;

// Calls body(begin, end) over disjoint blocks covering [0, n).
// `work_per_item` scales the serial threshold for expensive items.
template <class Body>
void parallel_blocks(std::int64_t n, Body&& body, std::int64_t work_per_item = 1) {
  if (n <= 0) return;
#ifdef REMAT_HAVE_OPENMP
  if (n * work_per_item >= serial_below && omp_get_max_threads() > 1) {
#pragma omp parallel
    {
      std::int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      std::int64_t begin = n * t / threads, end = n * (t + 1) / threads;
      if (begin < end) body(begin, end);
    }
    return;
  }
#endif
  body(std::int64_t{0}, n);
}

}  // namespace remat::cpu
