// ComputeThread: every call runs on the one compute thread, returns its result or rethrows, and
// calls from several threads at once all complete.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

#include "util/compute_thread.h"

namespace sieve {
namespace {

TEST(ComputeThread, RunsOnOneOtherThreadAndReturnsTheResult) {
  ComputeThread& compute = ComputeThread::instance();
  EXPECT_EQ(&compute, &ComputeThread::instance());
  const std::thread::id caller = std::this_thread::get_id();
  const std::thread::id first = compute.run([] { return std::this_thread::get_id(); });
  EXPECT_NE(first, caller);
  EXPECT_EQ(compute.run([] { return std::this_thread::get_id(); }), first);
  EXPECT_EQ(compute.run([] { return std::string("forty") + "-two"; }), "forty-two");
  int side_effect = 0;
  compute.run([&] { side_effect = 7; });
  EXPECT_EQ(side_effect, 7);
  // A call made from the compute thread runs in place instead of waiting for itself.
  EXPECT_EQ(compute.run([&] { return compute.run([] { return std::this_thread::get_id(); }); }), first);
}

TEST(ComputeThread, RethrowsTheCallsException) {
  EXPECT_THROW(ComputeThread::instance().run([]() -> int { throw std::runtime_error("bad input"); }), std::runtime_error);
  EXPECT_EQ(ComputeThread::instance().run([] { return 3; }), 3);  // and keeps working
}

TEST(ComputeThread, CallsFromManyThreadsAllRunThere) {
  ComputeThread& compute = ComputeThread::instance();
  const std::thread::id worker = compute.run([] { return std::this_thread::get_id(); });
  std::atomic<int> wrong_thread{0}, sum{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t)
    callers.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const int got = compute.run([&] {
          if (std::this_thread::get_id() != worker) ++wrong_thread;
          int local = 0;
#pragma omp parallel for reduction(+ : local) num_threads(2)
          for (int k = 0; k <= t; ++k) local += 1;
          return local;
        });
        sum += got;
      }
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_EQ(sum.load(), 50 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8));
}

}  // namespace
}  // namespace sieve
