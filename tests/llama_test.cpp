// The GGUF reader and the Llama-family decoder against references made by
// tools/make_gguf_reference.py (tests/fixtures/smollm2, committed):
//  - every GGML type Sieve reads, on a synthetic GGUF written by the `gguf` package, equals its
//    dequantization exactly; so do rows of the real SmolLM2 file; the tensor table matches;
//  - hostile GGUF files (truncated, lying counts and offsets, unknown types, wrong architecture)
//    give clear errors;
//  - the tokenizer from the GGUF metadata gives Hugging Face's ids on 335 strings;
//  - logits equal transformers' fp32 forward pass on the same dequantized weights, and greedy
//    generations equal transformers' token for token;
//  - RoPE on the GGUF's permuted rows equals transformers' rotate_half on its own rows.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/cpu_features.h"
#include "eval/perplexity.h"
#include "kernels/quantized_gemm.h"
#include "model/decoder.h"
#include "model/gguf.h"
#include "model/llama_decoder.h"
#include "policies/generation_policy.h"
#include "policies/policy_spec.h"
#include "reference_data.h"
#include "test_helpers.h"
#include "tokenizers/byte_bpe.h"
#include "util/error.h"

namespace sieve {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(SIEVE_FIXTURES_DIR) / "smollm2";
const std::filesystem::path kModel = SIEVE_SMOLLM2_GGUF;
// Largest |logit difference| allowed against transformers' fp32 forward pass on the same
// dequantized weights (logits span about -20..30; differences come from summation order).
constexpr double kLogitTolerance = 5e-4;  // measured: 6.3e-5

// A float32, little-endian, C-order .npy file: its shape and values.
struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

Npy read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  char magic[8];
  in.read(magic, 8);
  if (std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path.string() + ": not .npy");
  uint32_t header_length = 0;
  if (magic[6] == 1) {
    uint16_t h;
    in.read(reinterpret_cast<char*>(&h), 2);
    header_length = h;
  } else {
    in.read(reinterpret_cast<char*>(&header_length), 4);
  }
  std::string header(header_length, '\0');
  in.read(header.data(), header_length);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path.string() + ": expected C-order float32");
  Npy npy;
  const size_t open = header.find('(', header.find("'shape'")), close = header.find(')', open);
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  int64_t count = 1;
  for (std::string d; std::getline(dims, d, ',');)
    if (d.find_first_not_of(' ') != std::string::npos) npy.shape.push_back(std::stoll(d)), count *= npy.shape.back();
  npy.values.resize(static_cast<size_t>(count));
  in.read(reinterpret_cast<char*>(npy.values.data()), static_cast<std::streamsize>(count * sizeof(float)));
  if (!in) throw std::runtime_error(path.string() + ": truncated");
  return npy;
}

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---- the reader on the synthetic file -------------------------------------------------------

TEST(Gguf, EveryTypeDequantizesExactlyAsTheGgufPackage) {
  const GgufFile file = GgufFile::open(kFixtures / "types.gguf");
  EXPECT_EQ(file.version(), 3u);
  for (const char* name : {"f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"}) {
    SCOPED_TRACE(name);
    const Npy expected = read_npy(kFixtures / (std::string("types_") + name + ".npy"));
    const Tensor got = file.load_f32(name);
    ASSERT_EQ(got.shape(), expected.shape);
    for (size_t i = 0; i < expected.values.size(); ++i) ASSERT_EQ(got.data()[i], expected.values[i]) << "element " << i;
  }
}

TEST(Gguf, MetadataOfEveryValueType) {
  const GgufFile file = GgufFile::open(kFixtures / "types.gguf");
  const nlohmann::json expected = nlohmann::json::parse(read_bytes(kFixtures / "types_metadata.json"));
  int checked = 0;
  for (const auto& [key, entry] : expected.items()) {
    SCOPED_TRACE(key);
    const GgufValue* v = file.find(key);
    ASSERT_NE(v, nullptr);
    const std::string type = entry.at("type");
    const nlohmann::json& value = entry.at("value");
    if (type == "string") {
      EXPECT_EQ(file.string(key), value.get<std::string>());
    } else if (type == "bool") {
      EXPECT_EQ(file.boolean(key), value.get<bool>());
    } else if (type == "f32" || type == "f64") {
      EXPECT_DOUBLE_EQ(file.number(key), value.get<double>());
    } else if (type == "u64") {
      EXPECT_EQ(static_cast<uint64_t>(v->integer), std::stoull(entry.at("value_str").get<std::string>()));
      EXPECT_THROW(file.integer(key), Error);  // beyond int64: refused rather than wrapped
    } else if (type == "i64") {
      EXPECT_EQ(file.integer(key), std::stoll(entry.at("value_str").get<std::string>()));
    } else if (type == "array[string]") {
      EXPECT_EQ(file.strings(key), value.get<std::vector<std::string>>());
    } else if (type.rfind("array[f", 0) == 0) {
      EXPECT_EQ(file.numbers(key), value.get<std::vector<double>>());
    } else if (type.rfind("array[bool", 0) == 0) {
      std::vector<int64_t> bools;
      for (bool b : value.get<std::vector<bool>>()) bools.push_back(b);
      EXPECT_EQ(v->integers, bools);
    } else if (type.rfind("array[", 0) == 0) {
      EXPECT_EQ(file.integers(key), value.get<std::vector<int64_t>>());
    } else {
      EXPECT_EQ(file.integer(key), value.get<int64_t>());
    }
    ++checked;
  }
  EXPECT_GE(checked, 14);
  EXPECT_THROW(file.integer("test.string"), Error);  // wrong type: an error naming the key
  EXPECT_THROW(file.string("no.such.key"), Error);
}

