// sieve serve (issue 16): every route and every bad input over real HTTP, on a server started in
// this process on a free loopback port. Embeddings are checked against the library called
// directly; each rejected request must get a 4xx with OpenAI's error body, and the server must
// still answer /health afterwards.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "model/text_embedder.h"
#include "policies/policy_spec.h"
#include "serving/inference_queue.h"
#include "serving/requests.h"
#include "serving/server.h"
#include "tiny_bert.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using serving::Server;
using serving::ServerOptions;

fs::path default_model() {
  if (const char* env = std::getenv("SIEVE_DEFAULT_MODEL"); env && *env) return env;
  return SIEVE_DEFAULT_MODEL_DIR;
}

// A server running on its own thread, stopped (gracefully) on destruction.
class RunningServer {
 public:
  RunningServer(const TextModel& model, ServerOptions options) {
    options.host = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<Server>(model, std::move(options));
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  ~RunningServer() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    server_->stop();
    thread_.join();
  }
  Server& server() { return *server_; }
  int port() const { return port_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    c.set_write_timeout(120, 0);
    return c;
  }

 private:
  std::unique_ptr<Server> server_;
  int port_ = 0;
  std::thread thread_;
};

std::vector<float> to_floats(const json& array) {
  std::vector<float> v;
  for (const json& x : array) v.push_back(x.get<float>());
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
  return d;
}

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

std::vector<float> decode_base64_floats(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) break;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);  // little-endian, as on x86
  return out;
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(default_model() / "model.safetensors")) return;
    model_ = std::make_unique<TextModel>(TextModel::load(default_model()));
    ServerOptions o;
    o.model_name = "all-MiniLM-L6-v2";
    o.presets = {"fast=spatten:tokens=0.3,start=2", "ltp:final=0.02"};
    o.max_client_batch_size = 8;
    o.max_body_bytes = 64 * 1024;
    o.http_threads = 16;
    o.max_batch_tokens = 4096;
    server_ = std::make_unique<RunningServer>(*model_, o);
  }
  static void TearDownTestSuite() {
    server_.reset();
    model_.reset();
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << default_model() << " is missing; run scripts/setup.sh";
  }

  // The library's own answer for `text` (TextEmbedder, what `sieve embed --policy` gives, pruned
  // tokens pooled the default way): what the server must return.
  static std::vector<float> expected(const std::string& text, const std::string& policy = "dense") {
    EmbedderOptions options;
    options.policy = policy;
    return TextEmbedder(*model_, options).embed({text}).front();
  }

  static httplib::Result post(const std::string& path, const std::string& body, const httplib::Headers& headers = {}) {
    httplib::Client c = server_->client();
    return c.Post(path.c_str(), headers, body, "application/json");
  }
  static json post_json(const std::string& path, const json& body, int expected_status = 200) {
    const auto r = post(path, body.dump());
    EXPECT_TRUE(r) << "no answer from " << path;
    if (!r) return json();
    EXPECT_EQ(r->status, expected_status) << path << " " << body.dump() << " -> " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  // A rejected request: the status, OpenAI's error shape, the expected code, and /health after.
  static void expect_error(const std::string& path, const std::string& body, int status, const std::string& code,
                           const httplib::Headers& headers = {}) {
    SCOPED_TRACE(path + " " + body.substr(0, 200));
    const auto r = post(path, body, headers);
    ASSERT_TRUE(r) << "no answer";
    EXPECT_EQ(r->status, status) << r->body;
    const json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r->body;
    const json& e = j["error"];
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << r->body;
    EXPECT_TRUE(e["type"].is_string()) << r->body;
    EXPECT_TRUE(e.contains("param") && (e["param"].is_string() || e["param"].is_null())) << r->body;
    EXPECT_EQ(e["code"], code) << r->body;
    httplib::Client c = server_->client();
    const auto health = c.Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
  }

  static inline std::unique_ptr<TextModel> model_;
  static inline std::unique_ptr<RunningServer> server_;
};

