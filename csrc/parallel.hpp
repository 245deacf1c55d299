// Static fork-join over an element range. Work is elementwise everywhere in the core, so the
// split never changes a result: outputs are bitwise identical for any thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace lf {

constexpr int kMaxThreads = 256;
constexpr size_t kParallelGrain = size_t{1} << 16;  // elements per extra thread, at least

// 0 -> hardware concurrency (at least 1); otherwise clamped to [1, kMaxThreads].
inline int resolve_threads(int threads) {
  if (threads <= 0) {
    const unsigned hw = std::thread::hardware_concurrency();
    threads = hw == 0 ? 1 : static_cast<int>(hw);
  }
  return std::min(std::max(threads, 1), kMaxThreads);
}

// Calls fn(begin, end) on disjoint chunks covering [0, n). Chunk borders are multiples of
// `align`; a thread is used only per `grain` elements. fn must not throw.
template <class Fn>
void parallel_for(size_t n, int threads, size_t grain, size_t align, Fn&& fn) {
  if (n == 0) return;
  const size_t by_grain = std::max<size_t>(1, n / std::max<size_t>(grain, 1));
  const size_t workers = std::min(static_cast<size_t>(resolve_threads(threads)), by_grain);
  if (workers <= 1) {
    fn(size_t{0}, n);
    return;
  }
  size_t chunk = (n + workers - 1) / workers;
  chunk = (chunk + align - 1) / align * align;
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  size_t begin = chunk;  // the calling thread takes [0, chunk)
  for (; begin < n; begin += chunk) {
    const size_t end = std::min(n, begin + chunk);
    try {
      pool.emplace_back([&fn, begin, end] { fn(begin, end); });
    } catch (...) {  // could not start a thread: do the rest here
      fn(begin, n);
      break;
    }
  }
  fn(size_t{0}, std::min(n, chunk));
  for (auto& t : pool) t.join();
}

}  // namespace lf