// ---- quantized GEMM: the blocks multiplied directly equal the dequantized weights' product ----

// y = x W^T on the dequantized weights, in double: the reference for quantized_gemm.
std::vector<double> dequantized_product(const QuantizedMatrix& w, int64_t m, const std::vector<float>& x) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<double> y(static_cast<size_t>(m * w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, w.row(r), row.data(), w.cols);
    for (int64_t i = 0; i < m; ++i) {
      double sum = 0;
      for (int64_t k = 0; k < w.cols; ++k) sum += static_cast<double>(row[static_cast<size_t>(k)]) * x[static_cast<size_t>(i * w.cols + k)];
      y[static_cast<size_t>(i * w.rows + r)] = sum;
    }
  }
  return y;
}

TEST(QuantizedGemm, EqualsDequantizedProductForEveryTypeAndKernel) {
  const GgufFile synthetic = GgufFile::open(kFixtures / "types.gguf");
  std::vector<std::pair<const GgufFile*, std::string>> cases = {{&synthetic, "q4_0"}, {&synthetic, "q4_1"}, {&synthetic, "q8_0"}};
  std::optional<GgufFile> real;
  if (std::filesystem::exists(kModel)) {
    real = GgufFile::open(kModel);
    cases.push_back({&*real, "blk.0.attn_q.weight"});  // Q4_1, 576 x 576
    cases.push_back({&*real, "blk.3.ffn_down.weight"});  // Q4_1, 1536 wide
  }
  for (const auto& [file, name] : cases) {
    const GgufTensorInfo& t = file->tensor(name);
    const QuantizedMatrix w = QuantizedMatrix::from_blocks(t.type, t.ne[1], t.ne[0], file->tensor_bytes(name));
    for (int64_t m : {1, 3, 6}) {  // more rows than one pass of the kernel takes (4)
      SCOPED_TRACE(name + " m=" + std::to_string(m));
      const std::vector<float> x = testing::random_normal(static_cast<size_t>(m * w.cols), static_cast<unsigned>(m));
      const std::vector<double> expected = dequantized_product(w, m, x);
      double scale = 1e-6;
      for (double v : expected) scale = std::max(scale, std::abs(v));
      for (bool use_avx512 : {false, true}) {
        if (use_avx512 && !cpu_has_avx512()) continue;
        std::vector<float> y(static_cast<size_t>(m * w.rows), 1.0f);
        (use_avx512 ? avx512::quantized_rows : portable::quantized_rows)(w, 0, w.rows, m, x.data(), w.cols, y.data(), w.rows, false);
        std::vector<float> accumulated(y.size(), 0.5f);
        (use_avx512 ? avx512::quantized_rows : portable::quantized_rows)(w, 0, w.rows, m, x.data(), w.cols, accumulated.data(), w.rows, true);
        for (size_t i = 0; i < y.size(); ++i) {
          ASSERT_NEAR(y[i], expected[i], 1e-5 * scale) << "avx512=" << use_avx512 << " element " << i;
          ASSERT_NEAR(accumulated[i], expected[i] + 0.5, 1e-5 * scale) << "accumulate, element " << i;
        }
      }
      std::vector<float> threaded(static_cast<size_t>(m * w.rows));
      quantized_gemm(w, m, x.data(), w.cols, threaded.data(), w.rows, false);
      for (size_t i = 0; i < threaded.size(); ++i) ASSERT_NEAR(threaded[i], expected[i], 1e-5 * scale);
    }
  }
  EXPECT_THROW(QuantizedMatrix::from_blocks(GgmlType::F16, 3, 64, synthetic.tensor_bytes("f16")), Error);
}

