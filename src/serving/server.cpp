#include "serving/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "kernels/gemm.h"
#include "policies/policy_spec.h"
#include "serving/inference_queue.h"
#include "serving/requests.h"
#include "util/error.h"

namespace sieve::serving {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Routes named in the metrics; any other path is counted as "other", so a scan of random URLs
// cannot grow the label set.
const std::vector<std::string> kRoutes = {"/v1/embeddings", "/embed", "/predict", "/rerank", "/tokenize",
                                          "/health", "/info", "/metrics"};

thread_local Clock::time_point request_start;

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e));
  if (e.status == 429) res.set_header("Retry-After", "1");
}

// What the forward passes of one request computed, for `usage` and the x-sieve-* headers.
struct Usage {
  int64_t input_tokens = 0, computed_tokens = 0, dense_tokens = 0, layers_run = 0;
};

Usage sum_usage(const std::vector<SequenceResult>& results, int layers) {
  Usage u;
  for (const auto& r : results) {
    u.input_tokens += r.input_tokens;
    u.computed_tokens += r.computed_tokens;
    u.dense_tokens += r.input_tokens * layers;
    u.layers_run += r.layers_run;
  }
  return u;
}

void set_usage_headers(httplib::Response& res, const Usage& u, const std::string& policy) {
  res.set_header("x-sieve-policy", policy);
  res.set_header("x-sieve-input-tokens", std::to_string(u.input_tokens));
  res.set_header("x-sieve-computed-tokens", std::to_string(u.computed_tokens));
  res.set_header("x-sieve-dense-tokens", std::to_string(u.dense_tokens));
  res.set_header("x-sieve-layers-run", std::to_string(u.layers_run));
}

// Softmax over the logits, or a sigmoid per label for one-label and multi-label heads.
std::vector<float> scores(std::vector<float> logits, bool sigmoid) {
  if (sigmoid) {
    for (float& v : logits) v = 1.0f / (1.0f + std::exp(-v));
    return logits;
  }
  const float mx = *std::max_element(logits.begin(), logits.end());
  float sum = 0;
  for (float& v : logits) sum += (v = std::exp(v - mx));
  for (float& v : logits) v /= sum;
  return logits;
}

// cpp-httplib 0.11 listens with a backlog of 5, compiled into Debian's library: in a burst of new
// connections (128 clients connecting at once) the rest have their SYNs dropped and retried after
// 1, 2, 4 ... s, which showed as 50 s p99 latencies. listen() again on the bound socket raises it.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog(int backlog) { ::listen(svr_sock_, backlog); }
};

}  // namespace

struct Server::Impl {
  Impl(const TextModel& model, ServerOptions options);
  void add_routes();
  // Runs a route's body; an ApiError (or anything else) becomes the JSON error answer.
  void handle(httplib::Response& res, const std::function<void()>& body);
  std::string resolve_policy(const json& body, const httplib::Request& req) const;
  TokenizeSettings tokenize_settings(const json& body) const;
  std::vector<SequenceResult> run(Task task, const std::string& policy, std::vector<EncoderInput> inputs);

  void embeddings(const httplib::Request& req, httplib::Response& res);
  void embed(const httplib::Request& req, httplib::Response& res);
  void predict(const httplib::Request& req, httplib::Response& res);
  void rerank(const httplib::Request& req, httplib::Response& res);
  void tokenize(const httplib::Request& req, httplib::Response& res);
  json info() const;

  const TextModel& model;
  ServerOptions options;
  ServerMetrics metrics;
  std::map<std::string, std::string> allowed;  // what a request may name -> policy spec
  std::vector<std::pair<std::string, std::string>> presets;  // (name, spec), for /info
  size_t max_length = 0;
  int layers = 0;
  InferenceQueue queue;
  HttpServer http;
  std::atomic<bool> bound{false}, running{false}, stop_requested{false};
};

