#include "model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "util/error.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;

// Each test gets a fresh directory for the files it writes and damages.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("sieve_safetensors_" + std::to_string(::getpid()) + "_" + test->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }

  // A file with the given raw header text and data bytes, as a writer that lies would make it.
  fs::path write_raw(const std::string& header, const std::string& data = "", const std::string& name = "raw.safetensors") {
    const uint64_t length = header.size();
    std::string bytes(reinterpret_cast<const char*>(&length), sizeof length);
    return write_bytes(bytes + header + data, name);
  }

  fs::path write_bytes(const std::string& bytes, const std::string& name = "raw.safetensors") {
    std::ofstream(path(name), std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path(name);
  }

  // A valid two-tensor file: "a" is [2, 3] = 0..5, "b" is [4] = 10..13.
  fs::path write_valid(const std::string& name = "valid.safetensors") {
    Tensor a({2, 3}), b({4});
    for (int i = 0; i < 6; ++i) a.data()[i] = static_cast<float>(i);
    for (int i = 0; i < 4; ++i) b.data()[i] = static_cast<float>(10 + i);
    write_safetensors(path(name), {{"a", &a}, {"b", &b}});
    return path(name);
  }

  static std::string read_bytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
};

// The sieve::Error message of `action`, or a marker that fails every keyword check.
template <class Action>
std::string error_of(Action&& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no sieve::Error thrown>";
}

void expect_mentions(const std::string& message, std::initializer_list<std::string> words) {
  for (const std::string& word : words) {
    EXPECT_NE(message.find(word), std::string::npos) << "message lacks '" << word << "': " << message;
  }
}

void expect_open_error(const fs::path& file, std::initializer_list<std::string> words) {
  const std::string message = error_of([&] { SafetensorsFile::open(file); });
  expect_mentions(message, {file.string()});
  expect_mentions(message, words);
}

std::string tensor_entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "{\"dtype\":" + dtype + ",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