// The int8 path: activations quantized per block (every element within half a step of x), the
// VNNI kernel equal to the plainly written integer arithmetic, both equal to the product with the
// rounded activations (Q4_1's minimum too: see Int8Activations::minimum_sums) and so within the
// bound the rounding allows of the exact product: |error| <= sum_k |w_k| * scale_block(k) / 2.
TEST(QuantizedGemm, Int8ActivationsKernelEqualsItsReferenceWithinTheRoundingBound) {
  const GgufFile synthetic = GgufFile::open(kFixtures / "types.gguf");
  std::vector<std::pair<const GgufFile*, std::string>> cases = {{&synthetic, "q4_0"}, {&synthetic, "q4_1"}, {&synthetic, "q8_0"}};
  std::optional<GgufFile> real;
  if (std::filesystem::exists(kModel)) {
    real = GgufFile::open(kModel);
    cases.push_back({&*real, "blk.0.attn_q.weight"});   // Q4_1
    cases.push_back({&*real, "blk.3.ffn_down.weight"});  // Q4_1, 1536 wide
    cases.push_back({&*real, "token_embd.weight"});      // Q8_0, the LM head
  }
  for (const auto& [file, name] : cases) {
    const GgufTensorInfo& t = file->tensor(name);
    const int64_t rows = std::min<int64_t>(t.ne[1], 2000);
    const auto bytes = file->tensor_bytes(name).first(static_cast<size_t>(rows * t.ne[0] / 32 * ggml_type_traits(t.type).block_bytes));
    const QuantizedMatrix w = QuantizedMatrix::from_blocks(t.type, rows, t.ne[0], bytes);
    if (w.cols % 64 != 0) continue;  // the int8 path runs whole pairs of blocks
    for (int64_t m : {1, 3, 6}) {
      SCOPED_TRACE(name + " m=" + std::to_string(m));
      std::vector<float> x = testing::random_normal(static_cast<size_t>(m * w.cols), static_cast<unsigned>(10 + m));
      x[5] = 40.0f;  // an outlier, as real activations have: its block's step grows, others do not
      const Int8Activations q = Int8Activations::quantize(w.type, m, x.data(), w.cols, w.cols);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t b = 0; b < q.blocks(); ++b)
          for (int64_t k = 0; k < 32; ++k) {
            const float value = x[static_cast<size_t>(i * w.cols + b * 32 + k)];
            ASSERT_LE(std::abs(q.scale(i, b) * q.q[static_cast<size_t>(q.q_index(i, b, k))] - value), q.scale(i, b) * 0.5001f);
          }
      const std::vector<double> exact = dequantized_product(w, m, x);
      std::vector<float> row(static_cast<size_t>(w.cols));
      std::vector<float> reference(static_cast<size_t>(m * w.rows));
      portable::quantized_rows_int8(w, 0, w.rows, q, reference.data(), w.rows, false);
      for (int64_t r = 0; r < w.rows; ++r) {
        dequantize_row(w.type, w.row(r), row.data(), w.cols);
        for (int64_t i = 0; i < m; ++i) {
          double bound = 0, magnitude = 0;
          for (int64_t k = 0; k < w.cols; ++k) {
            bound += std::abs(row[static_cast<size_t>(k)]) * q.scale(i, k / 32) * 0.5;
            magnitude += std::abs(row[static_cast<size_t>(k)] * x[static_cast<size_t>(i * w.cols + k)]);
          }
          const size_t at = static_cast<size_t>(i * w.rows + r);
          ASSERT_LE(std::abs(reference[at] - exact[at]), bound + 1e-5 * magnitude) << "row " << r;
          // And exactly (to summation order) the product with the rounded activations scale * q.
          double emulated = 0;
          for (int64_t k = 0; k < w.cols; ++k)
            emulated += row[static_cast<size_t>(k)] * static_cast<double>(q.scale(i, k / 32)) * q.q[static_cast<size_t>(q.q_index(i, k / 32, k % 32))];
          ASSERT_NEAR(reference[at], emulated, 1e-5 * magnitude + 1e-6) << "row " << r;
        }
      }
      std::vector<float> threaded(reference.size());
      quantized_gemm(w, m, x.data(), w.cols, threaded.data(), w.rows, false, QuantizedActivations::Int8);
      std::vector<float> accumulated(reference.size(), 0.5f);
      if (cpu_has_avx512_vnni()) avx512vnni::quantized_rows_int8(w, 0, w.rows, q, accumulated.data(), w.rows, true);
      else portable::quantized_rows_int8(w, 0, w.rows, q, accumulated.data(), w.rows, true);
      double scale = 1e-6;
      for (float v : reference) scale = std::max(scale, static_cast<double>(std::abs(v)));
      for (size_t i = 0; i < reference.size(); ++i) {
        ASSERT_NEAR(threaded[i], reference[i], 1e-5 * scale) << "element " << i;
        ASSERT_NEAR(accumulated[i], reference[i] + 0.5, 1e-5 * scale) << "accumulate, element " << i;
      }
    }
  }
}

