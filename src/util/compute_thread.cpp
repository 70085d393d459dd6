#include "util/compute_thread.h"

#include <unistd.h>

namespace sieve {

ComputeThread& ComputeThread::instance() {
  // Never destroyed: the thread waits for work until the process ends (joining it from a static
  // destructor could deadlock with an interpreter that is shutting down).
  static std::mutex guard;
  static ComputeThread* current = nullptr;
  static pid_t owner = 0;
  std::lock_guard lock(guard);
  if (!current || owner != ::getpid()) {
    current = new ComputeThread();
    owner = ::getpid();
  }
  return *current;
}

ComputeThread::ComputeThread() {
  std::thread worker([this] { loop(); });
  id_ = worker.get_id();
  worker.detach();
}

void ComputeThread::post(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void ComputeThread::loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return !jobs_.empty(); });
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();  // a packaged_task: its exception goes to the caller's future
  }
}

}  // namespace sieve