Server::Impl::Impl(const TextModel& m, ServerOptions o)
    : model(m), options(std::move(o)),
      queue(m, QueueOptions{options.max_batch_tokens, options.max_concurrent_requests, options.threads, false}, &metrics) {
  const ModelConfig& config = model.encoder().config();
  layers = config.num_hidden_layers;
  max_length = options.max_length ? options.max_length : model.max_length();
  if (max_length < 3 || max_length > static_cast<size_t>(config.max_position_embeddings))
    throw Error("max length must be between 3 and the model's " + std::to_string(config.max_position_embeddings) + " tokens");
  if (options.max_client_batch_size < 1) throw Error("max client batch size must be at least 1");
  if (options.max_body_bytes < 64) throw Error("max body size must be at least 64 bytes");
  if (!(options.request_timeout_seconds > 0)) throw Error("request timeout must be positive");
  if (options.http_threads < 0) throw Error("http threads must be at least 1 (0 = automatic)");
  if (options.http_threads == 0)
    options.http_threads = static_cast<int>(std::min<size_t>(options.max_concurrent_requests + 16, 4096));
  auto check = [&](const std::string& spec) {
    if (spec != "dense") parse_policy_spec(spec, config, model.exits());  // throws Error
  };
  check(options.policy);
  allowed["dense"] = "dense";
  allowed[options.policy] = options.policy;
  for (const std::string& preset : options.presets) {
    const size_t eq = preset.find('=');
    // "spatten:tokens=0.3" has '=' too: a name is what comes before an '=' that precedes any ':'.
    const bool named = eq != std::string::npos && preset.find(':') > eq;
    const std::string name = named ? preset.substr(0, eq) : preset;
    const std::string spec = named ? preset.substr(eq + 1) : preset;
    if (name.empty() || spec.empty()) throw Error("preset '" + preset + "': expected NAME=SPEC or SPEC");
    check(spec);
    allowed[name] = spec;
    allowed[spec] = spec;
    presets.emplace_back(name, spec);
  }
  add_routes();
}

std::string Server::Impl::resolve_policy(const json& body, const httplib::Request& req) const {
  std::optional<std::string> asked;
  std::string param = "sieve.policy";
  if (const auto it = body.find("sieve"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) throw invalid("'sieve' must be an object like {\"policy\": \"...\"}", "sieve", "invalid_type");
    asked = optional_string(*it, "policy");
  }
  if (!asked && req.has_header("X-Sieve-Policy")) {
    asked = req.get_header_value("X-Sieve-Policy");
    param = "X-Sieve-Policy";
  }
  if (!asked) return options.policy;
  const auto it = allowed.find(*asked);
  if (it == allowed.end()) {
    std::string names;
    for (const auto& [name, spec] : allowed) names += (names.empty() ? "" : ", ") + name;
    throw invalid("policy '" + *asked + "' is not allowed on this server; allowed: " + names, param, "policy_not_allowed");
  }
  return it->second;
}

TokenizeSettings Server::Impl::tokenize_settings(const json& body) const {
  TokenizeSettings s;
  s.max_length = max_length;
  s.truncate = optional_bool(body, "truncate", options.auto_truncate);
  if (const auto direction = optional_string(body, "truncation_direction")) {
    const std::string d = lowercase(*direction);
    if (d != "left" && d != "right")
      throw invalid("'truncation_direction' must be \"Left\" or \"Right\"", "truncation_direction");
    s.truncate_left = d == "left";
  }
  return s;
}

std::vector<SequenceResult> Server::Impl::run(Task task, const std::string& policy, std::vector<EncoderInput> inputs) {
  const std::shared_ptr<Job> job = queue.submit(task, policy, std::move(inputs));
  if (!job)
    throw ApiError(429, "the server is at its limit of " + std::to_string(options.max_concurrent_requests) +
                            " concurrent requests; retry later",
                   "rate_limit_error", std::nullopt, "queue_full");
  const auto timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.request_timeout_seconds));
  if (!job->wait_for(timeout)) {
    job->cancel();
    throw ApiError(503, "the request timed out after " + std::to_string(options.request_timeout_seconds) + " s in the server",
                   "server_error", std::nullopt, "timeout");
  }
  if (job->error()) std::rethrow_exception(job->error());
  return job->results();
}

void Server::Impl::handle(httplib::Response& res, const std::function<void()>& body) {
  try {
    body();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    send_error(res, invalid(e.what(), "input", "invalid_input"));
  } catch (const std::bad_alloc&) {
    send_error(res, ApiError(503, "out of memory", "server_error", std::nullopt, "out_of_memory"));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error", std::nullopt, "internal_error"));
  }
}

