#pragma once
// One thread per process that runs the library's parallel work for callers that may come from
// any thread (the Python package: whichever Python thread calls). Why: libgomp lets its idle
// workers spin between parallel regions only while it manages no more threads than there are
// cores, and every thread that runs a parallel region owns an OpenMP team of its own. A model
// loaded on one thread and run from another made two teams on a 2-core machine, and from then on
// every parallel region put its workers to sleep and woke them again (a test program: 40 us a
// region instead of 1.7; `sieve serve`, which now runs its forward passes on the loading thread
// instead: 5.2 -> 2.4 ms for a 25-token pass).
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

namespace sieve {

class ComputeThread {
 public:
  // The process's compute thread, started on first use (and again in a child process after
  // fork(), which copies no threads).
  static ComputeThread& instance();

  // Runs f() on the compute thread and returns its result or rethrows its exception. Calls from
  // several threads run one after another; a call from the compute thread itself runs in place.
  template <class F>
  std::invoke_result_t<F&> run(F&& f) {
    if (std::this_thread::get_id() == id_) return f();
    std::packaged_task<std::invoke_result_t<F&>()> task([&f] { return f(); });
    auto result = task.get_future();
    post([&task] { task(); });
    return result.get();
  }

  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

 private:
  ComputeThread();
  void post(std::function<void()> job);
  void loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  std::thread::id id_;
};

}  // namespace sieve
