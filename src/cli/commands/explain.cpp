// sieve explain: a self-contained HTML page showing, layer by layer, which tokens and heads a
// policy kept for one input (SpAtten's "As a visual treat, the film is almost perfect." -> "film perfect").
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/commands/common.h"
#include "model/question_answerer.h"
#include "policies/policy_spec.h"
#include "policies/pruning_trace.h"
#include "util/error.h"

namespace sieve::cli {

namespace {

struct ExplainOptions {
  ModelOptions model;
  std::string text, pair, policy = "spatten:tokens=0.3,heads=0.75", output = "explain.html", json_output;
};

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render(const std::vector<std::string>& tokens, const std::vector<LayerTrace>& layers, int num_heads,
                   const std::string& text, const std::string& policy, const std::string& prediction) {
  std::ostringstream h;
  h << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>sieve explain</title><style>"
       "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
       "table{border-collapse:collapse}td{padding:4px 6px;vertical-align:top}"
       ".tok{display:inline-block;margin:1px;padding:1px 4px;border-radius:3px;font-family:monospace}"
       ".gone{color:#ccc}.pruned{text-decoration:line-through;color:#b00;background:#fee}"
       ".head{display:inline-block;width:10px;height:10px;margin:1px;border:1px solid #888}"
       ".on{background:#2a6}.off{background:#fff}.note{color:#666;font-size:90%}</style></head><body>";
  h << "<h2>What Sieve computed</h2><p><b>Input:</b> " << html_escape(text) << "<br><b>Policy:</b> <code>"
    << html_escape(policy) << "</code>" << prediction << "</p>";
  h << "<p class=note>Each row is a layer. Shaded tokens entered the layer's attention (darker = more attention "
       "received, LTP's mean score); struck-out red tokens were pruned after it; grey ones were pruned earlier and "
       "are never computed again. Squares are attention heads (green = computed).</p><table>";
  std::vector<int32_t> survivors;
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerTrace& t = layers[l];
    if (t.positions.empty()) break;  // exited early
    h << "<tr><td><b>layer " << l + 1 << "</b><br><span class=note>" << t.positions.size() << " tokens, "
      << t.heads.size() << " heads</span></td><td>";
    const std::set<int32_t> heads(t.heads.begin(), t.heads.end());
    for (int hd = 0; hd < num_heads; ++hd) h << "<span class=\"head " << (heads.count(hd) ? "on" : "off") << "\"></span>";
    h << "</td><td>";
    const std::set<int32_t> kept(t.kept.begin(), t.kept.end());
    float max_imp = 1e-9f;
    for (float v : t.importance) max_imp = std::max(max_imp, v);
    size_t row = 0;
    for (size_t p = 0; p < tokens.size(); ++p) {
      const auto pos = static_cast<int32_t>(p);
      const bool entered = row < t.positions.size() && t.positions[row] == pos;
      if (!entered) {
        h << "<span class=\"tok gone\">" << html_escape(tokens[p]) << "</span>";
        continue;
      }
      const float a = t.importance[row++] / max_imp;
      if (kept.count(pos)) {
        h << "<span class=tok style=\"background:rgba(40,110,200," << 0.08 + 0.6 * a << ")\" title=\"score "
          << t.importance[row - 1] << "\">" << html_escape(tokens[p]) << "</span>";
      } else {
        h << "<span class=\"tok pruned\">" << html_escape(tokens[p]) << "</span>";
      }
    }
    h << "</td></tr>";
    survivors = t.kept;
  }
  h << "</table><p><b>Survivors after the last layer:</b> ";
  for (int32_t p : survivors) h << html_escape(tokens.at(static_cast<size_t>(p))) << " ";
  h << "</p></body></html>\n";
  return h.str();
}

void run(const ExplainOptions& o) {
  const TextModel model = load_model(o.model);
  const BertEncoder& enc = model.encoder();
  auto chain = parse_policy_spec(o.policy, enc.config(), model.exits(), model.block_skim());
  PruningTrace trace(chain.get());
  // A question-answering model reads (question, context) as `sieve qa` windows it, so the page
  // shows the input the answer came from: the first window, and its best span.
  const bool question_answering = enc.has_qa_head() && !o.pair.empty();
  QaOptions qa;
  if (o.model.max_length) qa.max_length = o.model.max_length;
  const QaQuery query{o.text, o.pair};
  std::vector<QaWindow> windows;
  if (question_answering) windows = make_qa_windows(model.tokenizer(), query, 0, qa);
  const std::vector<EncoderInput> inputs =
      question_answering ? std::vector<EncoderInput>{windows.front().input}
                         : model.encode({TextPair{o.text, o.pair}}, o.model.max_length).inputs;
  const auto outputs = enc.forward(inputs, {&trace});
  // The page shows the tokens the model ran on: the same ids, so every position a trace names
  // exists (tokenizing again at another length once indexed past the end).
  std::vector<std::string> tokens;
  for (const int32_t id : inputs[0].ids) tokens.push_back(model.tokenizer().token(id));
  std::string prediction, predicted;
  if (question_answering) {
    const auto answers = decode_answers(o.pair, {&windows.front()}, {enc.span_logits(outputs[0], inputs[0].ids.size())}, qa);
    predicted = answers.empty() ? std::string() : answers.front().text;
    prediction = "<br><b>Answer:</b> " + (answers.empty() ? std::string("(none: no context token survived)") : html_escape(predicted));
    if (windows.size() > 1) prediction += " <span class=note>(first of " + std::to_string(windows.size()) + " windows)</span>";
  } else if (enc.has_classifier()) {
    const auto logits = enc.classify(outputs[0]);
    const size_t best = static_cast<size_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    const auto& names = enc.config().id2label;
    predicted = best < names.size() ? names[best] : std::to_string(best);
    prediction = "<br><b>Prediction:</b> " + html_escape(predicted);
  }
  const std::string html = render(tokens, trace.layers()[0], static_cast<int>(enc.config().num_attention_heads),
                                  o.pair.empty() ? o.text : o.text + " | " + o.pair, chain->describe(), prediction);
  write_file_atomically(o.output, [&](std::ostream& out) { out << html; });
  if (!o.json_output.empty()) {
    // The same trace for tools (tools/plot_explain.py draws it): per layer, the positions that
    // entered attention, their mean attention received, and the positions kept.
    nlohmann::json j{{"text", o.text}, {"pair", o.pair}, {"policy", chain->describe()}, {"prediction", predicted},
                     {"question_answering", question_answering}, {"tokens", tokens},
                     {"context_begin", question_answering ? windows.front().context_begin : 0}, {"layers", nlohmann::json::array()}};
    for (const LayerTrace& t : trace.layers()[0])
      j["layers"].push_back({{"positions", t.positions}, {"heads", t.heads}, {"importance", t.importance}, {"kept", t.kept}});
    write_file_atomically(o.json_output, [&](std::ostream& out) { out << j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n"; });
  }
  std::string survivors;
  for (int32_t p : trace.layers()[0].back().kept) survivors += tokens.at(static_cast<size_t>(p)) + " ";
  std::printf("survivors: %s\nwrote %s\n", survivors.c_str(), o.output.c_str());
}

}  // namespace

void register_explain(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  CLI::App* cmd = app.add_subcommand("explain", "Write an HTML page showing which tokens and heads survive each layer");
  add_model_options(*cmd, o->model);
  cmd->add_option("text", o->text, "Input text (the question, for a question-answering model)")->required();
  cmd->add_option("--pair", o->pair, "Second sentence of a pair (the context, for a question-answering model)");
  cmd->add_option("--policy,-p", o->policy, std::string("Policy spec: ") + kPolicySpecHelp);
  cmd->add_option("--output,-o", o->output, "HTML file to write");
  cmd->add_option("--json", o->json_output, "Also write the trace as JSON (tokens; per layer: positions, heads, importance, kept)");
  cmd->callback([o] { run(*o); });
}

}  // namespace sieve::cli