// ---- hostile files -----------------------------------------------------------------------------

class GgufHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    original_ = read_bytes(kFixtures / "types.gguf");
    dir_ = std::filesystem::temp_directory_path() / ("sieve_gguf_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Open `bytes` as a GGUF file and return the error message ("" when it opened).
  std::string open_error(const std::string& bytes) {
    const auto path = dir_ / "bad.gguf";
    write_bytes(path, bytes);
    return error_of([&] { GgufFile::open(path); });
  }
  template <typename T>
  std::string patched(size_t offset, T value) {
    std::string b = original_;
    std::memcpy(b.data() + offset, &value, sizeof value);
    return b;
  }
  std::string original_;
  std::filesystem::path dir_;
};

TEST_F(GgufHostile, TruncatedAnywhereIsAClearError) {
  ASSERT_EQ(open_error(original_), "");
  // Every prefix: inside the header, the metadata, the tensor table and the data section.
  // (The writer pads the data section to 32 bytes, so the last 20 bytes are padding.)
  for (size_t length : {size_t{0}, size_t{3}, size_t{4}, size_t{10}, size_t{30}, size_t{200}, original_.size() / 2, original_.size() - 32}) {
    SCOPED_TRACE(length);
    const std::string message = open_error(original_.substr(0, length));
    EXPECT_NE(message, "");
  }
  EXPECT_NE(open_error(original_.substr(0, original_.size() - 32)).find("outside"), std::string::npos);
}

TEST_F(GgufHostile, BadMagicVersionAndCounts) {
  EXPECT_NE(open_error("GGML" + original_.substr(4)).find("not a GGUF file"), std::string::npos);
  EXPECT_NE(open_error(patched<uint32_t>(4, 1)).find("version 1"), std::string::npos);
  // Counts far beyond what the file could hold are refused before anything is allocated.
  EXPECT_NE(open_error(patched<uint64_t>(8, uint64_t{1} << 60)).find("cannot fit"), std::string::npos);
  EXPECT_NE(open_error(patched<uint64_t>(16, uint64_t{1} << 60)).find("cannot fit"), std::string::npos);
  // The first key's length claims more bytes than the file has.
  EXPECT_NE(open_error(patched<uint64_t>(24, uint64_t{1} << 40)).find("remain"), std::string::npos);
}

TEST_F(GgufHostile, LyingTensorEntries) {
  const GgufFile file = GgufFile::open(kFixtures / "types.gguf");
  // Find the tensor table entry of "q8_0" (the last tensor) by its name bytes.
  const size_t name_at = original_.rfind(std::string("\x04\0\0\0\0\0\0\0q8_0", 12));
  ASSERT_NE(name_at, std::string::npos);
  const size_t dims_at = name_at + 12, ne0_at = dims_at + 4, ne1_at = ne0_at + 8, type_at = ne1_at + 8, offset_at = type_at + 4;
  EXPECT_NE(open_error(patched<uint32_t>(dims_at, 7)).find("dimensions"), std::string::npos);
  EXPECT_NE(open_error(patched<uint64_t>(ne1_at, uint64_t{1} << 45)).find("impossible dimension"), std::string::npos);
  EXPECT_NE(open_error(patched<uint64_t>(ne1_at, 1000)).find("outside"), std::string::npos);
  EXPECT_NE(open_error(patched<uint64_t>(ne0_at, 48)).find("blocks"), std::string::npos);
  EXPECT_NE(open_error(patched<uint32_t>(type_at, 77)).find("unknown GGML type 77"), std::string::npos);
  EXPECT_NE(open_error(patched<uint64_t>(offset_at, 3)).find("aligned"), std::string::npos);
  EXPECT_NE(open_error(patched<uint64_t>(offset_at, 0)).find("overlap"), std::string::npos);
  EXPECT_NE(open_error(patched<uint64_t>(offset_at, uint64_t{1} << 50)).find("outside"), std::string::npos);
  // A type Sieve sizes but does not decode opens, and refuses only when read.
  const std::string k_quant = patched<uint32_t>(type_at, 12);  // Q4_K: 256-element blocks, so also a size error
  EXPECT_NE(open_error(k_quant), "");
}

