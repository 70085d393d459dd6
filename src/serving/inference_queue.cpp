#include "serving/inference_queue.h"

#include <omp.h>

#include <algorithm>

#include "kernels/gemm.h"
#include "model/text_embedder.h"
#include "policies/policy_spec.h"
#include "util/error.h"

namespace sieve::serving {

namespace {

// Wraps the batch's policy and counts, per input, the tokens each layer's FFN ran on, so a request
// in a shared batch gets its own usage (ForwardStats only has the batch's sum). The FFN of layer l
// runs on the rows left after l's pruning decision when tokens drop before the FFN (at=ffn), and
// on the rows that entered l's attention otherwise (at=next).
class UsageCounter : public LayerPolicy {
 public:
  explicit UsageCounter(LayerPolicy* inner) : inner_(inner) {}
  std::string describe() const override { return inner_ ? inner_->describe() : "dense"; }
  PolicyNeeds needs() const override { return inner_ ? inner_->needs() : PolicyNeeds{}; }
  void begin(std::span<const PackedSequence> sequences, int num_layers, int num_heads) override {
    size_t inputs = 0;
    for (const auto& s : sequences) inputs = std::max(inputs, static_cast<size_t>(s.input_index) + 1);
    computed_.assign(inputs, 0);
    entered_.assign(inputs, 0);
    if (inner_) inner_->begin(sequences, num_layers, num_heads);
  }
  void after_attention(const AttentionLayerView& view, PruneDecision& decision) override {
    if (inner_) inner_->after_attention(view, decision);
    for (const auto& s : view.sequences) entered_[static_cast<size_t>(s.input_index)] = s.length();
    drop_before_ffn_ = decision.drop_before_ffn;
  }
  void after_layer(const LayerOutputView& view, ExitDecision& decision) override {
    for (const auto& s : view.sequences) add_layer(s.input_index, s.length());
    if (inner_) inner_->after_layer(view, decision);
  }
  double own_flops() const override { return inner_ ? inner_->own_flops() : 0.0; }
  const CtaConfig* attention_backend(int layer) const override { return inner_ ? inner_->attention_backend(layer) : nullptr; }

  // The last layer has no after_layer call: its FFN rows are the output's rows (at=ffn) or the
  // rows that entered its attention.
  int64_t computed(int input, const SequenceOutput& out, int num_layers) {
    if (out.exit_layer == num_layers) add_layer(input, out.hidden.dim(0));
    return computed_[static_cast<size_t>(input)];
  }

 private:
  void add_layer(int input, int64_t rows_after) {
    computed_[static_cast<size_t>(input)] += drop_before_ffn_ ? rows_after : entered_[static_cast<size_t>(input)];
  }
  LayerPolicy* inner_;
  std::vector<int64_t> computed_, entered_;
  bool drop_before_ffn_ = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Job::Job(Task task, std::string policy, std::vector<EncoderInput> inputs)
    : task_(task), policy_(std::move(policy)), inputs_(std::move(inputs)), results_(inputs_.size()),
      submitted_(std::chrono::steady_clock::now()) {}

bool Job::wait_for(std::chrono::steady_clock::duration timeout) {
  std::unique_lock lock(done_mutex_);
  return done_cv_.wait_for(lock, timeout, [&] { return done_; });
}

InferenceQueue::InferenceQueue(const TextModel& model, QueueOptions options, ServerMetrics* metrics)
    : model_(model), options_(options), metrics_(metrics) {
  if (options_.max_batch_tokens < 1) throw Error("max batch tokens must be at least 1");
  if (options_.max_requests < 1) throw Error("max concurrent requests must be at least 1");
  if (options_.own_worker_thread) worker_ = std::thread([this] { work(); });
}

void InferenceQueue::run_worker() {
  if (options_.own_worker_thread) throw Error("run_worker: this queue runs its own worker thread");
  work();
}

InferenceQueue::~InferenceQueue() { shutdown(); }

void InferenceQueue::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

size_t InferenceQueue::admitted() const {
  std::lock_guard lock(mutex_);
  return admitted_;
}

std::shared_ptr<Job> InferenceQueue::submit(Task task, const std::string& policy, std::vector<EncoderInput> inputs) {
  auto job = std::make_shared<Job>(task, policy, std::move(inputs));
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || admitted_ >= options_.max_requests) return nullptr;
    ++admitted_;
    queued_sequences_ += job->inputs_.size();
    if (job->inputs_.empty()) {
      --admitted_;
      job->done_ = true;
      return job;
    }
    queue_.push_back(job);
    publish_depth();
  }
  cv_.notify_one();
  return job;
}

void Job::cancel() {
  // The handler does not hold the queue's mutex; the worker reads the flag under done_mutex_.
  std::lock_guard lock(done_mutex_);
  cancelled_ = true;
}

void InferenceQueue::publish_depth() {
  if (metrics_) metrics_->set_queue_depth(admitted_, queued_sequences_);
}

bool InferenceQueue::take_batch(Batch& batch) {
  batch.items.clear();
  int64_t tokens = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    Job& job = **it;
    bool cancelled;
    {
      std::lock_guard lock(job.done_mutex_);
      cancelled = job.cancelled_;
    }
    if (cancelled) {
      // Skip what was not started. Nothing is in flight: batches are only taken between runs.
      queued_sequences_ -= job.inputs_.size() - job.next_;
      auto owner = *it;
      it = queue_.erase(it);
      finish(*owner, nullptr);
      continue;
    }
    if (batch.items.empty()) batch.policy = job.policy_;
    if (job.policy_ != batch.policy) {
      ++it;
      continue;
    }
    if (job.next_ == 0 && metrics_) metrics_->record_queue_wait(seconds_since(job.submitted_));
    while (job.next_ < job.inputs_.size()) {
      const auto n = static_cast<int64_t>(job.inputs_[job.next_].ids.size());
      if (!batch.items.empty() && tokens + n > options_.max_batch_tokens) break;
      batch.items.emplace_back(*it, job.next_++);
      tokens += n;
      --queued_sequences_;
    }
    if (job.next_ == job.inputs_.size()) it = queue_.erase(it);
    else break;  // the budget is spent
    if (tokens >= options_.max_batch_tokens) break;
  }
  publish_depth();
  return !batch.items.empty();
}

