// The accelerator models (src/sim) on hand-computed tiny cases, the traces the engine records for
// them, and the trace reader on damaged files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "model/bert_encoder.h"
#include "policies/policy_spec.h"
#include "sim/cta_model.h"
#include "sim/paper_points.h"
#include "sim/spatten_model.h"
#include "sim/workload_trace.h"
#include "test_helpers.h"
#include "tiny_bert.h"
#include "util/error.h"

namespace sieve::sim {
namespace {

using nlohmann::json;

// SpAtten, default config: 512 + 512 multipliers, 16 x 32 GB/s at 1 GHz = 512 bytes per cycle,
// 16 comparators, 2 quick-select passes, 12-bit Q/K/V.
TEST(SpattenModel, SummarizationLayerByHand) {
  const SpattenConfig c;
  // 16 tokens, 2 heads of 64: Q.K = 2 * 16 * 16 * 64 = 32768 MACs = 64 cycles on 512 multipliers,
  // prob.V the same; top-k 2 * (16 + 2) / 16 = 2.25; DRAM 2 heads * (Q + out + K + V) of
  // 16 * 64 * 1.5 bytes = 12288 bytes = 24 cycles. Compute-bound: 64 cycles.
  const SpattenCost cost = spatten_summarization_layer(c, 16, 2, 64, true);
  EXPECT_DOUBLE_EQ(cost.qk_cycles, 64.0);
  EXPECT_DOUBLE_EQ(cost.pv_cycles, 64.0);
  EXPECT_DOUBLE_EQ(cost.topk_cycles, 2.25);
  EXPECT_DOUBLE_EQ(cost.dram_bytes, 12288.0);
  EXPECT_DOUBLE_EQ(cost.dram_cycles, 24.0);
  EXPECT_DOUBLE_EQ(cost.cycles, 64.0);
  EXPECT_DOUBLE_EQ(cost.flops, 4.0 * 32768);
  EXPECT_EQ(cost.bound(), "Q.K");
  EXPECT_DOUBLE_EQ(spatten_summarization_layer(c, 16, 2, 64, false).topk_cycles, 0.0);

  // A 1 KiB SRAM buffers 512 bytes of K and V: a head's 3072 bytes are fetched 6 times.
  SpattenConfig small = c;
  small.sram_kib = 1;
  const SpattenCost spilled = spatten_summarization_layer(small, 16, 2, 64, false);
  EXPECT_DOUBLE_EQ(spilled.dram_bytes, 2.0 * (3072 + 3072 * 6));
  EXPECT_DOUBLE_EQ(spilled.cycles, 43008.0 / 512);
  EXPECT_EQ(spilled.bound(), "DRAM");
}

TEST(SpattenModel, GenerationByHand) {
  const SpattenConfig c;
  const GenerationShape shape{1, 1, 3, 4};  // 3 query heads share one KV head of 4
  KvTraffic t;
  t.key_elements = 100, t.refetched_key_elements = 20, t.key_bits = 100 * 4 + 20 * 4, t.key_bytes = 60;
  t.value_elements = 40, t.value_bytes = 30, t.head_reads = 1;
  // Q.K: (100 + 20 recomputed) * 3 / 512; prob.V: 40 * 3 / 512; top-k (values pruned): 2 * 25 keys
  // * 3 heads / 16 = 9.375; DRAM: the 90 bytes fetched. Top-k-bound.
  const SpattenCost cost = spatten_generation(c, shape, t);
  EXPECT_DOUBLE_EQ(cost.qk_cycles, 360.0 / 512);
  EXPECT_DOUBLE_EQ(cost.pv_cycles, 120.0 / 512);
  EXPECT_DOUBLE_EQ(cost.topk_cycles, 9.375);
  EXPECT_DOUBLE_EQ(cost.dram_bytes, 90.0);
  EXPECT_DOUBLE_EQ(cost.cycles, 9.375);
  EXPECT_DOUBLE_EQ(cost.flops, 2.0 * 140 * 3);
  // An fp32 read (no value pruning) is replayed at the accelerator's 12 bits.
  KvTraffic dense;
  dense.key_elements = dense.value_elements = 100, dense.key_bits = 3200, dense.key_bytes = dense.value_bytes = 400;
  const SpattenCost d = spatten_generation(c, shape, dense);
  EXPECT_DOUBLE_EQ(d.dram_bytes, 300.0);
  EXPECT_DOUBLE_EQ(d.topk_cycles, 0.0);
  EXPECT_DOUBLE_EQ(d.cycles, std::max(300.0 / 512, 300.0 / 512));
}

// CTA, default config (b = 8, 8 PAG tiles of 2 tokens per cycle), SA height 8, tokens 16 wide:
// 2 passes per hash. n = 16, k0 = 4, k1 = 3, k2 = 2:
//   compression 3 * 16 * 2 + 2 * 2 = 100; linear 2 * ceil(5 / 8) * 16 + ceil(4 / 8) * 16 = 48;
//   attention: one query batch, SA 16 + 2 * 5 = 26 vs PAG 16 / 2 = 8 -> 26 - 16 = 10.
TEST(CtaModel, HeadByHand) {
  const CtaHardwareConfig c;
  const CtaCycles cycles = cta_head_cycles(c, 16, 16, 8, 4, 3, 2);
  EXPECT_DOUBLE_EQ(cycles.compression, 100.0);
  EXPECT_DOUBLE_EQ(cycles.linear, 48.0);
  EXPECT_DOUBLE_EQ(cycles.attention, 10.0);
  // Dense on the same SA: 2 batches of 8 tokens, Q/K/V 3 * 2 * 16 = 96, scores + outputs 2 * 2 * 16 = 64.
  const CtaCycles dense = dense_head_cycles(c, 16, 16, 8);
  EXPECT_DOUBLE_EQ(dense.linear, 96.0);
  EXPECT_DOUBLE_EQ(dense.attention, 64.0);
  EXPECT_DOUBLE_EQ(dense.compression, 0.0);
  // Ideal: (3 * 16 * 16 * 8 + 2 * 256 * 8) / 64 = 160.
  EXPECT_DOUBLE_EQ(ideal_head_cycles(c, 16, 16, 8), 160.0);
  // PAG-bound: 64 tokens take 32 cycles per batch against the SA's 8 + 2.
  EXPECT_DOUBLE_EQ(cta_head_cycles(c, 64, 8, 8, 8, 1, 0).attention, 32.0 - 8.0);
}

TEST(CtaModel, ClusterCountsFromRlAndRa) {
  // k0 = 4, kc = 4 at n = 10: RL = 12 / 30, RA = 16 / 100; the other root is k0 = 8, kc = 2.
  const auto roots = clusters_for(10, 0.4, 0.16);
  ASSERT_EQ(roots.size(), 2u);
  EXPECT_NEAR(roots[0].k0, 4, 1e-9);
  EXPECT_NEAR(roots[0].kc, 4, 1e-9);
  EXPECT_NEAR(roots[1].k0, 8, 1e-9);
  EXPECT_NEAR(roots[1].kc, 2, 1e-9);
  EXPECT_TRUE(clusters_for(10, 0.1, 0.9).empty());
}

// A trace by hand: 2 layers, 2 heads of 8 (hidden 16); input 0 of 10 tokens, input 1 of 6.
WorkloadTrace hand_trace(std::vector<std::vector<LayerWork>> pruned) {
  WorkloadTrace t;
  t.kind = WorkloadTrace::Kind::Encoder;
  t.encoder = {2, 2, 16, 8, 64};
  std::vector<std::vector<LayerWork>> dense = {{{10, 2}, {10, 2}}, {{6, 2}, {6, 2}}};
  t.encoder_settings.push_back({"dense", dense});
  t.encoder_settings.push_back({"pruned", std::move(pruned)});
  return t;
}

TEST(SimTraces, NothingPrunedGivesTheDenseCost) {
  const WorkloadTrace t = hand_trace({{{10, 2}, {10, 2}}, {{6, 2}, {6, 2}}});
  for (const auto& r : simulate_spatten(SpattenConfig{}, t)) {
    EXPECT_DOUBLE_EQ(r.cost.cycles, r.dense.cycles) << r.spec;  // the "pruned" one ranks: top-k is never the bottleneck here
    EXPECT_DOUBLE_EQ(r.speedup(), 1.0);
    EXPECT_DOUBLE_EQ(r.dram_reduction(), 1.0);
  }
  for (const auto& r : simulate_cta(CtaHardwareConfig{}, t)) {
    EXPECT_DOUBLE_EQ(r.cost.total(), r.dense.total()) << r.spec;
    // Dense per input and layer: 2 heads * (3 ceil(n / 8) 16 + ceil(n / 8) 2 n); n = 10 and 6.
    EXPECT_DOUBLE_EQ(r.dense.total(), 2 * 2 * (3 * 2 * 16 + 2 * 2 * 10) + 2 * 2 * (3 * 1 * 16 + 1 * 2 * 6));
  }
}

TEST(SimTraces, PrunedTokensHeadsExitsAndClustersByHand) {
  // Input 0: 10 tokens and 2 heads, then 4 tokens and 1 head; input 1 exits after layer 0; layer 0
  // of input 1 runs both heads through CTA with k0 = 3 + 3, k1 = 2 + 2, k2 = 1 + 1.
  LayerWork cta_layer{6, 2, 2, 6, 4, 2};
  const WorkloadTrace t = hand_trace({{{10, 2}, {4, 1}}, {cta_layer, {}}});
  const SpattenConfig s;
  const auto spatten = simulate_spatten(s, t);
  const double expected = spatten_summarization_layer(s, 10, 2, 8, true).cycles + spatten_summarization_layer(s, 4, 1, 8, true).cycles +
                          spatten_summarization_layer(s, 6, 2, 8, true).cycles;
  EXPECT_DOUBLE_EQ(spatten[1].cost.cycles, expected);
  EXPECT_GT(spatten[1].speedup(), 1.0);

  const CtaHardwareConfig c;
  const auto cta = simulate_cta(c, t);
  const double d = 8, dw = 16;
  const double by_hand = 2 * dense_head_cycles(c, 10, dw, d).total() + dense_head_cycles(c, 4, dw, d).total() +
                         2 * cta_head_cycles(c, 6, dw, d, 3, 2, 1).total();
  EXPECT_DOUBLE_EQ(cta[1].cost.total(), by_hand);
  EXPECT_DOUBLE_EQ(cta[1].ideal, 2 * 2 * ideal_head_cycles(c, 10, dw, d) + 2 * 2 * ideal_head_cycles(c, 6, dw, d));
}

TEST(SimTraces, JsonRoundTripAndDamagedFilesAreRefused) {
  const WorkloadTrace t = hand_trace({{{10, 2}, {4, 1}}, {{6, 2, 2, 6, 4, 2}, {}}});
  const json j = trace_to_json(t);
  const WorkloadTrace back = trace_from_json(j, "t");
  ASSERT_EQ(back.encoder_settings.size(), 2u);
  EXPECT_EQ(back.encoder_settings[1].inputs[1][0].cta_k1, 4.0);
  EXPECT_EQ(trace_to_json(back), j);

  const auto refused = [&](const std::function<void(json&)>& damage, const std::string& message) {
    json bad = j;
    damage(bad);
    try {
      trace_from_json(bad, "t");
      ADD_FAILURE() << "accepted: " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  refused([](json& b) { b["kind"] = "gpu"; }, "kind");
  refused([](json& b) { b.erase("shape"); }, "shape");
  refused([](json& b) { b["settings"] = json::array(); }, "no settings");
  refused([](json& b) { b["shape"]["heads"] = 0; }, "heads");
  refused([](json& b) { b["settings"][1]["inputs"][0][0][0] = 65; }, "tokens");       // > max_tokens
  refused([](json& b) { b["settings"][1]["inputs"][0][0][1] = 3; }, "heads");         // > the model's 2
  refused([](json& b) { b["settings"][1]["inputs"][0][0][2] = 3; }, "cta_heads");     // > heads computed
  refused([](json& b) { b["settings"][1]["inputs"][1][0][3] = 13; }, "k0");           // > 6 tokens * 2 heads
  refused([](json& b) { b["settings"][1]["inputs"][1][0][4] = -1; }, "k1");
  refused([](json& b) { b["settings"][1]["inputs"][1][0][5] = "x"; }, "k2");
  refused([](json& b) { b["settings"][1]["inputs"][0][1][0] = 11; }, "gains tokens");
  refused([](json& b) { b["settings"][1]["inputs"][0].erase(1); }, "layers");
  refused([](json& b) { b["settings"][1]["inputs"][0][0] = json::array({10, 2}); }, "tokens, heads");

  WorkloadTrace dec;
  dec.kind = WorkloadTrace::Kind::Decoder;
  dec.decoder = {2, 1, 3, 4};
  KvTraffic traffic;
  traffic.key_elements = 100, traffic.key_bits = 3200, traffic.key_bytes = traffic.value_bytes = 400, traffic.value_elements = 100;
  dec.decoder_settings.push_back({"dense", 10, 20.5, traffic});
  const json dj = trace_to_json(dec);
  EXPECT_EQ(trace_to_json(trace_from_json(dj, "d")), dj);
  json bad = dj;
  bad["settings"][0]["refetched_key_elements"] = 101;
  EXPECT_THROW(trace_from_json(bad, "d"), Error);
  bad = dj;
  bad["shape"]["query_heads"] = 4;
  bad["shape"]["kv_heads"] = 3;
  EXPECT_THROW(trace_from_json(bad, "d"), Error);
  bad = dj;
  bad["settings"][0]["key_bits"] = 1e9;
  EXPECT_THROW(trace_from_json(bad, "d"), Error);
}

TEST(SimConfig, UnknownOrOutOfRangeKnobsAreRefused) {
  EXPECT_EQ(spatten_config_from_json(json{{"dense_bits", 8}}, "c").dense_bits, 8.0);
  EXPECT_THROW(spatten_config_from_json(json{{"multipliers", 8}}, "c"), Error);
  EXPECT_THROW(spatten_config_from_json(json{{"clock_ghz", 0}}, "c"), Error);
  EXPECT_THROW(spatten_config_from_json(json::array(), "c"), Error);
  EXPECT_THROW(cta_config_from_json(json{{"sa_width", "8"}}, "c"), Error);
  EXPECT_EQ(cta_config_from_json(cta_config_to_json(CtaHardwareConfig{}), "c").sa_width, 8.0);
}

TEST(SimPaperPoints, CtaLatenciesFollowThePapersReading) {
  // The paper's CTA-0 and CTA-1 latencies (41 % and 26 % of the ideal accelerator) with d-wide tokens.
  for (const PaperPoint& p : cta_paper_points(CtaHardwareConfig{})) {
    if (p.what.find("token width 64") == std::string::npos) continue;
    EXPECT_NEAR(p.model, p.paper, 0.05) << p.what;
  }
}

// The encoder records what it computed: per input and layer, tokens and heads as the policy left
// them (checked against ForwardStats' per-layer sums) and CTA's clusters.
TEST(SimTraces, EncoderRecordsItsWork) {
  const auto dir = testing::make_tiny_bert("sim", {3, 64, 4, 128, 120, 64, 0});
  const BertEncoder encoder = BertEncoder::load(dir);
  std::vector<EncoderInput> inputs;
  for (int len : {5, 17, 30}) {
    EncoderInput in;
    in.ids.push_back(2);
    for (int i = 1; i + 1 < len; ++i) in.ids.push_back(5 + (i * 31 + len) % 110);
    in.ids.push_back(3);
    inputs.push_back(in);
  }
  auto policy = parse_policy_spec("spatten:tokens=0.4,heads=0.5,start=0+cta:w=8", encoder.config());
  ForwardOptions options{policy.get()};
  options.record_work = true;
  ForwardStats stats;
  encoder.forward(inputs, options, &stats);
  ASSERT_EQ(stats.work.size(), inputs.size());
  for (size_t l = 0; l < 3; ++l) {
    int64_t heads = 0, cta_heads = 0;
    double k0 = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const LayerWork& w = stats.work[i][l];
      heads += w.heads, cta_heads += w.cta_heads, k0 += w.cta_k0;
      EXPECT_EQ(w.cta_heads, w.heads);
      EXPECT_LE(w.cta_k0, static_cast<double>(w.tokens) * w.heads);
      if (l == 0) EXPECT_EQ(w.tokens, static_cast<int32_t>(inputs[i].ids.size()));
      if (l > 0) EXPECT_LE(w.tokens, stats.work[i][l - 1].tokens);
    }
    EXPECT_EQ(heads, stats.heads_per_layer[l]);
    EXPECT_EQ(cta_heads, stats.cta.heads[l]);
    EXPECT_DOUBLE_EQ(k0, stats.cta.k0[l]);
  }
  EXPECT_LT(stats.work[2][2].tokens, 30);  // the pruner removed tokens
  ForwardStats plain;
  encoder.forward(inputs, {policy.get()}, &plain);
  EXPECT_TRUE(plain.work.empty());  // recorded only when asked
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sieve::sim
