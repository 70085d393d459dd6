#pragma once
// Dynamic batching by token budget. HTTP handlers tokenize and submit a request's sequences; one
// worker thread packs the queued sequences of requests that share a policy, in arrival order, into
// one forward pass of at most max_batch_tokens tokens (Sieve's batches are packed, with no padding,
// so the budget counts real tokens only), and hands each request its results when its last
// sequence is done. While a forward pass runs, new requests queue, so batches grow with load and
// a lone request never waits for company.
//
// Admission is bounded: at most max_requests requests are queued or running; submit() refuses the
// next one (the server answers 429). A request that times out is cancelled: its sequences not yet
// started are skipped.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/text_model.h"
#include "serving/metrics.h"

namespace sieve::serving {

enum class Task {
  Embed,         // values = the model's sentence embedding (TextModel::embedding)
  EmbedRaw,      // values = the pooled vector before normalization (TEI's normalize: false)
  Classify,      // values = classifier logits (BertEncoder::classify)
};

struct SequenceResult {
  std::vector<float> values;
  int64_t input_tokens = 0;
  int64_t computed_tokens = 0;  // sum over layers of the tokens this sequence's FFN ran on
  int layers_run = 0;
};

// One request's work. The handler that submitted it waits on it; the worker fills it.
class Job {
 public:
  Job(Task task, std::string policy, std::vector<EncoderInput> inputs);
  // Waits until every sequence is done, the job failed, or `timeout` passed (then false).
  bool wait_for(std::chrono::steady_clock::duration timeout);
  // Marks the job abandoned: sequences not started yet are skipped.
  void cancel();

  const std::vector<SequenceResult>& results() const { return results_; }
  std::exception_ptr error() const { return error_; }
  const std::string& policy() const { return policy_; }

 private:
  friend class InferenceQueue;
  Task task_;
  std::string policy_;
  std::vector<EncoderInput> inputs_;
  std::vector<SequenceResult> results_;
  std::chrono::steady_clock::time_point submitted_;
  // Guarded by the queue's mutex while queued; done_/error_ published through done_mutex_.
  size_t next_ = 0;       // first sequence not yet taken into a batch
  size_t finished_ = 0;   // sequences whose results are in
  bool cancelled_ = false;
  std::mutex done_mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

struct QueueOptions {
  int64_t max_batch_tokens = 16384;
  size_t max_requests = 512;  // queued or running
  int threads = 0;            // OpenMP threads of the worker's forward passes (0 = all cores)
  // true: the queue starts its own worker thread. false: the owner calls run_worker() on a thread
  // of its choice (Server runs it on the thread that loaded the model; see Server::run()).
  bool own_worker_thread = true;
};

class InferenceQueue {
 public:
  // `model` and `metrics` must outlive the queue. Policy specs submitted later must have been
  // checked with parse_policy_spec (the worker parses them again, one fresh policy per batch).
  InferenceQueue(const TextModel& model, QueueOptions options, ServerMetrics* metrics);
  ~InferenceQueue();
  InferenceQueue(const InferenceQueue&) = delete;
  InferenceQueue& operator=(const InferenceQueue&) = delete;

  // Null when max_requests are already admitted (or the queue is shutting down).
  std::shared_ptr<Job> submit(Task task, const std::string& policy, std::vector<EncoderInput> inputs);
  // Finishes every admitted request, then stops the worker. Idempotent. With a worker run by the
  // owner (run_worker()), it asks that loop to end once the queue is empty and returns at once.
  void shutdown();
  // The worker loop on the calling thread, until shutdown(); only without own_worker_thread.
  void run_worker();

  size_t admitted() const;  // requests queued or running

 private:
  struct Batch {
    std::string policy;
    std::vector<std::pair<std::shared_ptr<Job>, size_t>> items;  // (job, sequence index)
  };
  void work();
  bool take_batch(Batch& batch);  // under mutex_; false when stopping with nothing left
  void run_batch(const Batch& batch);
  void finish(Job& job, std::exception_ptr error);
  void publish_depth();  // under mutex_

  const TextModel& model_;
  QueueOptions options_;
  ServerMetrics* metrics_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;  // jobs with sequences not yet taken
  size_t admitted_ = 0;
  size_t queued_sequences_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace sieve::serving
