#pragma once
// The server's counters, in Prometheus' text exposition format (GET /metrics). One mutex guards
// everything: a request touches it a few times, against milliseconds of model work.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sieve::serving {

// A cumulative histogram with fixed upper bounds, as Prometheus expects (le="..." buckets + sum).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double value);
  // Appends the _bucket, _sum and _count lines; `labels` is empty or like `route="/embed"`.
  void render(const std::string& name, const std::string& labels, std::string& out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last one is +Inf
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

// What one forward pass (a batch) did.
struct BatchRecord {
  size_t sequences = 0;
  int64_t input_tokens = 0;     // tokens that entered layer 0
  int64_t computed_tokens = 0;  // sum over layers of the tokens each layer's FFN ran on
  int64_t dense_tokens = 0;     // input_tokens x layers: what a dense forward computes
  int64_t layers_run = 0;       // sum over sequences of the layers run (early exit lowers it)
  double seconds = 0.0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void record_request(const std::string& route, int status, double seconds);
  void record_batch(const BatchRecord& batch);
  void record_queue_wait(double seconds);
  void set_queue_depth(size_t requests, size_t sequences);
  // The whole exposition text.
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  std::map<std::string, Histogram> latency_;                  // route -> seconds
  Histogram batch_sequences_, batch_tokens_, forward_seconds_, queue_wait_;
  uint64_t batches_ = 0;
  int64_t input_tokens_ = 0, computed_tokens_ = 0, dense_tokens_ = 0, layers_run_ = 0, sequences_ = 0;
  size_t queue_requests_ = 0, queue_sequences_ = 0;
};

}  // namespace sieve::serving