TEST_F(SafetensorsTest, RoundTripsWhatTheWriterWrote) {
  const SafetensorsFile file = SafetensorsFile::open(write_valid());
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(file.contains("a"));
  EXPECT_FALSE(file.contains("c"));
  EXPECT_EQ(file.info("a").dtype, DType::F32);
  EXPECT_EQ(file.info("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(file.info("b").begin, 24u);
  EXPECT_EQ(file.info("b").end, 40u);

  const Tensor a = file.load_f32("a", {2, 3});
  ASSERT_EQ(a.shape(), (std::vector<int64_t>{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a.data()[i], static_cast<float>(i));
  const Tensor b = file.load_f32("b");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.data()[i], static_cast<float>(10 + i));
}

TEST_F(SafetensorsTest, DataRegionIsEightByteAligned) {
  const std::string bytes = read_bytes(write_valid());
  uint64_t header_length;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
}

TEST_F(SafetensorsTest, MovedFileStaysUsable) {
  SafetensorsFile original = SafetensorsFile::open(write_valid());
  SafetensorsFile moved = std::move(original);
  EXPECT_EQ(moved.load_f32("b").data()[3], 13.0f);
}

TEST_F(SafetensorsTest, ReportsMissingTensorAndWrongShape) {
  const fs::path valid = write_valid();
  const SafetensorsFile file = SafetensorsFile::open(valid);
  expect_mentions(error_of([&] { file.info("nope"); }), {"missing tensor nope", valid.string()});
  expect_mentions(error_of([&] { file.load_f32("nope"); }), {"missing tensor nope"});
  expect_mentions(error_of([&] { file.load_f32("a", {3, 2}); }), {"'a'", "[2, 3]", "expected [3, 2]", valid.string()});
}

TEST_F(SafetensorsTest, RejectsMissingFileDirectoryAndEmptyFile) {
  expect_open_error(path("absent.safetensors"), {"not found"});
  expect_open_error(dir_, {"directory"});
  expect_open_error(write_bytes("", "empty.safetensors"), {"too short", "0 bytes"});
  expect_open_error(write_bytes("1234567", "seven.safetensors"), {"too short"});
}

TEST_F(SafetensorsTest, EveryTruncationIsAnError) {
  const std::string bytes = read_bytes(write_valid());
  uint64_t header_length;
  std::memcpy(&header_length, bytes.data(), 8);
  const size_t data_start = 8 + header_length;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    SCOPED_TRACE("truncated to " + std::to_string(cut) + " bytes");
    const fs::path file = write_bytes(bytes.substr(0, cut), "cut.safetensors");
    if (cut < 8) {
      expect_open_error(file, {"too short"});
    } else if (cut < data_start) {
      expect_open_error(file, {"header length", "truncated"});
    } else {
      expect_open_error(file, {"beyond the data region"});
    }
  }
}

TEST_F(SafetensorsTest, RejectsDamagedHeaderLength) {
  const std::string bytes = read_bytes(write_valid());
  auto with_length = [&](uint64_t length) {
    std::string damaged = bytes;
    std::memcpy(damaged.data(), &length, 8);
    return write_bytes(damaged, "damaged.safetensors");
  };
  uint64_t header_length;
  std::memcpy(&header_length, bytes.data(), 8);

  expect_open_error(with_length(~uint64_t{0}), {"absurd"});
  expect_open_error(with_length(uint64_t{1} << 40), {"absurd"});
  expect_open_error(with_length(bytes.size()), {"exceeds", "truncated"});
  expect_open_error(with_length(0), {"not valid JSON"});
  expect_open_error(with_length(header_length - 3), {"not valid JSON"});
  expect_open_error(with_length(header_length + 5), {"not valid JSON"});
}

TEST_F(SafetensorsTest, RejectsHeaderThatIsNotAJsonObject) {
  expect_open_error(write_raw("hello, world"), {"not valid JSON"});
  expect_open_error(write_raw(std::string("{\"a\"\0:1}", 8)), {"not valid JSON"});
  expect_open_error(write_raw("[1, 2, 3]"), {"must be a JSON object", "array"});
  expect_open_error(write_raw("{\"a\": 5}"), {"'a'", "entry must be a JSON object"});
  expect_open_error(write_raw("{\"__metadata__\": [1]}"), {"__metadata__"});
  expect_open_error(write_raw("{\"__metadata__\": {\"format\": 1}}"), {"__metadata__", "format"});
}

TEST_F(SafetensorsTest, DeeplyNestedHeaderIsRejectedWithoutCrashing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_open_error(write_raw(deep), {"nested deeper than"});
  expect_open_error(write_raw("{\"a\":" + deep + "}"), {"nested deeper than"});
}

TEST_F(SafetensorsTest, RejectsEntriesWithMissingOrMistypedFields) {
  const std::string data(16, '\0');
  auto header = [](const std::string& entry) { return "{\"w\":" + entry + "}"; };
  expect_open_error(write_raw(header("{\"shape\":[4],\"data_offsets\":[0,16]}"), data), {"'w'", "missing field 'dtype'"});
  expect_open_error(write_raw(header("{\"dtype\":\"F32\",\"data_offsets\":[0,16]}"), data), {"'w'", "missing field 'shape'"});
  expect_open_error(write_raw(header("{\"dtype\":\"F32\",\"shape\":[4]}"), data), {"'w'", "missing field 'data_offsets'"});
  expect_open_error(write_raw(header(tensor_entry("32", "[4]", "[0,16]")), data), {"'dtype' must be a string"});
  expect_open_error(write_raw(header(tensor_entry("\"F32\"", "4", "[0,16]")), data), {"'shape' must be an array"});
  expect_open_error(write_raw(header(tensor_entry("\"F32\"", "[4.0]", "[0,16]")), data), {"shape dimension", "integer"});
  expect_open_error(write_raw(header(tensor_entry("\"F32\"", "[\"4\"]", "[0,16]")), data), {"shape dimension", "integer"});
  expect_open_error(write_raw(header(tensor_entry("\"F32\"", "[4]", "[0]")), data), {"data_offsets", "[begin, end]"});
  expect_open_error(write_raw(header(tensor_entry("\"F32\"", "[4]", "{\"b\":0}")), data), {"data_offsets"});
  expect_open_error(write_raw(header(tensor_entry("\"F32\"", "[4]", "[0,\"16\"]")), data), {"data_offsets end", "integer"});
  expect_open_error(write_raw(header(tensor_entry("\"F32\"", "[4]", "[0,1e30]")), data), {"data_offsets end", "integer"});
}

TEST_F(SafetensorsTest, RejectsUnknownDtype) {
  expect_open_error(write_raw("{\"w\":" + tensor_entry("\"F33\"", "[4]", "[0,16]") + "}", std::string(16, '\0')),
                    {"'w'", "unknown dtype 'F33'"});
}

TEST_F(SafetensorsTest, RejectsNegativeAndHugeDims) {
  auto file_with_shape = [&](const std::string& shape) {
    return write_raw("{\"w\":" + tensor_entry("\"F32\"", shape, "[0,16]") + "}", std::string(16, '\0'));
  };
  expect_open_error(file_with_shape("[-4]"), {"'w'", "negative"});
  expect_open_error(file_with_shape("[2, -2]"), {"'w'", "negative"});
  expect_open_error(file_with_shape("[18446744073709551615]"), {"'w'", "too large"});
  // Each dimension fits in int64, their product does not: the check must not wrap around.
  expect_open_error(file_with_shape("[4294967296, 4294967296]"), {"'w'", "overflows"});
  expect_open_error(file_with_shape("[4611686018427387904, 4]"), {"'w'", "overflows"});
}

TEST_F(SafetensorsTest, RejectsLyingOffsets) {
  const std::string data(16, '\0');
  auto file_with_offsets = [&](const std::string& offsets) {
    return write_raw("{\"w\":" + tensor_entry("\"F32\"", "[4]", offsets) + "}", data);
  };
  expect_open_error(file_with_offsets("[16,0]"), {"'w'", "begin > end"});
  expect_open_error(file_with_offsets("[0,32]"), {"'w'", "beyond the data region", "16 bytes"});
  expect_open_error(file_with_offsets("[4,20]"), {"'w'", "beyond the data region"});
  expect_open_error(file_with_offsets("[-4,12]"), {"'w'", "negative"});
  expect_open_error(file_with_offsets("[18446744073709551600,18446744073709551615]"), {"'w'", "beyond"});
}

TEST_F(SafetensorsTest, RejectsLyingShapes) {
  const std::string data(16, '\0');
  auto file_with_shape = [&](const std::string& dtype, const std::string& shape) {
    return write_raw("{\"w\":" + tensor_entry(dtype, shape, "[0,16]") + "}", data);
  };
  expect_open_error(file_with_shape("\"F32\"", "[5]"), {"'w'", "shape [5]", "needs 20 bytes", "span 16"});
  expect_open_error(file_with_shape("\"F32\"", "[3]"), {"'w'", "needs 12 bytes"});
  expect_open_error(file_with_shape("\"F16\"", "[4]"), {"'w'", "F16", "needs 8 bytes"});
  expect_open_error(file_with_shape("\"F32\"", "[0]"), {"'w'", "needs 0 bytes"});
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  const std::string header = "{\"first\":" + tensor_entry("\"F32\"", "[4]", "[0,16]") +
                             ",\"second\":" + tensor_entry("\"F32\"", "[2]", "[8,16]") + "}";
  expect_open_error(write_raw(header, std::string(16, '\0')), {"'first'", "'second'", "overlap"});

  const std::string same = "{\"x\":" + tensor_entry("\"F32\"", "[2]", "[0,8]") +
                           ",\"y\":" + tensor_entry("\"F32\"", "[2]", "[0,8]") + "}";
  expect_open_error(write_raw(same, std::string(8, '\0')), {"'x'", "'y'", "overlap"});
}

TEST_F(SafetensorsTest, EmptyTensorsMayShareAnOffset) {
  const std::string header = "{\"empty\":" + tensor_entry("\"F32\"", "[0, 7]", "[4,4]") +
                             ",\"full\":" + tensor_entry("\"F32\"", "[2]", "[0,8]") + "}";
  const SafetensorsFile file = SafetensorsFile::open(write_raw(header, std::string(8, '\0')));
  EXPECT_EQ(file.load_f32("empty").size(), 0);
  EXPECT_EQ(file.load_f32("empty").shape(), (std::vector<int64_t>{0, 7}));
}

TEST_F(SafetensorsTest, RejectsDuplicateKeys) {
  const std::string entry = tensor_entry("\"F32\"", "[2]", "[0,8]");
  expect_open_error(write_raw("{\"w\":" + entry + ",\"w\":" + entry + "}", std::string(8, '\0')), {"'w' appears twice"});
  const std::string twice = "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  expect_open_error(write_raw(twice, std::string(8, '\0')), {"'dtype' appears twice"});
}

TEST_F(SafetensorsTest, AcceptsMetadataAndScalars) {
  const float value = 2.5f;
  const std::string header = "{\"__metadata__\":{\"format\":\"pt\"},\"s\":" + tensor_entry("\"F32\"", "[]", "[0,4]") + "}";
  const SafetensorsFile file =
      SafetensorsFile::open(write_raw(header, std::string(reinterpret_cast<const char*>(&value), 4)));
  EXPECT_EQ(file.names(), std::vector<std::string>{"s"});
  const Tensor s = file.load_f32("s");
  EXPECT_EQ(s.size(), 1);
  EXPECT_EQ(s.data()[0], 2.5f);
}

TEST_F(SafetensorsTest, NonFloatTensorsOpenButDoNotLoad) {
  const fs::path file_path = write_raw("{\"ids\":" + tensor_entry("\"I64\"", "[1, 2]", "[0,16]") + "}", std::string(16, '\0'));
  const SafetensorsFile file = SafetensorsFile::open(file_path);
  EXPECT_EQ(file.info("ids").dtype, DType::I64);
  expect_mentions(error_of([&] { file.load_f32("ids"); }), {"'ids'", "I64", file_path.string()});
}

std::string little_endian_u16(const std::vector<uint16_t>& values) {
  std::string bytes;
  for (uint16_t v : values) bytes.append(reinterpret_cast<const char*>(&v), 2);
  return bytes;
}

TEST_F(SafetensorsTest, ConvertsF16Exactly) {
  const std::vector<uint16_t> halves = {0x3C00, 0xC000, 0x7BFF, 0x3555, 0x0400, 0x03FF, 0x0001, 0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00};
  const std::vector<float> expected = {1.0f, -2.0f, 65504.0f, 0.333251953125f, std::ldexp(1.0f, -14),
                                       1023 * std::ldexp(1.0f, -24), std::ldexp(1.0f, -24), 0.0f, -0.0f,
                                       INFINITY, -INFINITY, NAN};
  const std::string data = little_endian_u16(halves);
  // Offset by 2 bytes so the data is deliberately misaligned for fp32.
  // The last three (inf, -inf, NaN) are in a tensor of their own: loading refuses non-finite weights.
  const std::string header = "{\"pad\":" + tensor_entry("\"U8\"", "[2]", "[0,2]") + ",\"h\":" +
                             tensor_entry("\"F16\"", "[9]", "[2,20]") + ",\"special\":" +
                             tensor_entry("\"F16\"", "[3]", "[20,26]") + "}";
  const SafetensorsFile file = SafetensorsFile::open(write_raw(header, "xx" + data));
  const Tensor t = file.load_f32("h", {9});
  for (size_t i = 0; i < 9; ++i) {
    SCOPED_TRACE("half #" + std::to_string(i));
    EXPECT_EQ(t.data()[i], expected[i]);
    EXPECT_EQ(std::signbit(t.data()[i]), std::signbit(expected[i]));
  }
  expect_mentions(error_of([&] { file.load_f32("special"); }), {"'special'", "infinity at element 0"});
}

TEST_F(SafetensorsTest, ConvertsBF16Exactly) {
  const std::string data = little_endian_u16({0x3F80, 0xC040, 0x3EAB, 0x7F7F, 0x0001, 0x8000, 0x7F80});
  const std::vector<uint32_t> expected_bits = {0x3F800000, 0xC0400000, 0x3EAB0000, 0x7F7F0000,
                                               0x00010000, 0x80000000, 0x7F800000};
  // The last one (inf) is a tensor of its own: loading refuses non-finite weights.
  const std::string header = "{\"b\":" + tensor_entry("\"BF16\"", "[6]", "[0,12]") + ",\"inf\":" +
                             tensor_entry("\"BF16\"", "[1]", "[12,14]") + "}";
  const SafetensorsFile file = SafetensorsFile::open(write_raw(header, data));
  const Tensor t = file.load_f32("b");
  EXPECT_EQ(t.data()[0], 1.0f);
  EXPECT_EQ(t.data()[1], -3.0f);
  expect_mentions(error_of([&] { file.load_f32("inf"); }), {"'inf'", "infinity"});
  for (size_t i = 0; i + 1 < expected_bits.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &t.data()[i], 4);
    EXPECT_EQ(bits, expected_bits[i]) << "element " << i;
  }
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  Tensor t({2});
  expect_mentions(error_of([&] { write_safetensors(path("x.safetensors"), {{"t", nullptr}}); }), {"'t'", "null"});
  expect_mentions(error_of([&] { write_safetensors(path("x.safetensors"), {{"t", &t}, {"t", &t}}); }), {"'t'", "repeated"});
  expect_mentions(error_of([&] { write_safetensors(path("x.safetensors"), {{"__metadata__", &t}}); }), {"reserved"});
  expect_mentions(error_of([&] { write_safetensors(dir_ / "no" / "such" / "dir.safetensors", {{"t", &t}}); }),
                  {"cannot open for writing"});
}

// The real checkpoint, when the environment names it (a directory or the file itself).
TEST(SafetensorsRealModel, LoadsMiniLMShapes) {
  const char* env = std::getenv("SIEVE_DEFAULT_MODEL");
  if (env == nullptr || *env == '\0') GTEST_SKIP() << "SIEVE_DEFAULT_MODEL not set";
  fs::path file = env;
  if (fs::is_directory(file)) file /= "model.safetensors";

  const SafetensorsFile model = SafetensorsFile::open(file);
  EXPECT_EQ(model.info("embeddings.word_embeddings.weight").shape, (std::vector<int64_t>{30522, 384}));
  EXPECT_EQ(model.info("embeddings.position_embeddings.weight").shape, (std::vector<int64_t>{512, 384}));
  EXPECT_EQ(model.info("encoder.layer.5.intermediate.dense.weight").shape, (std::vector<int64_t>{1536, 384}));
  EXPECT_EQ(model.info("embeddings.position_ids").dtype, DType::I64);
  EXPECT_EQ(model.names().size(), 104u);

  const Tensor words = model.load_f32("embeddings.word_embeddings.weight", {30522, 384});
  int64_t finite = 0;
  for (float v : words.span()) finite += std::isfinite(v) ? 1 : 0;
  EXPECT_EQ(finite, words.size());
  // Spot values read with the Python safetensors package.
  EXPECT_EQ(words.data()[101 * 384], -0.01761939749121666f);
  EXPECT_EQ(words.data()[words.size() - 1], 0.004570063669234514f);
  EXPECT_EQ(model.load_f32("embeddings.LayerNorm.weight", {384}).data()[0], 0.5989283323287964f);
}

}  // namespace
}  // namespace sieve