TEST_F(GgufHostile, NotALlamaIsRefusedByTheDecoder) {
  // types.gguf says general.architecture = sieve_test.
  const std::string message = error_of([&] { LlamaDecoder::load(kFixtures / "types.gguf"); });
  EXPECT_NE(message.find("architecture 'sieve_test' is not supported"), std::string::npos) << message;
  EXPECT_NE(error_of([&] { GgufFile::open(dir_ / "missing.gguf"); }).find("not found"), std::string::npos);
  EXPECT_NE(error_of([&] { GgufFile::open(dir_); }).find("directory"), std::string::npos);
  EXPECT_NE(error_of([&] { LlamaDecoder::load(dir_); }).find("exactly one .gguf"), std::string::npos);
}

// ---- the real SmolLM2 file -----------------------------------------------------------------------

TEST(GgufRealModel, TensorTableAndRowsMatchTheGgufPackage) {
  SIEVE_REQUIRE_FILE(kModel);
  const GgufFile file = GgufFile::open(kModel);
  const nlohmann::json table = nlohmann::json::parse(read_bytes(kFixtures / "real_tensors.json"));
  ASSERT_EQ(file.tensor_names().size(), table.size());
  for (const nlohmann::json& t : table) {
    const GgufTensorInfo& info = file.tensor(t.at("name"));
    EXPECT_EQ(std::string(ggml_type_traits(info.type).name), t.at("type").get<std::string>());
    EXPECT_EQ(info.ne, t.at("ne").get<std::vector<int64_t>>());
    EXPECT_EQ(file.data_offset() + info.offset, t.at("offset").get<uint64_t>());  // the fixture's offsets are absolute
    EXPECT_EQ(info.bytes, t.at("n_bytes").get<uint64_t>());
  }
  for (const char* name : {"token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight"}) {
    SCOPED_TRACE(name);
    const Npy rows = read_npy(kFixtures / (std::string("real_") + name + ".npy"));
    const Tensor all = file.load_f32(name);
    for (size_t i = 0; i < rows.values.size(); ++i) ASSERT_EQ(all.data()[i], rows.values[i]) << "element " << i;
  }
}

TEST(GgufRealModel, TokenizerGivesTheReferenceIds) {
  SIEVE_REQUIRE_FILE(kModel);
  const ByteLevelBpe tokenizer = load_decoder_tokenizer(kModel);
  int checked = 0;
  for (const nlohmann::json& c : read_jsonl(kFixtures / "tokenizer.jsonl")) {
    const std::string text = c.at("text");
    EXPECT_EQ(tokenizer.encode(text, c.at("special").get<bool>()), c.at("ids").get<std::vector<int32_t>>())
        << "text: " << text << ", special tokens parsed: " << c.at("special");
    ++checked;
  }
  EXPECT_GE(checked, 200);
  EXPECT_EQ(tokenizer.end_of_text(), 2);  // <|im_end|>, the GGUF's eos_token_id
}

class SmolLm2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::filesystem::exists(kModel)) model_ = new LlamaDecoder(LlamaDecoder::load(kModel, LlamaWeights::Gguf, QuantizedActivations::Fp32));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override { SIEVE_REQUIRE_FILE(kModel); }
  static inline LlamaDecoder* model_ = nullptr;
};

TEST_F(SmolLm2, ConfigFromMetadata) {
  const LlamaConfig& c = model_->config();
  EXPECT_EQ(c.layers, 30);
  EXPECT_EQ(c.hidden, 576);
  EXPECT_EQ(c.ffn, 1536);
  EXPECT_EQ(c.heads, 9);
  EXPECT_EQ(c.kv_heads, 3);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_DOUBLE_EQ(c.rope_base, 100000.0);
  EXPECT_EQ(model_->shape().kv_heads, 3);  // the cache stores KV heads, not query heads
}

TEST_F(SmolLm2, RopeOnGgufRowsEqualsRotateHalfOnHuggingFaceRows) {
  // Hugging Face rotates (x[i], x[i + d/2]) of each head ("rotate_half"); llama.cpp's converter
  // stores row j*d/2 + i of a head at row 2i + j, where Sieve rotates adjacent pairs. Done on a
  // random head at a few positions, against rotate_half computed here in double.
  const int64_t d = model_->config().head_dim(), half = d / 2;
  const double base = model_->config().rope_base;
  const std::vector<float> hf = testing::random_normal(static_cast<size_t>(d), 7);
  for (int64_t position : {0, 1, 2, 17, 511, 4000}) {
    SCOPED_TRACE(position);
    std::vector<float> gguf(static_cast<size_t>(d));
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) gguf[static_cast<size_t>(2 * i + j)] = hf[static_cast<size_t>(j * half + i)];
    model_->apply_rope(gguf.data(), position);
    double worst = 0;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(position) * std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(d));
      const double x = hf[static_cast<size_t>(i)], y = hf[static_cast<size_t>(i + half)];
      worst = std::max(worst, std::abs(gguf[static_cast<size_t>(2 * i)] - (x * std::cos(angle) - y * std::sin(angle))));
      worst = std::max(worst, std::abs(gguf[static_cast<size_t>(2 * i + 1)] - (y * std::cos(angle) + x * std::sin(angle))));
    }
    // fp32 angles, as transformers computes them: position * inv_freq rounds at ~1e-7 relative.
    EXPECT_LT(worst, 1e-6 * std::max<double>(1.0, static_cast<double>(position)));
  }
}

