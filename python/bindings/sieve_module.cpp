// sieve._sieve: the nanobind extension behind the Python package (python/sieve). It only converts:
// texts in, the library's TextEmbedder / TextClassifier / tokenizer do the work, results out as
// numpy arrays and dicts. The GIL is released around everything that computes, and what runs in
// parallel (loading, encode, classify) runs on the process's one compute thread
// (util/compute_thread.h), whichever Python thread calls.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <omp.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "model/text_classifier.h"
#include "model/text_embedder.h"
#include "model/text_model.h"
#include "util/compute_thread.h"
#include "util/error.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// A model directory that exists but cannot be loaded (missing or corrupt files): sieve.ModelError.
struct ModelLoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A model without a sequence-classification head asked to classify: also sieve.ModelError.
struct NoHeadError : ModelLoadError {
  using ModelLoadError::ModelLoadError;
};

using FloatMatrix = nb::ndarray<nb::numpy, float, nb::ndim<2>, nb::c_contig>;
using FloatVector = nb::ndarray<nb::numpy, float, nb::ndim<1>, nb::c_contig>;

// A numpy array that owns `data` (freed with the array): no copy on the way to Python.
FloatMatrix owned_matrix(std::unique_ptr<float[]> data, size_t rows, size_t cols) {
  float* raw = data.release();
  nb::capsule owner(raw, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  return FloatMatrix(raw, {rows, cols}, owner);
}

nb::dict stats_dict(const sieve::EmbedStats& s, size_t texts, double seconds) {
  int64_t computed = 0;
  for (int64_t t : s.forward.tokens_per_layer) computed += t;
  nb::dict d;
  d["texts"] = texts;
  d["sequences"] = s.sequences;
  d["tokens_in"] = s.tokens_in;
  d["tokens_computed"] = computed;  // token-layers: rows entering each layer's FFN, summed over layers
  d["layers_run"] = s.layers_run;
  d["gflops"] = s.forward.flops / 1e9;
  d["tokens_per_layer"] = s.forward.tokens_per_layer;
  d["heads_per_layer"] = s.forward.heads_per_layer;
  d["truncated_inputs"] = s.truncated_inputs;
  d["seconds"] = seconds;
  return d;
}

// omp_set_num_threads is per thread: set on the compute thread before each call's work (Encoders
// with different `threads` share that thread).
void use_threads(int threads) {
  omp_set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

class Encoder {
 public:
  Encoder(const std::string& model_dir, const std::string& precision, int threads, size_t max_length,
          const std::string& pruned_pooling, const std::string& long_inputs, size_t chunk_overlap)
      : threads_(threads), precision_(sieve::parse_precision(precision)) {
    defaults_.pruned_pooling = sieve::parse_pruned_pooling(pruned_pooling);
    defaults_.long_inputs = sieve::parse_long_input_mode(long_inputs);
    defaults_.max_length = max_length;
    defaults_.chunk_overlap = chunk_overlap;
    defaults_.precision = precision_;
    const std::filesystem::path dir = model_dir.empty() ? sieve::default_model_dir() : std::filesystem::path(model_dir);
    std::error_code error;
    if (!std::filesystem::is_directory(dir, error)) {
      const std::string message = "model directory not found: " + dir.string();
      PyErr_SetString(PyExc_FileNotFoundError, message.c_str());
      throw nb::python_error();
    }
    try {
      nb::gil_scoped_release release;
      sieve::ComputeThread::instance().run([&] {
        use_threads(threads_);
        model_ = std::make_unique<sieve::TextModel>(sieve::TextModel::load(dir));
        if (precision_ != sieve::Precision::Fp32) model_->set_precision(precision_);
      });
    } catch (const sieve::Error& e) {
      throw ModelLoadError(e.what());
    }
  }

  nb::tuple embed(const std::vector<std::string>& texts, const std::string& policy, int batch_size,
                  nb::object progress) {
    sieve::EmbedderOptions options = defaults_;
    options.policy = policy;
    options.batch_size = batch_size;
    sieve::EmbedStats stats;
    std::unique_ptr<float[]> data;
    size_t dim = 0;
    double seconds = 0;
    {
      nb::gil_scoped_release release;
      sieve::ComputeThread::instance().run([&] {
        use_threads(threads_);
        const auto start = std::chrono::steady_clock::now();
        sieve::TextEmbedder embedder(*model_, options);
        dim = embedder.dimension();
        std::function<void(size_t)> on_progress;
        if (!progress.is_none())
          on_progress = [&progress](size_t n) {
            nb::gil_scoped_acquire acquire;
            progress(n);
          };
        const auto vectors = embedder.embed(texts, &stats, on_progress);
        data.reset(new float[texts.size() * dim]);
        for (size_t i = 0; i < vectors.size(); ++i) std::memcpy(data.get() + i * dim, vectors[i].data(), dim * sizeof(float));
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      });
    }
    return nb::make_tuple(owned_matrix(std::move(data), texts.size(), dim), stats_dict(stats, texts.size(), seconds));
  }

  nb::tuple classify(const std::vector<std::string>& texts, const std::string& policy, int batch_size) {
    sieve::ClassifierOptions options;
    options.policy = policy, options.batch_size = batch_size, options.max_length = defaults_.max_length;
    options.precision = precision_;
    sieve::EmbedStats stats;
    std::vector<sieve::Classification> results;
    std::vector<std::string> labels;
    double seconds = 0;
    {
      nb::gil_scoped_release release;
      if (!model_->encoder().has_classifier())
        throw NoHeadError("this model has no sequence-classification head (classifier.weight); use encode(), "
                          "or fine-tune one with tools/finetune_classifier.py");
      sieve::ComputeThread::instance().run([&] {
        use_threads(threads_);
        const auto start = std::chrono::steady_clock::now();
        sieve::TextClassifier classifier(*model_, options);
        labels = classifier.labels();
        results = classifier.classify(texts, &stats);
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      });
    }
    const size_t classes = labels.size();
    std::unique_ptr<float[]> probabilities(new float[results.size() * classes]);
    std::vector<size_t> best;
    for (size_t i = 0; i < results.size(); ++i) {
      std::memcpy(probabilities.get() + i * classes, results[i].probabilities.data(), classes * sizeof(float));
      best.push_back(results[i].label);
    }
    return nb::make_tuple(labels, best, owned_matrix(std::move(probabilities), results.size(), classes),
                          stats_dict(stats, texts.size(), seconds));
  }

  nb::dict tokenize(const std::vector<std::string>& texts) {
    std::vector<std::vector<int32_t>> ids, type_ids;
    std::vector<std::vector<std::string>> tokens;
    std::vector<bool> truncated;
    {
      nb::gil_scoped_release release;
      std::vector<sieve::TextPair> pairs;
      for (const std::string& t : texts) pairs.push_back({t, ""});
      sieve::EncodedBatch encoded = model_->encode(pairs, defaults_.max_length);
      for (auto& input : encoded.inputs) {
        std::vector<std::string> pieces;
        for (int32_t id : input.ids) pieces.push_back(model_->tokenizer().token(id));
        tokens.push_back(std::move(pieces));
        ids.push_back(std::move(input.ids));
        type_ids.push_back(std::move(input.type_ids));
      }
      truncated = encoded.truncated;
    }
    nb::dict d;
    d["input_ids"] = ids;
    d["token_type_ids"] = type_ids;
    d["tokens"] = tokens;
    d["truncated"] = truncated;
    return d;
  }

  size_t dimension() const { return static_cast<size_t>(model_->encoder().config().hidden_size); }
  size_t max_length() const { return defaults_.max_length ? defaults_.max_length : model_->max_length(); }
  bool normalizes() const { return model_->normalize(); }
  int num_labels() const { return model_->encoder().num_labels(); }
  int num_layers() const { return static_cast<int>(model_->encoder().config().num_hidden_layers); }
  std::string precision() const { return sieve::precision_name(precision_); }

 private:
  int threads_;
  sieve::Precision precision_;
  sieve::EmbedderOptions defaults_;
  std::unique_ptr<sieve::TextModel> model_;
};

}  // namespace

NB_MODULE(_sieve, m) {
  m.doc() = "Sieve's C++ engine (internal; use the sieve package)";
  nb::exception<ModelLoadError>(m, "ModelError", PyExc_OSError);
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const sieve::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  nb::class_<Encoder>(m, "Encoder")
      .def(nb::init<const std::string&, const std::string&, int, size_t, const std::string&, const std::string&, size_t>(),
           "model_dir"_a, "precision"_a, "threads"_a, "max_length"_a, "pruned_pooling"_a, "long_inputs"_a, "chunk_overlap"_a)
      .def("embed", &Encoder::embed, "texts"_a, "policy"_a, "batch_size"_a, "progress"_a.none())
      .def("classify", &Encoder::classify, "texts"_a, "policy"_a, "batch_size"_a)
      .def("tokenize", &Encoder::tokenize, "texts"_a)
      .def_prop_ro("dimension", &Encoder::dimension)
      .def_prop_ro("max_length", &Encoder::max_length)
      .def_prop_ro("normalizes", &Encoder::normalizes)
      .def_prop_ro("num_labels", &Encoder::num_labels)
      .def_prop_ro("num_layers", &Encoder::num_layers)
      .def_prop_ro("precision", &Encoder::precision);
}
