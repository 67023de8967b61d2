#pragma once
// A counting global operator new, for the tests that prove a code path makes no heap allocation
// (decode steps, plan-reusing forwards). Include this header in exactly one translation unit of a
// test executable: it replaces the global allocation functions of the whole program.
//
//   ssm_test::allocation_scope scope;
//   step(...);                              // the code under test
//   CHECK(scope.allocations() == 0);
//
// The counter is per thread, so Catch2's own bookkeeping on other threads cannot disturb it.
// Under AddressSanitizer, run with ASAN_OPTIONS=alloc_dealloc_mismatch=0 (the asan test preset
// does): allocations made inside libstdc++ still go through ASan's operator new and come back
// through this file's operator delete, a pair ASan would report as mismatched although both ends
// are malloc and free.
#include <cstddef>
#include <cstdlib>
#include <new>

namespace ssm_test {

inline thread_local std::size_t allocation_counter = 0;

/// Counts the allocations made on this thread while it is alive.
class allocation_scope {
 public:
  allocation_scope() noexcept : start_(allocation_counter) {}
  std::size_t allocations() const noexcept { return allocation_counter - start_; }

 private:
  std::size_t start_;
};

}  // namespace ssm_test

// The replacements allocate with malloc and release with free, which GCC's
// -Wmismatched-new-delete cannot see through once it inlines them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
  ++ssm_test::allocation_counter;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, std::align_val_t alignment) {
  ++ssm_test::allocation_counter;
  const auto a = static_cast<std::size_t>(alignment);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t alignment) { return ::operator new(size, alignment); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
