#pragma once
// `sieve serve`: an HTTP server for a TextModel that speaks OpenAI's /v1/embeddings and
// text-embeddings-inference's /embed, /predict, /rerank, /tokenize, plus /health, /info and
// /metrics (Prometheus). Requests are validated and tokenized on the HTTP threads, then batched by
// token budget into forward passes (serving/inference_queue.h). HTTP is cpp-httplib, kept out of
// this header.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/text_model.h"
#include "serving/metrics.h"

namespace sieve::serving {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                // 0 = any free port (bind() returns it)
  std::string model_name;         // reported in /info and as the responses' "model"
  std::string policy = "dense";   // the default policy spec
  // Policies a request may ask for ("sieve": {"policy": ...} or the X-Sieve-Policy header), as
  // NAME=SPEC or SPEC. The default and "dense" are always allowed.
  std::vector<std::string> presets;
  int64_t max_batch_tokens = 16384;
  size_t max_concurrent_requests = 512;  // admitted (queued or running); the next one gets 429
  size_t max_client_batch_size = 2048;   // inputs per request
  size_t max_body_bytes = 4u << 20;
  size_t max_length = 0;                 // 0 = the model's
  double request_timeout_seconds = 60;
  bool auto_truncate = true;             // the default of a request's "truncate"
  // Connections served at once (an open keep-alive connection holds one); 0 = max_concurrent_requests
  // + 16, so that admission, not the thread count, is what limits requests and 429 can answer.
  int http_threads = 0;
  int threads = 0;                       // OpenMP threads of the forward passes (0 = all cores)
};

class Server {
 public:
  // Checks the options and every policy (throws sieve::Error) and starts the batching worker.
  // `model` must outlive the server.
  Server(const TextModel& model, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port; returns the port (the one chosen when port is 0). Throws Error on failure.
  int bind();
  // Serves until stop(); returns once in-flight requests are answered. bind() first.
  void run();
  // Stops accepting connections and ends run() after in-flight requests; thread-safe, idempotent.
  void stop();

  size_t admitted_requests() const;  // queued or running in the batcher
  const ServerMetrics& metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sieve::serving
