// sieve serve: the HTTP server (serving/server.h) around a model loaded as the other commands load
// it. SIGTERM and SIGINT stop it gracefully: no new connections, in-flight requests answered.
#include <pthread.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "cli/commands/common.h"
#include "serving/server.h"

namespace sieve::cli {

namespace {

struct ServeOptions {
  ModelOptions model;
  serving::ServerOptions server;
};

void run(ServeOptions& o) {
  // Block the stop signals before any thread starts, so every thread inherits the mask and only
  // the waiter below receives them (a handler could not call stop() safely).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const TextModel model = load_model(o.model);
  if (o.model.max_length) o.server.max_length = o.model.max_length;
  o.server.threads = o.model.threads;
  if (o.server.model_name.empty()) {
    // The directory's name as given (the default model is a link into a package: its target is
    // named "model").
    std::filesystem::path dir = o.model.model_dir.empty() ? default_model_dir() : std::filesystem::path(o.model.model_dir);
    dir = dir.lexically_normal();
    o.server.model_name = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
  }
  serving::Server server(model, o.server);
  const int port = server.bind();
  std::fprintf(stderr, "sieve serve: listening on http://%s:%d (model %s, policy %s)\n", o.server.host.c_str(), port,
               o.server.model_name.c_str(), o.server.policy.c_str());
  std::fflush(stderr);

  std::atomic<bool> finished{false}, signalled{false};
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    signalled = true;
    if (finished) return;
    std::fprintf(stderr, "sieve serve: %s, finishing in-flight requests\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  server.run();
  // run() returns after a stop; if it ever ends otherwise, wake the waiter so it can be joined.
  finished = true;
  if (!signalled) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  std::fprintf(stderr, "sieve serve: stopped\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto options = std::make_shared<ServeOptions>();
  serving::ServerOptions& s = options->server;
  CLI::App* cmd = app.add_subcommand("serve", "HTTP server: OpenAI /v1/embeddings, text-embeddings-inference /embed /predict /rerank /tokenize");
  add_model_options(*cmd, options->model);
  cmd->add_option("--host", s.host, "Address to listen on (only this one)")->capture_default_str();
  cmd->add_option("--port", s.port, "Port (0 = any free port; the chosen one is printed)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("--policy,-p", s.policy, "Default pruning policy spec for requests that name none")->capture_default_str();
  cmd->add_option("--preset", s.presets,
                  "A policy requests may ask for, as NAME=SPEC or SPEC (repeatable); the default and dense are always allowed");
  cmd->add_option("--served-model-name", s.model_name, "Model name in /info and responses (default: the model directory's name)");
  cmd->add_option("--max-batch-tokens", s.max_batch_tokens, "Tokens per forward pass (requests are packed up to this)")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--max-concurrent-requests", s.max_concurrent_requests, "Requests queued or running; the next gets 429")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{1} << 20));
  cmd->add_option("--max-client-batch-size", s.max_client_batch_size, "Inputs per request")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{1} << 20));
  cmd->add_option("--max-body-bytes", s.max_body_bytes, "Largest request body")
      ->capture_default_str()->check(CLI::Range(size_t{64}, size_t{1} << 30));
  cmd->add_option("--request-timeout", s.request_timeout_seconds, "Seconds a request may take in the server (queue + compute)")
      ->capture_default_str()->check(CLI::Range(0.001, 86400.0));
  cmd->add_flag("--auto-truncate,!--no-auto-truncate", s.auto_truncate,
                "Cut inputs over the model's limit unless a request says truncate: false (default on)");
  cmd->add_option("--http-threads", s.http_threads, "Connections served at once (default: max concurrent requests + 16)")
      ->check(CLI::Range(1, 4096));
  cmd->callback([options] { run(*options); });
}

}  // namespace sieve::cli