void Server::Impl::embeddings(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  const auto it = body.find("input");
  const auto inputs = parse_text_inputs(it == body.end() ? json() : *it, "input", options.max_client_batch_size);
  const std::string name = optional_string(body, "model").value_or(options.model_name);
  optional_string(body, "user");  // accepted and ignored, as a type check
  const std::string format = optional_string(body, "encoding_format").value_or("float");
  if (format != "float" && format != "base64")
    throw invalid("'encoding_format' must be \"float\" or \"base64\"", "encoding_format");
  const auto hidden = static_cast<size_t>(model.encoder().config().hidden_size);
  size_t dimensions = hidden;
  if (const auto d = body.find("dimensions"); d != body.end() && !d->is_null()) {
    if (!d->is_number_integer() || d->get<int64_t>() < 1 || d->get<int64_t>() > static_cast<int64_t>(hidden))
      throw invalid("'dimensions' must be an integer from 1 to " + std::to_string(hidden), "dimensions");
    dimensions = d->get<size_t>();
  }
  const std::string policy = resolve_policy(body, req);
  auto encoded = encode_inputs(model, inputs, tokenize_settings(body), "input");
  std::vector<SequenceResult> results = run(Task::Embed, policy, std::move(encoded));
  const Usage u = sum_usage(results, layers);

  std::string out = "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < results.size(); ++i) {
    std::vector<float>& v = results[i].values;
    truncate_and_normalize(v, dimensions);
    out += i ? ",{" : "{";
    out += "\"object\":\"embedding\",\"index\":" + std::to_string(i) + ",\"embedding\":";
    if (format == "base64") {
      out += '"' + base64_floats(v) + '"';
    } else {
      out += '[';
      for (size_t c = 0; c < v.size(); ++c) {
        if (c) out += ',';
        append_float(out, v[c]);
      }
      out += ']';
    }
    out += '}';
  }
  out += "],\"model\":" + json(name).dump(-1, ' ', false, json::error_handler_t::replace);
  out += ",\"usage\":" + json{{"prompt_tokens", u.input_tokens},
                              {"total_tokens", u.input_tokens},
                              {"computed_tokens", u.computed_tokens},
                              {"dense_tokens", u.dense_tokens},
                              {"layers_run", u.layers_run},
                              {"policy", policy}}
                             .dump();
  out += '}';
  set_usage_headers(res, u, policy);
  send_json(res, 200, out);
}

void Server::Impl::embed(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  const auto it = body.find("inputs");
  const auto inputs = parse_text_inputs(it == body.end() ? json() : *it, "inputs", options.max_client_batch_size);
  const bool normalize = optional_bool(body, "normalize", true);
  optional_string(body, "prompt_name");
  const std::string policy = resolve_policy(body, req);
  auto encoded = encode_inputs(model, inputs, tokenize_settings(body), "inputs");
  // normalize: true always gives unit vectors (text-embeddings-inference's meaning), whatever the
  // model directory declares; false gives the pooled vector before any normalization.
  std::vector<SequenceResult> results = run(normalize ? Task::Embed : Task::EmbedRaw, policy, std::move(encoded));
  std::string out = "[";
  for (size_t i = 0; i < results.size(); ++i) {
    std::vector<float>& v = results[i].values;
    if (normalize && !model.normalize()) l2_normalize(v);
    out += i ? ",[" : "[";
    for (size_t c = 0; c < v.size(); ++c) {
      if (c) out += ',';
      append_float(out, v[c]);
    }
    out += ']';
  }
  out += ']';
  set_usage_headers(res, sum_usage(results, layers), policy);
  send_json(res, 200, out);
}

