#include "serving/metrics.h"

#include <cinttypes>
#include <cstdio>

namespace sieve::serving {

namespace {

std::vector<double> latency_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", value);
  return text;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void line(std::string& out, const std::string& name, const std::string& labels, double value) {
  // Appended piece by piece (GCC 12 warns, wrongly, about "{" + labels + "}" under -O2 -Wrestrict).
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += number(value);
  out += '\n';
}

}  // namespace

void Histogram::observe(double value) {
  size_t b = 0;
  while (b < bounds_.size() && value > bounds_[b]) ++b;
  ++counts_[b];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, const std::string& labels, std::string& out) const {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= bounds_.size(); ++b) {
    cumulative += counts_[b];
    const std::string le = b < bounds_.size() ? number(bounds_[b]) : "+Inf";
    line(out, name + "_bucket", labels + sep + "le=\"" + le + "\"", static_cast<double>(cumulative));
  }
  line(out, name + "_sum", labels, sum_);
  line(out, name + "_count", labels, static_cast<double>(count_));
}

ServerMetrics::ServerMetrics()
    : batch_sequences_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}),
      batch_tokens_({64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768}),
      forward_seconds_(latency_bounds()),
      queue_wait_(latency_bounds()) {}

void ServerMetrics::record_request(const std::string& route, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
  latency_.try_emplace(route, latency_bounds()).first->second.observe(seconds);
}

void ServerMetrics::record_batch(const BatchRecord& b) {
  std::lock_guard lock(mutex_);
  ++batches_;
  batch_sequences_.observe(static_cast<double>(b.sequences));
  batch_tokens_.observe(static_cast<double>(b.input_tokens));
  forward_seconds_.observe(b.seconds);
  sequences_ += static_cast<int64_t>(b.sequences);
  input_tokens_ += b.input_tokens;
  computed_tokens_ += b.computed_tokens;
  dense_tokens_ += b.dense_tokens;
  layers_run_ += b.layers_run;
}

void ServerMetrics::record_queue_wait(double seconds) {
  std::lock_guard lock(mutex_);
  queue_wait_.observe(seconds);
}

void ServerMetrics::set_queue_depth(size_t requests, size_t sequences) {
  std::lock_guard lock(mutex_);
  queue_requests_ = requests;
  queue_sequences_ = sequences;
}

std::string ServerMetrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  header(out, "sieve_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, count] : requests_)
    line(out, "sieve_requests_total", "route=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"",
         static_cast<double>(count));
  header(out, "sieve_request_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status, by route.");
  std::map<std::string, uint64_t> errors;
  for (const auto& [key, count] : requests_)
    if (key.second >= 400) errors[key.first] += count;
  for (const auto& [route, count] : errors) line(out, "sieve_request_errors_total", "route=\"" + route + "\"", static_cast<double>(count));
  header(out, "sieve_request_duration_seconds", "histogram", "Time from a request's arrival to its answer, by route.");
  for (const auto& [route, h] : latency_) h.render("sieve_request_duration_seconds", "route=\"" + route + "\"", out);
  header(out, "sieve_queue_requests", "gauge", "Requests admitted and not yet answered (queued or in a forward pass).");
  line(out, "sieve_queue_requests", "", static_cast<double>(queue_requests_));
  header(out, "sieve_queue_sequences", "gauge", "Sequences waiting for a forward pass.");
  line(out, "sieve_queue_sequences", "", static_cast<double>(queue_sequences_));
  header(out, "sieve_queue_wait_seconds", "histogram", "Time a request waited before its first sequence entered a forward pass.");
  queue_wait_.render("sieve_queue_wait_seconds", "", out);
  header(out, "sieve_batches_total", "counter", "Forward passes run.");
  line(out, "sieve_batches_total", "", static_cast<double>(batches_));
  header(out, "sieve_batch_sequences", "histogram", "Sequences per forward pass.");
  batch_sequences_.render("sieve_batch_sequences", "", out);
  header(out, "sieve_batch_tokens", "histogram", "Input tokens per forward pass.");
  batch_tokens_.render("sieve_batch_tokens", "", out);
  header(out, "sieve_forward_duration_seconds", "histogram", "Wall-clock of one forward pass.");
  forward_seconds_.render("sieve_forward_duration_seconds", "", out);
  header(out, "sieve_sequences_total", "counter", "Sequences encoded.");
  line(out, "sieve_sequences_total", "", static_cast<double>(sequences_));
  header(out, "sieve_input_tokens_total", "counter", "Tokens in (after truncation, [CLS] and [SEP] included).");
  line(out, "sieve_input_tokens_total", "", static_cast<double>(input_tokens_));
  header(out, "sieve_computed_tokens_total", "counter",
         "Token-layers actually computed: per layer, the tokens its FFN ran on after pruning, summed.");
  line(out, "sieve_computed_tokens_total", "", static_cast<double>(computed_tokens_));
  header(out, "sieve_dense_tokens_total", "counter", "Token-layers a dense forward would have computed (input tokens x layers).");
  line(out, "sieve_dense_tokens_total", "", static_cast<double>(dense_tokens_));
  header(out, "sieve_layers_run_total", "counter", "Layers run, summed over sequences (early exit lowers it).");
  line(out, "sieve_layers_run_total", "", static_cast<double>(layers_run_));
  return out;
}

}  // namespace sieve::serving