// Logits of the last position (and of every position for two prompts) against transformers fp32.
TEST_F(SmolLm2, LogitsMatchTransformers) {
  const std::vector<nlohmann::json> prompts = read_jsonl(kFixtures / "logits.jsonl");
  const Npy expected = read_npy(kFixtures / "logits.npy");
  ASSERT_GE(prompts.size(), 20u);
  ASSERT_EQ(expected.shape, (std::vector<int64_t>{static_cast<int64_t>(prompts.size()), 49152}));
  auto dense = parse_generation_spec("dense");
  double worst = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    const auto ids = prompts[p].at("ids").get<std::vector<int32_t>>();
    DecodingSession session(*model_, *dense, static_cast<int64_t>(ids.size()));
    const std::vector<float> logits = session.prefill(ids);
    for (size_t v = 0; v < logits.size(); ++v)
      worst = std::max(worst, std::abs(static_cast<double>(logits[v]) - expected.values[p * 49152 + v]));
  }
  EXPECT_LT(worst, kLogitTolerance);
  std::printf("largest |logit - transformers| over %zu prompts: %.3g\n", prompts.size(), worst);
  for (int k : {0, 1}) {
    const Npy all = read_npy(kFixtures / ("logits_all_" + std::to_string(k) + ".npy"));
    const auto ids = prompts[static_cast<size_t>(k)].at("ids").get<std::vector<int32_t>>();
    DecodingSession session(*model_, *dense, static_cast<int64_t>(ids.size()));
    Tensor logits;
    session.prefill(ids, &logits);
    ASSERT_EQ(logits.shape(), all.shape);
    double worst_all = 0;
    for (size_t i = 0; i < all.values.size(); ++i) worst_all = std::max(worst_all, std::abs(static_cast<double>(logits.data()[i]) - all.values[i]));
    EXPECT_LT(worst_all, kLogitTolerance) << "prompt " << k;
  }
}

TEST_F(SmolLm2, GreedyGenerationsMatchTransformers) {
  auto dense = parse_generation_spec("dense");
  const std::vector<nlohmann::json> cases = read_jsonl(kFixtures / "greedy.jsonl");
  ASSERT_GE(cases.size(), 10u);
  for (const nlohmann::json& c : cases) {
    const auto prompt = c.at("prompt_ids").get<std::vector<int32_t>>();
    const auto expected = c.at("generated").get<std::vector<int32_t>>();
    DecodingSession session(*model_, *dense, static_cast<int64_t>(prompt.size() + expected.size()));
    std::vector<float> logits = session.prefill(prompt);
    std::vector<int32_t> generated;
    while (generated.size() < expected.size()) {
      const auto next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      generated.push_back(next);
      if (generated.size() < expected.size()) logits = session.step(next);
    }
    EXPECT_EQ(generated, expected);
  }
}

// Greedy tokens and every step's logits under a generation policy (the prompt: a WikiText-2 line).
std::vector<int32_t> greedy(const Decoder& model, GenerationPolicy& policy, const std::vector<int32_t>& prompt, int steps,
                            std::vector<std::vector<float>>* all_logits = nullptr, int64_t* cached = nullptr) {
  DecodingSession session(model, policy, static_cast<int64_t>(prompt.size()) + steps);
  std::vector<float> logits = session.prefill(prompt);
  std::vector<int32_t> tokens;
  for (int s = 0; s < steps; ++s) {
    if (all_logits) all_logits->push_back(logits);
    tokens.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
    if (s + 1 < steps) logits = session.step(tokens.back());
  }
  if (cached) *cached = session.cache().size();
  return tokens;
}

std::vector<int32_t> wikitext_prompt(const ByteLevelBpe& tokenizer) {
  return tokenizer.encode(" The game 's battle system , the BliTZ system , is carried over directly from Valkyira Chronicles . "
                          "During missions , players select each unit using a top @-@ down perspective of the battlefield map");
}

// The prompt and the sentence after it: text to score.
std::vector<int32_t> wikitext_passage(const ByteLevelBpe& tokenizer) {
  std::vector<int32_t> ids = wikitext_prompt(tokenizer);
  const std::vector<int32_t> more = tokenizer.encode(" in real @-@ time gameplay , and the story is told through comic book @-@ like panels");
  ids.insert(ids.end(), more.begin(), more.end());
  return ids;
}