void Server::Impl::predict(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  const BertEncoder& encoder = model.encoder();
  if (!encoder.has_classifier())
    throw ApiError(400, "this model has no sequence-classification head; /predict needs a classifier", "invalid_request_error",
                   std::nullopt, "not_a_classifier");
  bool batched = false;
  const auto it = body.find("inputs");
  const auto inputs = parse_predict_inputs(it == body.end() ? json() : *it, options.max_client_batch_size, batched);
  const bool raw = optional_bool(body, "raw_scores", false);
  const std::string policy = resolve_policy(body, req);
  auto encoded = encode_inputs(model, inputs, tokenize_settings(body), "inputs");
  const std::vector<SequenceResult> results = run(Task::Classify, policy, std::move(encoded));
  const auto& names = encoder.config().id2label;
  const bool sigmoid = encoder.num_labels() == 1 || encoder.config().problem_type == "multi_label_classification";
  json all = json::array();
  for (const auto& r : results) {
    const std::vector<float> s = raw ? r.values : scores(r.values, sigmoid);
    std::vector<size_t> order(s.size());
    for (size_t c = 0; c < order.size(); ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
    json one = json::array();
    for (size_t c : order)
      one.push_back({{"score", s[c]}, {"label", c < names.size() ? names[c] : "LABEL_" + std::to_string(c)}});
    all.push_back(std::move(one));
  }
  set_usage_headers(res, sum_usage(results, layers), policy);
  send_json(res, 200, (batched ? all : all[0]).dump(-1, ' ', false, json::error_handler_t::replace));
}

void Server::Impl::rerank(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  const BertEncoder& encoder = model.encoder();
  if (!encoder.has_classifier() || encoder.num_labels() != 1)
    throw ApiError(400, "this model is not a re-ranker (a cross-encoder with one output); /rerank needs one",
                   "invalid_request_error", std::nullopt, "not_a_reranker");
  const auto query = optional_string(body, "query");
  if (!query) throw invalid("'query' is required", "query", "missing_field");
  const auto texts = body.find("texts");
  if (texts == body.end() || !texts->is_array()) throw invalid("'texts' must be a list of strings", "texts", "invalid_type");
  if (texts->empty()) throw invalid("'texts' must not be an empty list", "texts", "empty_input");
  if (texts->size() > options.max_client_batch_size)
    throw invalid("'texts' has " + std::to_string(texts->size()) + " inputs; this server takes at most " +
                      std::to_string(options.max_client_batch_size),
                  "texts", "too_many_inputs");
  std::vector<RequestInput> inputs;
  for (const json& t : *texts) {
    if (!t.is_string()) throw invalid("'texts' must be a list of strings", "texts", "invalid_type");
    if (t.get_ref<const std::string&>().empty()) throw invalid("'texts' holds an empty string", "texts", "empty_input");
    inputs.push_back({*query, t.get<std::string>(), {}, false});
  }
  const bool raw = optional_bool(body, "raw_scores", false);
  const bool return_text = optional_bool(body, "return_text", false);
  const std::string policy = resolve_policy(body, req);
  auto encoded = encode_inputs(model, inputs, tokenize_settings(body), "texts");
  const std::vector<SequenceResult> results = run(Task::Classify, policy, std::move(encoded));
  std::vector<std::pair<float, size_t>> ranked;
  for (size_t i = 0; i < results.size(); ++i) {
    const float logit = results[i].values.at(0);
    ranked.emplace_back(raw ? logit : 1.0f / (1.0f + std::exp(-logit)), i);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  json out = json::array();
  for (const auto& [score, i] : ranked) {
    json item{{"index", i}, {"score", score}};
    if (return_text) item["text"] = (*texts)[i];
    out.push_back(std::move(item));
  }
  set_usage_headers(res, sum_usage(results, layers), policy);
  send_json(res, 200, out.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Server::Impl::tokenize(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req.body);
  const auto it = body.find("inputs");
  const auto inputs = parse_text_inputs(it == body.end() ? json() : *it, "inputs", options.max_client_batch_size);
  const bool specials = optional_bool(body, "add_special_tokens", true);
  const WordPieceTokenizer& tok = model.tokenizer();
  json all = json::array();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].is_ids) throw invalid("'inputs' must be texts for /tokenize", "inputs", "invalid_type");
    if (inputs[i].text.empty()) throw invalid("input " + std::to_string(i) + " is an empty string", "inputs", "empty_input");
    Encoding e;
    try {
      e = tok.encode(inputs[i].text, std::numeric_limits<int32_t>::max());
    } catch (const Error& error) {
      throw invalid("input " + std::to_string(i) + ": " + error.what(), "inputs", "invalid_input");
    }
    json tokens = json::array();
    for (size_t t = 0; t < e.ids.size(); ++t) {
      const bool special = e.ids[t] == tok.cls_id() || e.ids[t] == tok.sep_id();
      if (special && !specials && (t == 0 || t + 1 == e.ids.size())) continue;
      tokens.push_back({{"id", e.ids[t]}, {"text", e.tokens[t]}, {"special", special}, {"start", nullptr}, {"stop", nullptr}});
    }
    all.push_back(std::move(tokens));
  }
  send_json(res, 200, all.dump(-1, ' ', false, json::error_handler_t::replace));
}

json Server::Impl::info() const {
  const ModelConfig& c = model.encoder().config();
  json preset_list = json::object();
  for (const auto& [name, spec] : presets) preset_list[name] = spec;
  return {{"model_id", options.model_name},
          {"model_type", model.encoder().has_classifier() ? "classifier" : "embedding"},
          {"dimensions", c.hidden_size},
          {"layers", c.num_hidden_layers},
          {"max_input_length", max_length},
          {"pooling", model.pooling() == Pooling::Mean ? "mean" : "cls"},
          {"normalized", model.normalize()},
          {"policy", options.policy},
          {"presets", preset_list},
          {"precision", precision_name(model.encoder().precision())},
          {"tile_sparse_weights", model.encoder().tile_sparse_summary().sparse_weights},
          {"max_batch_tokens", options.max_batch_tokens},
          {"max_concurrent_requests", options.max_concurrent_requests},
          {"max_client_batch_size", options.max_client_batch_size},
          {"max_body_bytes", options.max_body_bytes},
          {"auto_truncate", options.auto_truncate},
          {"request_timeout_seconds", options.request_timeout_seconds}};
}

