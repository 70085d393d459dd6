// The `sieve` binary against a hostile user (issue 18): output files that are links or devices,
// write errors, endless or huge inputs, corrupt model files. Every case must end with a clear
// message and exit code 1 (never a signal, a hang, exit 0 after losing data, or "internal error"),
// and must not touch anything but the file it was asked to write.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>

#include "test_helpers.h"
#include "tiny_bert.h"

namespace sieve {
namespace {

namespace fs = std::filesystem;
using testing::CliResult;
using testing::quoted;
using testing::run_cli;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Memory limits (ulimit -v) cannot be combined with AddressSanitizer, which reserves terabytes of
// address space up front; under ASan those checks run without the limit.
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* kMemoryLimit = "";
#else
constexpr const char* kMemoryLimit = "ulimit -v 4000000; ";  // 4 GB of address space
#endif

class CliHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::make_tiny_bert("cli-hostile", testing::TinyBertShape{.positions = 64, .labels = 2});
    scratch_ = fs::temp_directory_path() / ("sieve-cli-hostile-" + std::to_string(::getpid()));
    fs::create_directories(scratch_);
  }
  void TearDown() override {
    fs::remove_all(model_);
    fs::remove_all(scratch_);
  }
  std::string model() const { return "--model " + quoted(model_); }
  static void expect_input_error(const CliResult& r, const std::string& message_part) {
    ASSERT_TRUE(r.exited) << "killed by a signal:\n" << r.output;
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find(message_part), std::string::npos) << "expected '" << message_part << "' in:\n" << r.output;
  }
  fs::path model_, scratch_;
};

// Finding 1: the model ran at --max-length, the page re-tokenized at the model's default length
// and indexed past its end (SIGSEGV, SIGBUS with --pair).
TEST_F(CliHostileTest, ExplainAtAMaxLengthAboveTheModelDefault) {
  std::ofstream(model_ / "sentence_bert_config.json") << R"({"max_seq_length": 16})";
  std::string words;
  for (int i = 0; i < 100; ++i) words += "w" + std::to_string(5 + i % 100) + " ";
  for (const std::string pair : {"", " --pair 'w7 w8 w9'"}) {
    const fs::path page = scratch_ / "explain.html";
    const CliResult r = run_cli("explain " + model() + " --max-length 60 -o " + quoted(page) + pair + " '" + words + "'");
    ASSERT_TRUE(r.exited && r.code == 0) << pair << ":\n" << r.output;
    EXPECT_NE(read_text(page).find("w64"), std::string::npos) << "token 60 of the input is on the page";
  }
}

// Finding 5: output files.
TEST_F(CliHostileTest, OutputFilesNeverFollowPlantedLinksOrReplaceNonFiles) {
  const fs::path victim = scratch_ / "victim.txt";
  std::ofstream(victim) << "precious";
  const fs::path out = scratch_ / "out.json";
  fs::create_symlink(victim, scratch_ / "out.json.tmp");  // the old fixed temporary name
  const CliResult ok = run_cli("embed " + model() + " -o " + quoted(out) + " w5");
  ASSERT_TRUE(ok.exited && ok.code == 0) << ok.output;
  EXPECT_EQ(read_text(victim), "precious");
  EXPECT_NE(read_text(out).find("\"embeddings\""), std::string::npos);

  const fs::path link = scratch_ / "link.json";
  fs::create_symlink(victim, link);
  expect_input_error(run_cli("embed " + model() + " -o " + quoted(link) + " w5"), "not a regular file");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_text(victim), "precious");
  expect_input_error(run_cli("embed " + model() + " -o " + quoted(scratch_) + " w5"), "not a regular file");
  expect_input_error(run_cli("explain " + model() + " -o /dev/null w5"), "not a regular file");
  for (const auto& entry : fs::directory_iterator(scratch_))  // temporaries are ".<name>.XXXXXX.tmp"
    EXPECT_NE(entry.path().filename().string()[0], '.') << "left behind: " << entry.path();
}