TEST_F(SmolLm2, PoliciesThatPruneNothingAreBitIdenticalToDense) {
  const auto prompt = wikitext_prompt(load_decoder_tokenizer(kModel));
  auto dense = parse_generation_spec("dense");
  std::vector<std::vector<float>> dense_logits;
  const auto expected = greedy(*model_, *dense, prompt, 12, &dense_logits);
  for (const char* spec : {"kv_prune:keep=1", "value_prune:k=1000", "kv_prune:keep=1+value_prune:k=1000"}) {
    auto policy = parse_generation_spec(spec);
    std::vector<std::vector<float>> logits;
    EXPECT_EQ(greedy(*model_, *policy, prompt, 12, &logits), expected) << spec;
    EXPECT_TRUE(logits == dense_logits) << spec << ": logits differ from dense";
  }
}

TEST_F(SmolLm2, KvPruningWorksOnKvHeads) {
  // The cache holds KV heads (3), each slot shared by 3 query heads; pruning keeps ceil(R * seen).
  const auto prompt = wikitext_prompt(load_decoder_tokenizer(kModel));
  auto pruned = parse_generation_spec("kv_prune:keep=0.5");
  int64_t cached = 0;
  greedy(*model_, *pruned, prompt, 10, nullptr, &cached);
  const int64_t seen = static_cast<int64_t>(prompt.size()) + 9;
  EXPECT_EQ(cached, (seen + 1) / 2);
}

TEST_F(SmolLm2, PrefillScoringEqualsStepScoringForDense) {
  const ByteLevelBpe tokenizer = load_decoder_tokenizer(kModel);
  const std::vector<int32_t> ids = wikitext_passage(tokenizer);
  auto dense = parse_generation_spec("dense");
  PerplexitySetup setup;
  setup.protocol = PerplexityProtocol::Chunks;
  setup.window = 24;
  const PerplexityResult steps = evaluate_perplexity(*model_, ids, *dense, setup);
  setup.scoring = PerplexityScoring::Prefill;
  const PerplexityResult prefill = evaluate_perplexity(*model_, ids, *dense, setup);
  ASSERT_EQ(steps.windows, static_cast<int64_t>(ids.size()) / 24);
  EXPECT_EQ(steps.tokens_scored, steps.windows * (24 - 12 - 1));  // llama.cpp: the second half minus one
  EXPECT_EQ(prefill.tokens_scored, steps.tokens_scored);
  EXPECT_NEAR(prefill.mean_nll, steps.mean_nll, 1e-4);
  // The KV statistics prefill reports are what steps read from a dense cache: same bytes, same steps.
  EXPECT_EQ(prefill.steps, steps.steps);
  EXPECT_DOUBLE_EQ(prefill.kv_bytes_per_token, steps.kv_bytes_per_token);
  EXPECT_DOUBLE_EQ(prefill.mean_cached_tokens, steps.mean_cached_tokens);
  // Grouped-query attention: a step reads each of the 3 KV heads once, not once per query head.
  const DecoderShape shape = model_->shape();
  double expected_bytes = 0;
  for (int64_t c = 0; c < steps.windows; ++c)
    for (int64_t u = 13; u < 23; ++u) expected_bytes += static_cast<double>(u + 1) * shape.layers * shape.kv_heads * shape.head_dim * 4 * 2;
  EXPECT_DOUBLE_EQ(steps.kv_bytes_per_token, expected_bytes / static_cast<double>(steps.steps));
  // The context fed as steps too (llama.cpp's quantized-cache protocol): same scores for dense,
  // every token but the window's first (the prompt) and last (nothing to predict) a step.
  setup.scoring = PerplexityScoring::Steps;
  setup.context_steps = true;
  const PerplexityResult all_steps = evaluate_perplexity(*model_, ids, *dense, setup);
  EXPECT_EQ(all_steps.tokens_scored, steps.tokens_scored);
  EXPECT_NEAR(all_steps.mean_nll, prefill.mean_nll, 1e-4);
  EXPECT_EQ(all_steps.steps, steps.windows * (24 - 2));
}