TEST_F(ServeTest, HealthInfoAndMetrics) {
  httplib::Client c = server_->client();
  auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c.Get("/info");
  ASSERT_TRUE(r);
  const json info = json::parse(r->body);
  EXPECT_EQ(info["dimensions"], 384);
  EXPECT_EQ(info["max_input_length"], 256);
  EXPECT_EQ(info["policy"], "dense");
  EXPECT_EQ(info["precision"], "fp32");
  EXPECT_EQ(info["presets"]["fast"], "spatten:tokens=0.3,start=2");
  post_json("/v1/embeddings", {{"input", "warm up"}, {"model", "m"}});
  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  for (const char* name : {"sieve_requests_total{route=\"/v1/embeddings\",code=\"200\"}", "sieve_queue_requests",
                           "sieve_batch_sequences_bucket", "sieve_input_tokens_total", "sieve_computed_tokens_total",
                           "sieve_layers_run_total", "sieve_request_duration_seconds_bucket{route=\"/v1/embeddings\""})
    EXPECT_NE(r->body.find(name), std::string::npos) << name << " missing from\n" << r->body;
}

TEST_F(ServeTest, OpenAiEmbeddingsMatchTheLibrary) {
  const std::vector<std::string> texts = {"A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell today."};
  const json j = post_json("/v1/embeddings", {{"input", texts}, {"model", "all-MiniLM-L6-v2"}});
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "all-MiniLM-L6-v2");
  ASSERT_EQ(j["data"].size(), texts.size());
  int64_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(j["data"][i]["object"], "embedding");
    EXPECT_EQ(j["data"][i]["index"], i);
    EXPECT_LT(max_abs_diff(to_floats(j["data"][i]["embedding"]), expected(texts[i])), 1e-5) << texts[i];
    tokens += static_cast<int64_t>(model_->encode({{texts[i], ""}}).inputs[0].ids.size());
  }
  EXPECT_EQ(j["usage"]["prompt_tokens"], tokens);
  EXPECT_EQ(j["usage"]["total_tokens"], tokens);
  EXPECT_EQ(j["usage"]["computed_tokens"], tokens * 6);  // dense: every token in all 6 layers
  EXPECT_EQ(j["usage"]["dense_tokens"], tokens * 6);
  EXPECT_EQ(j["usage"]["layers_run"], 18);
  // One string is one input; /embeddings is the same route without the /v1 prefix.
  const json one = post_json("/embeddings", {{"input", texts[0]}});
  ASSERT_EQ(one["data"].size(), 1u);
  EXPECT_LT(max_abs_diff(to_floats(one["data"][0]["embedding"]), expected(texts[0])), 1e-5);
}

TEST_F(ServeTest, Base64AndDimensions) {
  const std::string text = "Matryoshka embeddings keep their meaning when cut.";
  const std::vector<float> full = expected(text);
  const json b64 = post_json("/v1/embeddings", {{"input", {text}}, {"encoding_format", "base64"}});
  ASSERT_TRUE(b64["data"][0]["embedding"].is_string());
  EXPECT_LT(max_abs_diff(decode_base64_floats(b64["data"][0]["embedding"]), full), 1e-5);

  for (int dims : {1, 64, 383, 384}) {
    std::vector<float> cut(full.begin(), full.begin() + dims);
    l2_normalize(cut);
    const json f = post_json("/v1/embeddings", {{"input", text}, {"dimensions", dims}});
    const std::vector<float> got = to_floats(f["data"][0]["embedding"]);
    ASSERT_EQ(got.size(), static_cast<size_t>(dims));
    EXPECT_NEAR(norm(got), 1.0, 1e-5);
    EXPECT_LT(max_abs_diff(got, cut), 1e-5) << dims;
    const json b = post_json("/v1/embeddings", {{"input", text}, {"dimensions", dims}, {"encoding_format", "base64"}});
    EXPECT_LT(max_abs_diff(decode_base64_floats(b["data"][0]["embedding"]), cut), 1e-5) << dims;
  }
}