// Finding 6: write errors are errors.
TEST_F(CliHostileTest, WriteErrorsFailTheCommand) {
  // (Its message goes to /dev/full too: run_cli sends stderr where stdout goes.)
  const CliResult full = run_cli("embed " + model() + " w5 >/dev/full");
  EXPECT_TRUE(full.exited && full.code == 1) << full.code;
  std::string many;
  for (int i = 0; i < 200; ++i) many += " w" + std::to_string(5 + i % 100);
  const fs::path out = scratch_ / "limited.json";
  // ulimit -f counts 512-byte blocks in dash: 8 blocks, far less than 200 vectors of 64 floats.
  const CliResult r = run_cli("embed " + model() + " -o " + quoted(out) + many, 60, true, "ulimit -f 8; ");
  expect_input_error(r, "File too large");
  EXPECT_EQ(r.output.find("wrote"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out)) << "no truncated output may be left";
}

// Finding 6: reads are bounded and a bad read is not silently cut short.
TEST_F(CliHostileTest, EndlessAndHugeInputsAreRefusedWithinMemory) {
  expect_input_error(run_cli("embed " + model() + " -f /dev/zero", 60, true, kMemoryLimit), "line longer than the 1 MiB limit");
  // Two lines, then NULs without end of line: the third "text" is refused, not silently dropped.
  const fs::path input = scratch_ / "nuls.txt";
  {
    std::ofstream file(input, std::ios::binary);
    file << "w5\nw6\n" << std::string(3 << 20, '\0');
  }
  expect_input_error(run_cli("embed " + model() + " -f - < " + quoted(input), 60, true, kMemoryLimit), "standard input:3: line longer");
  const fs::path gpt2 = fs::path(SIEVE_REFERENCE_DIR) / "gpt2-random";
  if (fs::exists(gpt2 / "config.json")) {
    expect_input_error(run_cli("perplexity --model " + quoted(gpt2) + " --data /dev/zero", 60, true, kMemoryLimit),
                       "larger than the 64 MiB");
  }
}

// Finding 6: a million inputs stream through in batches (memory bounded by the chunk, not the count).
TEST_F(CliHostileTest, ManyInputsStreamAndEveryOneIsWritten) {
  const fs::path input = scratch_ / "many.txt";
  {
    std::ofstream file(input);
    for (int i = 0; i < 20000; ++i) file << "w" << 5 + i % 100 << "\n";
  }
  const fs::path out = scratch_ / "many.npy";
  const CliResult r = run_cli("embed " + model() + " --batch-size 256 -f " + quoted(input) + " -o " + quoted(out), 300, true,
                              kMemoryLimit);
  ASSERT_TRUE(r.exited && r.code == 0) << r.output;
  const std::string npy = read_text(out);
  ASSERT_EQ(npy.size(), 128 + 20000u * 64 * sizeof(float));
  EXPECT_NE(npy.find("'shape': (20000, 64)"), std::string::npos) << npy.substr(0, 128);
}

// Finding 7 and 8: corrupt model files and odd paths end as input errors naming the culprit.
TEST_F(CliHostileTest, CorruptModelFilesAndOddPathsAreInputErrors) {
  fs::create_symlink("loop", scratch_ / "loop");
  expect_input_error(run_cli("embed --model " + quoted(scratch_ / "loop") + " w5"), "loop");
  fs::create_directories(model_ / "1_Pooling");
  std::ofstream(model_ / "1_Pooling" / "config.json") << R"({"pooling_mode_mean_tokens": 1})";
  expect_input_error(run_cli("embed " + model() + " w5"), "pooling_mode_mean_tokens");
  fs::remove_all(model_ / "1_Pooling");

  SafetensorsFile weights = SafetensorsFile::open(model_ / "model.safetensors");
  std::map<std::string, Tensor> tensors;
  for (const std::string& name : weights.names()) tensors.emplace(name, weights.load_f32(name));
  tensors.at("encoder.layer.1.attention.self.query.weight").data()[17] = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::pair<std::string, const Tensor*>> list;
  for (const auto& [name, tensor] : tensors) list.emplace_back(name, &tensor);
  write_safetensors(model_ / "model.safetensors", list);
  expect_input_error(run_cli("embed " + model() + " w5"), "'encoder.layer.1.attention.self.query.weight'");
}

}  // namespace
}  // namespace sieve