// The default int8 activations (as llama.cpp) against the exact fp32 path, step by step on real
// text: mean NLL within 0.5 % and the next-token choice the same almost everywhere. Measured on
// WikiText-2 chunks 20-59, every token a step: perplexity 21.2559 (int8) against 21.2255 (fp32).
TEST_F(SmolLm2, Int8ActivationsStayCloseToTheExactPath) {
  const LlamaDecoder int8 = LlamaDecoder::load(kModel, LlamaWeights::Gguf, QuantizedActivations::Int8);
  const ByteLevelBpe tokenizer = load_decoder_tokenizer(kModel);
  const std::vector<int32_t> ids = wikitext_passage(tokenizer);
  auto dense = parse_generation_spec("dense");
  PerplexitySetup setup;
  setup.protocol = PerplexityProtocol::Chunks;
  setup.window = static_cast<int64_t>(ids.size());
  const PerplexityResult exact = evaluate_perplexity(*model_, ids, *dense, setup);
  const PerplexityResult fast = evaluate_perplexity(int8, ids, *dense, setup);
  ASSERT_GT(exact.tokens_scored, 10);
  EXPECT_NEAR(fast.mean_nll, exact.mean_nll, 0.005 * exact.mean_nll);
  EXPECT_NE(fast.mean_nll, exact.mean_nll);  // the int8 path did run
  // Teacher-forced steps over the same text: the most likely next token agrees at >= 90 % of them
  // (near-ties may flip: a greedy continuation can part ways, as llama.cpp's does from an fp32 run).
  DecodingSession exact_session(*model_, *dense, static_cast<int64_t>(ids.size())), fast_session(int8, *dense, static_cast<int64_t>(ids.size()));
  const std::span<const int32_t> all(ids);
  std::vector<float> a = exact_session.prefill(all.first(4)), b = fast_session.prefill(all.first(4));
  int agree = 0, steps = 0;
  double worst = 0;
  for (size_t t = 4; t < ids.size(); ++t, ++steps) {
    a = exact_session.step(ids[t]), b = fast_session.step(ids[t]);
    agree += std::max_element(a.begin(), a.end()) - a.begin() == std::max_element(b.begin(), b.end()) - b.begin();
    for (size_t v = 0; v < a.size(); ++v) worst = std::max(worst, static_cast<double>(std::abs(a[v] - b[v])));
  }
  EXPECT_GE(agree, steps * 9 / 10);
  std::printf("mean NLL fp32 %.5f int8 %.5f; argmax agrees at %d of %d steps; largest |logit difference| %.3f\n",
              exact.mean_nll, fast.mean_nll, agree, steps, worst);
}

// ---- the CLI on the GGUF ----------------------------------------------------------------------

TEST_F(SmolLm2, CliTokenizeGenerateAndPerplexity) {
  const std::string model = testing::quoted(kModel);
  testing::CliResult r = testing::run_cli("tokenize --model " + model + " 'Hello world, it'\"'\"'s 2024!'", 60, false);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"ids\": [19556, 905, 28, 357, 506, 216, 34, 32, 34, 36, 17]"), std::string::npos) << r.output;

  // --chat: one user turn of the GGUF's ChatML template, whose default system turn comes first;
  // the CLI's greedy stream equals the library's (itself checked against transformers above).
  const ByteLevelBpe tokenizer = load_decoder_tokenizer(kModel);
  const std::string question = "What is the capital of France?";
  const std::string prompt = chat_prompt(kModel, question);
  EXPECT_EQ(prompt.rfind("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                         "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n", 0), 0u) << prompt;
  auto dense = parse_generation_spec("dense");
  auto expected = greedy(*model_, *dense, tokenizer.encode(prompt), 50);
  expected.erase(std::find(expected.begin(), expected.end(), 2), expected.end());  // generation stops at <|im_end|>
  r = testing::run_cli("generate --threads 1 --activations fp32 --chat --model " + model + " -n 50 '" + question + "'", 120, false);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, tokenizer.decode(expected) + "\n");

  const std::string data = testing::quoted(std::filesystem::path(SIEVE_SOURCE_DIR) / "tests" / "fixtures" / "smollm2" / "README.md");
  r = testing::run_cli("perplexity --threads 1 --model " + model + " --data " + data +
                       " --protocol chunks --window 32 --max-windows 2 --policy kv_prune:keep=0.5,recent=4");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("kv_prune:keep=0.5,recent=4"), std::string::npos) << r.output;
  // Prefill scoring cannot show a generation policy's effect: refused, as are unknown values.
  EXPECT_NE(testing::run_cli("perplexity --model " + model + " --data " + data + " --scoring prefill --policy kv_prune:keep=0.5").code, 0);
  EXPECT_NE(testing::run_cli("perplexity --model " + model + " --data " + data + " --protocol chunks --stride 3").code, 0);
  EXPECT_NE(testing::run_cli("generate --model " + model + " --weights int3 hi").code, 0);
  EXPECT_NE(testing::run_cli("bench-decoder --model " + model + " --data " + data + " --prompt-tokens 100000").code, 0);
}

}  // namespace
}  // namespace sieve