TEST_F(ServeTest, TokenIdsGiveTheSameEmbeddingAsText) {
  const std::string text = "Token ids in, embeddings out.";
  const json tokens = post_json("/tokenize", {{"inputs", text}});
  ASSERT_TRUE(tokens.is_array() && tokens.size() == 1);
  std::vector<int64_t> with_specials, bare;
  for (const json& t : tokens[0]) {
    with_specials.push_back(t["id"]);
    if (!t["special"].get<bool>()) bare.push_back(t["id"]);
  }
  EXPECT_EQ(tokens[0][0]["text"], "[CLS]");
  const json no_specials = post_json("/tokenize", {{"inputs", {text}}, {"add_special_tokens", false}});
  EXPECT_EQ(no_specials[0].size(), bare.size());
  const std::vector<float> want = expected(text);
  for (const auto& ids : {with_specials, bare}) {
    const json one = post_json("/v1/embeddings", {{"input", ids}});  // a list of ids is one input
    ASSERT_EQ(one["data"].size(), 1u);
    EXPECT_LT(max_abs_diff(to_floats(one["data"][0]["embedding"]), want), 1e-5);
  }
  const json two = post_json("/v1/embeddings", {{"input", {bare, with_specials}}});
  ASSERT_EQ(two["data"].size(), 2u);
  EXPECT_LT(max_abs_diff(to_floats(two["data"][1]["embedding"]), want), 1e-5);
}

TEST_F(ServeTest, TeiEmbedNormalizeAndTruncation) {
  const std::string text = "text-embeddings-inference clients call /embed.";
  const json j = post_json("/embed", {{"inputs", text}});
  ASSERT_TRUE(j.is_array() && j.size() == 1);
  EXPECT_LT(max_abs_diff(to_floats(j[0]), expected(text)), 1e-5);
  const json raw = post_json("/embed", {{"inputs", {text, text}}, {"normalize", false}});
  ASSERT_EQ(raw.size(), 2u);
  EXPECT_GT(std::fabs(norm(to_floats(raw[0])) - 1.0), 1e-3);  // the pooled vector, not normalized
  std::vector<float> unit = to_floats(raw[0]);
  l2_normalize(unit);
  EXPECT_LT(max_abs_diff(unit, expected(text)), 1e-5);

  std::string long_text = "start";
  for (int i = 0; i < 400; ++i) long_text += " word" + std::to_string(i % 10);
  long_text += " end";
  const json right = post_json("/embed", {{"inputs", long_text}, {"truncate", true}});
  const json left = post_json("/embed", {{"inputs", long_text}, {"truncate", true}, {"truncation_direction", "Left"}});
  EXPECT_LT(max_abs_diff(to_floats(right[0]), expected(long_text)), 1e-5);  // the model's own cut is from the right
  EXPECT_GT(max_abs_diff(to_floats(left[0]), to_floats(right[0])), 1e-3);
}