void InferenceQueue::work() {
  if (options_.threads > 0) omp_set_num_threads(options_.threads);
  Batch batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (!take_batch(batch)) {
        if (stopping_ && queue_.empty()) return;
        continue;
      }
    }
    run_batch(batch);
  }
}

void InferenceQueue::run_batch(const Batch& batch) {
  const auto t0 = std::chrono::steady_clock::now();
  std::exception_ptr error;
  BatchRecord record;
  record.sequences = batch.items.size();
  try {
    std::vector<EncoderInput> inputs;
    inputs.reserve(batch.items.size());
    for (const auto& [job, i] : batch.items) inputs.push_back(job->inputs_[i]);
    const BertEncoder& encoder = model_.encoder();
    const int layers = encoder.config().num_hidden_layers;
    std::unique_ptr<PolicyChain> policy;
    if (batch.policy != "dense") policy = parse_policy_spec(batch.policy, encoder.config(), model_.exits());
    UsageCounter counter(policy.get());
    // Embeddings pool pruned tokens as everywhere else (token freezing, model/text_embedder.h).
    const std::vector<SequenceOutput> outputs = encoder.forward(inputs, embedding_forward_options(&counter));
    for (size_t k = 0; k < batch.items.size(); ++k) {
      const auto& [job, i] = batch.items[k];
      const SequenceOutput& out = outputs[k];
      SequenceResult& r = job->results_[i];
      switch (job->task_) {
        case Task::Embed: r.values = model_.embedding(out); break;
        case Task::EmbedRaw:
          r.values = model_.pooled(out);
          break;
        case Task::Classify: r.values = encoder.classify(out); break;
      }
      r.input_tokens = static_cast<int64_t>(inputs[k].ids.size());
      r.computed_tokens = counter.computed(static_cast<int>(k), out, layers);
      r.layers_run = out.exit_layer;
      record.input_tokens += r.input_tokens;
      record.computed_tokens += r.computed_tokens;
      record.dense_tokens += r.input_tokens * layers;
      record.layers_run += r.layers_run;
    }
  } catch (...) {
    error = std::current_exception();
  }
  record.seconds = seconds_since(t0);
  if (metrics_ && !error) metrics_->record_batch(record);

  std::lock_guard lock(mutex_);
  for (const auto& [job, i] : batch.items) {
    ++job->finished_;
    if (error) {
      // The whole request fails; the rest of its sequences are not run.
      if (job->next_ < job->inputs_.size()) {
        queued_sequences_ -= job->inputs_.size() - job->next_;
        job->next_ = job->inputs_.size();
        std::erase(queue_, job);
      }
    }
    if (job->next_ == job->inputs_.size() && job->finished_ == job->next_) finish(*job, error);
  }
  publish_depth();
}

// Under mutex_. Publishes the job's results to its waiting handler and releases its admission.
void InferenceQueue::finish(Job& job, std::exception_ptr error) {
  {
    std::lock_guard lock(job.done_mutex_);
    if (job.done_) return;
    job.done_ = true;
    if (!job.error_) job.error_ = error;
  }
  job.done_cv_.notify_all();
  --admitted_;
}

}  // namespace sieve::serving
