// sieve eval: accuracy, GFLOPs, tokens/heads kept and wall-clock speedup of pruning policies on a
// GLUE-format data set, each against dense in the same run.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands/common.h"
#include "eval/embedding_eval.h"
#include "eval/evaluator.h"
#include "eval/squad.h"
#include "util/error.h"
#include "policies/policy_spec.h"
#include "sim/workload_trace.h"

namespace sieve::cli {

namespace {

struct EvalCommandOptions {
  ModelOptions model;
  std::string data, json_out, trace_out;
  std::vector<std::string> policies;
  size_t limit = 0;
  std::string pool = "frozen", long_inputs = "truncate";  // embedding data only; "both" measures both
  std::string squad_split = "eval";                       // SQuAD data only
  size_t doc_stride = QaOptions{}.doc_stride;
};

std::string join_fractions(const std::vector<double>& v, const char* fmt) {
  std::string s;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, fmt, x);
    s += (s.empty() ? "" : " ") + std::string(buf);
  }
  return s;
}

// What each setting computed per example and layer, for `sieve sim` (sim/workload_trace.h).
// `settings` pairs each setting's label with its work, which is moved out.
void write_trace(const EvalCommandOptions& o, const TextModel& model,
                 const std::vector<std::pair<std::string, std::vector<std::vector<LayerWork>>*>>& settings) {
  const ModelConfig& c = model.encoder().config();
  sim::WorkloadTrace trace;
  trace.kind = sim::WorkloadTrace::Kind::Encoder;
  trace.source = (o.model.model_dir.empty() ? default_model_dir().string() : o.model.model_dir) + " on " + o.data;
  trace.encoder = {static_cast<int>(c.num_hidden_layers), static_cast<int>(c.num_attention_heads), c.hidden_size,
                   c.hidden_size / c.num_attention_heads, c.max_position_embeddings};
  for (const auto& [label, work] : settings) trace.encoder_settings.push_back({label, std::move(*work)});
  write_file_atomically(o.trace_out, [&](std::ostream& out) { out << sim::trace_to_json(trace).dump() << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.trace_out.c_str());
}

// Similarity (STS-B) or retrieval pairs: embedding fidelity and cost per setting.
void run_embedding_eval(const EvalCommandOptions& o, const std::vector<ScoredPair>& data) {
  const TextModel model = load_model(o.model);
  std::vector<PrunedPooling> pools;
  for (const char* name : {"frozen", "survivors"})
    if (o.pool == name || o.pool == "both") pools.push_back(parse_pruned_pooling(name));
  std::vector<LongInputMode> longs;
  for (const char* name : {"truncate", "chunk"})
    if (o.long_inputs == name || o.long_inputs == "both") longs.push_back(parse_long_input_mode(name));
  // With --precision bf16 or int8 every setting (dense too) runs its GEMMs so, against the fp32 dense anchor.
  const Precision precision = parse_precision(o.model.precision);
  std::vector<EmbeddingEvalSetting> settings;
  for (LongInputMode l : longs)
    for (PrunedPooling p : pools) {
      if (l != LongInputMode::Truncate || p != PrunedPooling::Frozen || precision != Precision::Fp32)
        settings.push_back({"dense", p, l, precision});
      for (const auto& spec : o.policies)
        if (spec != "dense") settings.push_back({spec, p, l, precision});
    }
  EmbeddingEvalOptions eo{o.model.batch_size, o.model.max_length, o.limit};
  eo.record_work = !o.trace_out.empty();
  auto results = evaluate_embeddings(model, data, settings, eo);
  if (!o.trace_out.empty()) {
    std::vector<std::pair<std::string, std::vector<std::vector<LayerWork>>*>> work;
    for (EmbeddingEvalResult& r : results) work.emplace_back(r.setting.label(), &r.work);
    write_trace(o, model, work);
  }

  const bool scored = results[0].scored;
  std::printf("%-52s %8s %8s %9s %8s %9s %9s %10s %8s\n", "setting", scored ? "spearman" : "recall@1",
              scored ? "pearson" : "MRR", "cos-dense", "min-cos", "GFLOPs/tx", "FLOPs red", "ms/text", "speedup");
  for (const auto& r : results)
    std::printf("%-52s %8.4f %8.4f %9.5f %8.4f %9.4f %8.2fx %10.3f %7.2fx\n", r.setting.label().c_str(),
                scored ? r.spearman : r.recall_at_1, scored ? r.pearson : r.mrr, r.mean_cosine_to_dense,
                r.min_cosine_to_dense, r.gflops_per_text, r.flops_reduction, r.latency_ms_per_text, r.speedup);
  std::printf("tokens kept per layer (fraction of dense) / layers run per sequence / sequences per text:\n");
  for (const auto& r : results)
    std::printf("  %-50s tokens [%s]  layers %.2f  sequences %.2f\n", r.setting.label().c_str(),
                join_fractions(r.tokens_kept, "%.2f").c_str(), r.layers_per_sequence, r.sequences_per_text);
  if (results[0].truncated_texts) std::printf("%zu of %zu texts were longer than the length limit\n", results[0].truncated_texts, results[0].texts);

  if (o.json_out.empty()) return;
  nlohmann::json j{{"model", o.model.model_dir.empty() ? default_model_dir().string() : o.model.model_dir},
                   {"data", o.data}, {"pairs", results[0].pairs}, {"texts", results[0].texts}, {"batch_size", eo.batch_size},
                   {"max_length", o.model.max_length ? o.model.max_length : model.max_length()},
                   {"threads", o.model.threads}, {"results", nlohmann::json::array()}};
  for (const auto& r : results) {
    nlohmann::json one{{"policy", r.setting.spec}, {"pool", pruned_pooling_name(r.setting.pooling)}, {"precision", precision_name(r.setting.precision)},
                       {"long", r.setting.long_inputs == LongInputMode::Chunk ? "chunk" : "truncate"},
                       {"label", r.setting.label()}, {"description", r.description},
                       {"mean_cosine_to_dense", r.mean_cosine_to_dense}, {"min_cosine_to_dense", r.min_cosine_to_dense},
                       {"gflops_per_text", r.gflops_per_text}, {"flops_reduction", r.flops_reduction},
                       {"latency_ms_per_text", r.latency_ms_per_text}, {"total_seconds", r.total_seconds},
                       {"speedup", r.speedup}, {"tokens_kept_per_layer", r.tokens_kept},
                       {"layers_per_sequence", r.layers_per_sequence}, {"sequences_per_text", r.sequences_per_text},
                       {"truncated_texts", r.truncated_texts}};
    if (r.scored) one["spearman"] = r.spearman, one["pearson"] = r.pearson;
    if (r.retrieval) one["recall_at_1"] = r.recall_at_1, one["mrr"] = r.mrr;
    j["results"].push_back(one);
  }
  write_file_atomically(o.json_out, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_out.c_str());
}

// SQuAD v1.1 JSON: exact match and F1 (official definitions), per setting against dense.
void run_squad_eval(EvalCommandOptions o) {
  const SquadData data = load_squad(o.data);
  const std::vector<SquadQuestion> questions = squad_questions(data, parse_squad_split(o.squad_split));
  if (!o.model.batch_size_given) o.model.batch_size = 1;  // latency per window by default, as for labelled data
  const TextModel model = load_model(o.model);
  SquadEvalOptions eo;
  eo.qa.batch_size = o.model.batch_size;
  eo.qa.doc_stride = o.doc_stride;
  if (o.model.max_length) eo.qa.max_length = o.model.max_length;
  eo.limit = o.limit;
  const auto results = evaluate_squad(model, data, questions, o.policies, eo);

  std::printf("SQuAD v1.1, %s split: %zu questions, %zu windows of <= %zu tokens (stride %zu)\n", o.squad_split.c_str(),
              results[0].questions, results[0].windows, eo.qa.max_length, eo.qa.doc_stride);
  std::printf("%-44s %8s %8s %8s %9s %9s %10s %8s\n", "policy", "EM", "F1", "agree", "GFLOPs/q", "FLOPs red", "ms/question", "speedup");
  for (const auto& r : results)
    std::printf("%-44s %8.2f %8.2f %8.4f %9.4f %8.2fx %10.3f %7.2fx\n", r.spec.c_str(), r.exact_match, r.f1, r.agreement_with_dense,
                r.gflops_per_question, r.flops_reduction, r.latency_ms_per_question, r.speedup);
  std::printf("tokens kept per layer (fraction of dense):\n");
  for (const auto& r : results) std::printf("  %-42s [%s]\n", r.spec.c_str(), join_fractions(r.tokens_kept, "%.2f").c_str());

  if (o.json_out.empty()) return;
  nlohmann::json j{{"model", o.model.model_dir.empty() ? default_model_dir().string() : o.model.model_dir},
                   {"data", o.data}, {"split", o.squad_split}, {"questions", results[0].questions}, {"windows", results[0].windows},
                   {"max_length", eo.qa.max_length}, {"doc_stride", eo.qa.doc_stride}, {"batch_size", eo.qa.batch_size},
                   {"threads", o.model.threads}, {"results", nlohmann::json::array()}};
  for (const auto& r : results)
    j["results"].push_back({{"policy", r.spec}, {"description", r.description}, {"exact_match", r.exact_match}, {"f1", r.f1},
                            {"agreement_with_dense", r.agreement_with_dense}, {"gflops_per_question", r.gflops_per_question},
                            {"flops_reduction", r.flops_reduction}, {"latency_ms_per_question", r.latency_ms_per_question},
                            {"total_seconds", r.total_seconds}, {"speedup", r.speedup}, {"tokens_kept_per_layer", r.tokens_kept}});
  write_file_atomically(o.json_out, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_out.c_str());
}

void run(EvalCommandOptions o) {
  if (std::filesystem::path(o.data).extension() == ".json") return run_squad_eval(std::move(o));
  if (o.squad_split != "eval" || o.doc_stride != QaOptions{}.doc_stride)
    throw Error("--split and --doc-stride apply to SQuAD data (a .json file)");
  EvalData loaded = load_eval_data(o.data);
  if (loaded.labelled.empty()) return run_embedding_eval(o, loaded.pairs);
  if (o.pool != "frozen" || o.long_inputs != "truncate")
    throw Error("--pool and --long apply to embedding data (sentence1, sentence2[, score]), not to labelled data");
  const auto data = std::move(loaded.labelled);
  // Labelled data: latency per example by default. (This once tested `batch_size == 32`, the shared
  // default, so an explicit --batch-size 32 silently ran at batch 1.)
  if (!o.model.batch_size_given) o.model.batch_size = 1;
  const TextModel model = load_model(o.model);
  EvalOptions eo{o.model.batch_size, o.model.max_length, o.limit};
  eo.record_work = !o.trace_out.empty();
  auto results = evaluate_policies(model, data, o.policies, eo);
  if (!o.trace_out.empty()) {
    std::vector<std::pair<std::string, std::vector<std::vector<LayerWork>>*>> work;
    for (EvalResult& r : results) work.emplace_back(r.spec, &r.work);
    write_trace(o, model, work);
  }

  std::printf("%-44s %8s %7s %8s %9s %9s %10s %8s\n", "policy", "accuracy", "F1", "agree", "GFLOPs/ex", "FLOPs red",
              "ms/example", "speedup");
  for (const auto& r : results)
    std::printf("%-44s %8.4f %7.4f %8.4f %9.4f %8.2fx %10.3f %7.2fx\n", r.spec.c_str(), r.accuracy, r.f1, r.agreement_with_dense,
                r.gflops_per_example, r.flops_reduction, r.latency_ms_per_example, r.speedup);
  std::printf("tokens kept per layer (fraction of dense) / heads per example per layer:\n");
  for (const auto& r : results)
    std::printf("  %-42s tokens [%s]  heads [%s]\n", r.spec.c_str(), join_fractions(r.tokens_kept, "%.2f").c_str(),
                join_fractions(r.heads_kept, "%.1f").c_str());
  std::printf("attention blocks (QKV .. Add & LayerNorm): ms/example and speedup vs dense:\n");
  for (const auto& r : results)
    std::printf("  %-42s %8.3f ms %6.2fx\n", r.spec.c_str(), r.attention_seconds * 1e3 / static_cast<double>(r.examples),
                r.attention_speedup);
  for (const auto& r : results) {
    if (!r.cta) continue;
    std::printf("CTA %s: RL %.3f  RA %.3f  (per-example means)  hashing+aggregation overhead %.3f of dense QKV+attention FLOPs\n",
                r.spec.c_str(), r.cta_rl, r.cta_ra, r.cta_overhead);
    std::printf("  per layer, mean per (example, head): n [%s]\n    k0 [%s]  k1 [%s]  k2 [%s]\n",
                join_fractions(r.cta_n, "%.1f").c_str(), join_fractions(r.cta_k0, "%.1f").c_str(),
                join_fractions(r.cta_k1, "%.1f").c_str(), join_fractions(r.cta_k2, "%.1f").c_str());
  }
  bool any_exit = false;
  for (const auto& r : results) any_exit |= r.exit_layers.back() != static_cast<int64_t>(r.examples);
  if (any_exit) {
    std::printf("exit layer histogram (examples whose output came from layer 1..L):\n");
    for (const auto& r : results) {
      std::string h;
      for (int64_t c : r.exit_layers) h += (h.empty() ? "" : " ") + std::to_string(c);
      std::printf("  %-42s [%s]\n", r.spec.c_str(), h.c_str());
    }
  }

  if (o.json_out.empty()) return;
  nlohmann::json j{{"model", o.model.model_dir.empty() ? default_model_dir().string() : o.model.model_dir},
                   {"data", o.data}, {"examples", results[0].examples}, {"batch_size", eo.batch_size},
                   {"threads", o.model.threads}, {"tile_sparse", tile_sparse_json(model.encoder())},
                   {"results", nlohmann::json::array()}};
  for (const auto& r : results) j["results"].push_back(eval_result_json(r));
  write_file_atomically(o.json_out, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  std::fprintf(stderr, "wrote %s\n", o.json_out.c_str());
}

}  // namespace

void register_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCommandOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Accuracy (labelled data) or embedding fidelity (sentence pairs: STS-B score -> Spearman, no score -> retrieval), GFLOPs and speedup of pruning policies vs dense");
  add_model_options(*cmd, o->model);
  cmd->add_option("--data", o->data, "GLUE TSV (sentence<TAB>label with a header), HF parquet file, or SQuAD v1.1 JSON")->required();
  cmd->add_option("--policy,-p", o->policies, std::string("Policy spec, repeatable: ") + kPolicySpecHelp);
  cmd->add_option("--limit", o->limit, "Evaluate only the first N examples");
  cmd->add_option("--pool", o->pool, "Embedding data: pooling of pruned tokens, frozen (default), survivors or both")
      ->check(CLI::IsMember({"frozen", "survivors", "both"}));
  cmd->add_option("--long", o->long_inputs, "Embedding data: over-long inputs, truncate (default), chunk or both")
      ->check(CLI::IsMember({"truncate", "chunk", "both"}));
  cmd->add_option("--split", o->squad_split, "SQuAD data: the articles to answer on (eval/calibration/train, split by article: src/eval/squad.h)")
      ->check(CLI::IsMember({"train", "calibration", "eval"}))->capture_default_str();
  cmd->add_option("--doc-stride", o->doc_stride, "SQuAD data: tokens shared by consecutive windows of a long context")
      ->check(CLI::Range(0, 4096))->capture_default_str();
  cmd->add_option("--json", o->json_out, "Write results as JSON to FILE");
  cmd->add_option("--trace", o->trace_out, "Write what each setting computed per input (forward sequence) and layer (tokens, "
                  "heads, CTA clusters) to FILE, for `sieve sim`");
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