TEST_F(ServeTest, PolicyPresetsReportTheirSavings) {
  std::string text = "Pruning removes the tokens that stopped mattering, so later layers compute less";
  for (int i = 0; i < 4; ++i) text += " and less";
  const std::string spec = "spatten:tokens=0.3,start=2";
  const json by_name = post_json("/v1/embeddings", {{"input", text}, {"sieve", {{"policy", "fast"}}}});
  const auto r = post("/v1/embeddings", json{{"input", text}}.dump(), {{"X-Sieve-Policy", spec}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json by_header = json::parse(r->body);
  EXPECT_EQ(r->get_header_value("x-sieve-policy"), spec);
  for (const json& j : {by_name, by_header}) {
    EXPECT_EQ(j["usage"]["policy"], spec);
    EXPECT_LT(j["usage"]["computed_tokens"].get<int64_t>(), j["usage"]["dense_tokens"].get<int64_t>());
    EXPECT_LT(max_abs_diff(to_floats(j["data"][0]["embedding"]), expected(text, spec)), 1e-5);
  }
  expect_error("/v1/embeddings", json{{"input", text}, {"sieve", {{"policy", "spatten:tokens=0.1"}}}}.dump(), 400, "policy_not_allowed");
  expect_error("/v1/embeddings", json{{"input", text}}.dump(), 400, "policy_not_allowed", {{"X-Sieve-Policy", "nonsense"}});
  expect_error("/v1/embeddings", json{{"input", text}, {"sieve", "fast"}}.dump(), 400, "invalid_type");
}

// The per-request count of computed tokens is exact: summed over a batch it equals what the
// forward pass itself counts, for both places a pruned token can leave.
TEST_F(ServeTest, ComputedTokensPerRequestAddUpToTheForwardPass) {
  const std::vector<std::string> texts = {"a short one", "a somewhat longer sentence with more words in it to prune",
                                          "the third input of this batch, of middling length"};
  std::vector<EncoderInput> inputs = model_->encode({{texts[0], ""}, {texts[1], ""}, {texts[2], ""}}).inputs;
  for (const std::string spec : {"spatten:tokens=0.3,start=2", "spatten:tokens=0.3,at=next", "ltp:final=0.02", "dense"}) {
    serving::ServerMetrics metrics;
    serving::InferenceQueue queue(*model_, {}, &metrics);
    const auto job = queue.submit(serving::Task::Embed, spec, inputs);
    ASSERT_TRUE(job && job->wait_for(std::chrono::seconds(60)));
    int64_t per_request = 0;
    for (const auto& r : job->results()) per_request += r.computed_tokens;
    std::unique_ptr<PolicyChain> chain;
    if (spec != "dense") chain = parse_policy_spec(spec, model_->encoder().config());
    ForwardStats stats;
    model_->encoder().forward(inputs, ForwardOptions{chain.get()}, &stats);
    int64_t total = 0;
    for (int64_t t : stats.tokens_per_layer) total += t;
    EXPECT_EQ(per_request, total) << spec;
  }
}

TEST_F(ServeTest, ConcurrentRequestsAreBatchedAndEachGetsItsOwnAnswer) {
  constexpr int kClients = 12;
  std::vector<std::string> texts;
  for (int i = 0; i < kClients; ++i) texts.push_back("request number " + std::to_string(i) + std::string(static_cast<size_t>(i), '!'));
  std::vector<std::vector<float>> got(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      httplib::Client c = server_->client();
      const auto r = c.Post("/v1/embeddings", json{{"input", texts[static_cast<size_t>(i)]}}.dump(), "application/json");
      if (r && r->status == 200) got[static_cast<size_t>(i)] = to_floats(json::parse(r->body)["data"][0]["embedding"]);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kClients; ++i) EXPECT_LT(max_abs_diff(got[static_cast<size_t>(i)], expected(texts[static_cast<size_t>(i)])), 1e-5) << i;
}

TEST_F(ServeTest, BadInputsGetOpenAiErrorsAndTheServerKeepsServing) {
  const std::string ok_text = "fine";
  expect_error("/v1/embeddings", "{\"input\": \"unterminated", 400, "invalid_json");
  expect_error("/v1/embeddings", "", 400, "invalid_json");
  expect_error("/v1/embeddings", "[\"input\"]", 400, "invalid_json");
  expect_error("/v1/embeddings", "{}", 400, "missing_field");
  expect_error("/v1/embeddings", R"({"input": 5})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": {"text": "a"}})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": [1.5]})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": ["a", 3]})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": [[1, 2], "a"]})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": "a", "model": 3})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": "a", "encoding_format": "hex"})", 400, "invalid_value");
  expect_error("/v1/embeddings", R"({"input": "a", "dimensions": "8"})", 400, "invalid_value");
  expect_error("/v1/embeddings", R"({"input": "a", "dimensions": 0})", 400, "invalid_value");
  expect_error("/v1/embeddings", R"({"input": "a", "dimensions": 385})", 400, "invalid_value");
  expect_error("/v1/embeddings", R"({"input": "a", "truncate": "no"})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": []})", 400, "empty_input");
  expect_error("/v1/embeddings", R"({"input": ""})", 400, "empty_input");
  expect_error("/v1/embeddings", R"({"input": ["a", ""]})", 400, "empty_input");
  expect_error("/v1/embeddings", R"({"input": [[]]})", 400, "invalid_type");
  expect_error("/v1/embeddings", R"({"input": ["1","2","3","4","5","6","7","8","9"]})", 400, "too_many_inputs");
  expect_error("/v1/embeddings", R"({"input": [999999999]})", 400, "invalid_token_id");
  expect_error("/v1/embeddings", R"({"input": [-1]})", 400, "invalid_token_id");
  expect_error("/v1/embeddings", "{\"input\": \"bad \xff\xfe bytes\"}", 400, "invalid_utf8");
  expect_error("/v1/embeddings", "{\"input\": \"overlong \xc0\xaf\"}", 400, "invalid_utf8");
  expect_error("/v1/embeddings", "{\"input\": \"lone surrogate \\udc00\"}", 400, "invalid_json");
  std::string deep(60000, '[');  // deep nesting, within the 64 KiB body limit
  expect_error("/v1/embeddings", "{\"input\": " + deep + "}", 400, "invalid_json");
  std::string big = "{\"input\": \"" + std::string(70 * 1024, 'a') + "\"}";
  expect_error("/v1/embeddings", big, 413, "body_too_large");
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "word ";
  expect_error("/v1/embeddings", json{{"input", long_text}, {"truncate", false}}.dump(), 400, "context_length_exceeded");
  expect_error("/embed", json{{"inputs", long_text}, {"truncate", false}}.dump(), 400, "context_length_exceeded");
  expect_error("/embed", json{{"inputs", long_text}, {"truncate", false}, {"truncation_direction", "left"}}.dump(), 400,
               "context_length_exceeded");
  std::vector<int64_t> many_ids(300, 2000);
  expect_error("/v1/embeddings", json{{"input", many_ids}, {"truncate", false}}.dump(), 400, "context_length_exceeded");
  post_json("/v1/embeddings", {{"input", long_text}, {"truncate", true}});
  post_json("/v1/embeddings", {{"input", many_ids}});

  expect_error("/embed", R"({"inputs": []})", 400, "empty_input");
  expect_error("/embed", R"({"inputs": "a", "normalize": 1})", 400, "invalid_type");
  expect_error("/embed", R"({"inputs": "a", "truncation_direction": "middle"})", 400, "invalid_value");
  expect_error("/embed", R"({"input": "a"})", 400, "missing_field");
  expect_error("/tokenize", R"({"inputs": ""})", 400, "empty_input");
  expect_error("/tokenize", R"({"inputs": [1, 2]})", 400, "invalid_type");
  expect_error("/predict", R"({"inputs": "a"})", 400, "not_a_classifier");
  expect_error("/rerank", R"({"query": "a", "texts": ["b"]})", 400, "not_a_reranker");
  expect_error("/no/such/route", "{}", 404, "not_found");
  post_json("/v1/embeddings", {{"input", ok_text}});
}