void Server::Impl::add_routes() {
  const int threads = options.http_threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_keep_alive_max_count(1'000'000);
  http.set_tcp_nodelay(true);
  http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    request_start = Clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Answers httplib's own errors (unknown route, body over the limit, a request it cannot parse)
  // in the same JSON shape; the routes' answers already have a body and are left alone.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) send_error(res, ApiError(404, "no such route", "invalid_request_error", std::nullopt, "not_found"));
    else if (res.status == 413)
      send_error(res, ApiError(413, "the request body is over the server's limit of " + std::to_string(options.max_body_bytes) + " bytes",
                               "invalid_request_error", std::nullopt, "body_too_large"));
    else if (res.status < 500)
      send_error(res, ApiError(res.status, "bad request", "invalid_request_error", std::nullopt, "bad_request"));
    else send_error(res, ApiError(res.status, "internal error", "server_error", std::nullopt, "internal_error"));
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "internal error", "server_error", std::nullopt, "internal_error"));
  });
  // Recorded after routing but before the answer is written (httplib's logger runs after it is
  // sent), so a client that got its answer already sees it counted in /metrics.
  http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool known = std::find(kRoutes.begin(), kRoutes.end(), req.path) != kRoutes.end();
    const double seconds = request_start == Clock::time_point{} ? 0.0 : std::chrono::duration<double>(Clock::now() - request_start).count();
    metrics.record_request(known ? req.path : "other", res.status, seconds);
    request_start = {};
  });
  auto post = [this](const char* path, void (Impl::*route)(const httplib::Request&, httplib::Response&)) {
    http.Post(path, [this, route](const httplib::Request& req, httplib::Response& res) {
      handle(res, [&] { (this->*route)(req, res); });
    });
  };
  post("/v1/embeddings", &Impl::embeddings);
  post("/embeddings", &Impl::embeddings);
  post("/embed", &Impl::embed);
  post("/predict", &Impl::predict);
  post("/rerank", &Impl::rerank);
  post("/tokenize", &Impl::tokenize);
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) { send_json(res, 200, "{\"status\":\"ok\"}"); });
  http.Get("/info", [this](const httplib::Request&, httplib::Response& res) { send_json(res, 200, info().dump()); });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.render(), "text/plain; version=0.0.4");
  });
}

Server::Server(const TextModel& model, ServerOptions options) : impl_(std::make_unique<Impl>(model, std::move(options))) {}

Server::~Server() {
  stop();
  impl_->queue.shutdown();
}

int Server::bind() {
  const ServerOptions& o = impl_->options;
  if (o.port < 0 || o.port > 65535) throw Error("port must be from 0 to 65535");
  int port = o.port;
  if (port == 0) port = impl_->http.bind_to_any_port(o.host);
  else if (!impl_->http.bind_to_port(o.host, port)) port = -1;
  if (port <= 0) throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) + " (address in use, or not an address of this machine)");
  impl_->http.raise_backlog(SOMAXCONN);
  impl_->bound = true;
  return port;
}

void Server::run() {
  if (!impl_->bound) throw Error("Server::run: bind() first");
  impl_->running = true;
  // The forward passes run on this thread and HTTP on another: the thread that loaded the model
  // (usually this one) already owns an OpenMP team, and a second thread's team makes libgomp sleep
  // and wake its workers at every parallel region (why and what it cost: util/compute_thread.h,
  // the Python package's answer to the same trap).
  std::thread http([this] {
    if (!impl_->stop_requested) impl_->http.listen_after_bind();  // returns after stop(), HTTP threads joined
    impl_->queue.shutdown();  // every handler has had its answer; the worker loop ends
  });
  impl_->queue.run_worker();
  http.join();
  impl_->running = false;
}

void Server::stop() {
  // httplib's stop() does nothing before its listen loop has started, so a stop() that races with
  // run() waits for that loop (run() checks stop_requested after announcing itself, so one of the
  // two sees the other).
  impl_->stop_requested = true;
  while (impl_->running && !impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->http.stop();
}

size_t Server::admitted_requests() const { return impl_->queue.admitted(); }

const ServerMetrics& Server::metrics() const { return impl_->metrics; }

}  // namespace sieve::serving