TEST_F(ServeTest, FullQueueAnswers429) {
  ServerOptions o;
  o.max_concurrent_requests = 1;
  o.http_threads = 4;
  RunningServer small(*model_, o);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "busy ";
  const std::string slow = json{{"input", std::vector<std::string>(32, long_text)}}.dump();
  bool saw_429 = false;
  for (int attempt = 0; attempt < 5 && !saw_429; ++attempt) {
    std::atomic<int> slow_status{0};
    std::thread busy([&] {
      httplib::Client c = small.client();
      const auto r = c.Post("/v1/embeddings", slow, "application/json");
      slow_status = r ? r->status : -1;
    });
    while (small.server().admitted_requests() == 0 && slow_status == 0) std::this_thread::yield();
    httplib::Client c = small.client();
    const auto r = c.Post("/v1/embeddings", R"({"input": "one more"})", "application/json");
    ASSERT_TRUE(r);
    if (r->status == 429) {
      saw_429 = true;
      const json e = json::parse(r->body);
      EXPECT_EQ(e["error"]["code"], "queue_full");
      EXPECT_EQ(e["error"]["type"], "rate_limit_error");
      EXPECT_EQ(r->get_header_value("Retry-After"), "1");
    }
    busy.join();
    EXPECT_EQ(slow_status, 200);
  }
  EXPECT_TRUE(saw_429);
  httplib::Client c = small.client();
  const auto r = c.Post("/v1/embeddings", R"({"input": "after the rush"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServeTest, StopFinishesInFlightRequests) {
  ServerOptions o;
  o.http_threads = 4;
  auto running = std::make_unique<RunningServer>(*model_, o);
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "draining ";
  const std::string slow = json{{"input", std::vector<std::string>(16, long_text)}}.dump();
  std::atomic<int> status{0};
  std::thread client([&] {
    httplib::Client c = running->client();
    const auto r = c.Post("/v1/embeddings", slow, "application/json");
    status = r ? r->status : -1;
  });
  while (running->server().admitted_requests() == 0 && status == 0) std::this_thread::yield();
  running->stop();  // returns once the in-flight request is answered
  client.join();
  EXPECT_EQ(status, 200);
  httplib::Client c("127.0.0.1", running->port());
  c.set_connection_timeout(1, 0);
  EXPECT_FALSE(c.Get("/health"));  // no longer listening
}

// /predict and /rerank need a classification head: a tiny random checkpoint has one.
TEST(ServeClassifierTest, PredictAndRerank) {
  for (int labels : {2, 1}) {
    const fs::path dir = testing::make_tiny_bert("serve-" + std::to_string(labels), testing::TinyBertShape{.labels = labels});
    {
      const TextModel model = TextModel::load(dir);
      ServerOptions o;
      o.http_threads = 4;
      RunningServer running(model, o);
      httplib::Client c = running.client();
      const EncodedBatch batch = model.encode({{"w5 w6", ""}, {"w7 w8", "w9"}});
      const auto outputs = model.encoder().forward(batch.inputs);
      if (labels == 2) {
        auto r = c.Post("/predict", R"({"inputs": "w5 w6"})", "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
        json j = json::parse(r->body);
        ASSERT_TRUE(j.is_array() && j.size() == 2);
        EXPECT_GE(j[0]["score"].get<float>(), j[1]["score"].get<float>());
        EXPECT_NEAR(j[0]["score"].get<float>() + j[1]["score"].get<float>(), 1.0, 1e-5);
        const std::vector<float> logits = model.encoder().classify(outputs[0]);
        const size_t best = logits[1] > logits[0] ? 1 : 0;
        EXPECT_EQ(j[0]["label"], "L" + std::to_string(best));
        // A [text, pair] list is one pair; a list of those is a batch.
        r = c.Post("/predict", R"({"inputs": [["w7 w8", "w9"], "w5 w6"], "raw_scores": true})", "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
        j = json::parse(r->body);
        ASSERT_EQ(j.size(), 2u);
        const std::vector<float> pair_logits = model.encoder().classify(outputs[1]);
        for (const json& entry : j[0]) {
          const size_t label = entry["label"] == "L0" ? 0 : 1;
          EXPECT_NEAR(entry["score"].get<float>(), pair_logits[label], 1e-5);
        }
        r = c.Post("/rerank", R"({"query": "w5", "texts": ["w6"]})", "application/json");
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400);
      } else {
        const auto r = c.Post("/rerank", R"({"query": "w7 w8", "texts": ["w5", "w9", "w10 w11"], "return_text": true})",
                              "application/json");
        ASSERT_TRUE(r);
        ASSERT_EQ(r->status, 200) << r->body;
        const json j = json::parse(r->body);
        ASSERT_EQ(j.size(), 3u);
        for (size_t i = 0; i + 1 < j.size(); ++i) EXPECT_GE(j[i]["score"].get<float>(), j[i + 1]["score"].get<float>());
        for (const json& item : j) {
          const size_t index = item["index"];
          const std::vector<std::string> texts = {"w5", "w9", "w10 w11"};
          EXPECT_EQ(item["text"], texts[index]);
          const auto pair = model.encode({{"w7 w8", texts[index]}});
          const float logit = model.encoder().classify(model.encoder().forward(pair.inputs)[0])[0];
          EXPECT_NEAR(item["score"].get<float>(), 1.0f / (1.0f + std::exp(-logit)), 1e-5);
        }
        const auto bad = c.Post("/rerank", R"({"query": "w5", "texts": []})", "application/json");
        ASSERT_TRUE(bad);
        EXPECT_EQ(bad->status, 400);
      }
    }
    fs::remove_all(dir);
  }
}

TEST(ServeRequestsTest, Utf8Validation) {
  EXPECT_TRUE(serving::is_valid_utf8("plain ascii"));
  EXPECT_TRUE(serving::is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(serving::is_valid_utf8("\xc3"));              // cut short
  EXPECT_FALSE(serving::is_valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(serving::is_valid_utf8("\xed\xa0\x80"));      // a UTF-16 surrogate
  EXPECT_FALSE(serving::is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(serving::is_valid_utf8("\x80"));
}

TEST(ServeRequestsTest, Base64MatchesTheStandardAlphabet) {
  const float one = 1.0f;  // 00 00 80 3f
  EXPECT_EQ(serving::base64_floats({&one, 1}), "AACAPw==");
  const std::vector<float> v = {0.5f, -2.25f, 3.0e-8f};
  EXPECT_EQ(decode_base64_floats(serving::base64_floats(v)), v);
}

}  // namespace
}  // namespace sieve
