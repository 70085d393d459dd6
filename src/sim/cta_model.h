#pragma once
// A cycle model of the CTA accelerator (../shared/seeds/cta-compressed-token-attention-paper.txt,
// sections IV-V and Table I), which computes one head of attention on a b x d systolic array (SA)
// at 1 GHz with a cluster index module (CIM), centroid aggregation (CACC/CAVG, on SA columns 6
// and 7) and a probability aggregation module (PAG) of b tiles. Like the paper's simulator it sums
// the latency of Table I's mapping steps, bubbles removed (section V-B):
//   steps 1-3  LSH_1, LSH_0, LSH_2: one token per cycle through the SA, ceil(dw / d) passes each,
//              CACC and CIM working alongside                       3 n ceil(dw / d)
//   step 4     CAVG of the residual centroids on SA column 7        k2 ceil(dw / d)
//   steps 5-6  Kbar, Vbar for b centroids at a time                 2 ceil((k1 + k2) / b) dw
//   steps 7-13 per batch of b query centroids: Qbar (dw), scores (k1 + k2), outputs (k1 + k2) on
//              the SA while PAG aggregates the previous batch (b tiles, 2 tokens per cycle each,
//              n tokens): each batch takes max(dw + 2 (k1 + k2), ceil(b / tiles) n / 2)
// dw is the width of the tokens the head reads. The paper sets the SA's height d to the head size
// (64) and calls it the "token dimension"; its published latencies (CTA-0/0.5/1 at 41/34/26 % of
// the ideal accelerator) follow only if tokens are d wide, so `token_dim` = head size is the
// paper's reading and the model's hidden size (every Q/K/V projection reads the whole token) the
// real cost. A dense head on the same SA: 3 ceil(n / b) dw (Q, K, V) + ceil(n / b) 2 n (scores,
// outputs). The paper's "ideal accelerator": as many multipliers (b d), always at peak, no CTA:
// (3 n dw d + 2 n^2 d) / (b d).
#include <string>
#include <vector>

#include "sim/workload_trace.h"

namespace sieve::sim {

struct CtaHardwareConfig {
  double clock_ghz = 1.0;    // paper
  double sa_width = 8;       // b (paper)
  double sa_height = 0;      // d; 0 = the model's head size (the paper: 64, its models' head size)
  double pag_tiles = 8;      // = b (paper)
  double pag_tokens_per_tile = 2;  // two inner-loop iterations per cycle per tile (paper)
  double token_dim = 0;      // dw; 0 = the model's hidden size
  double paper_token_width = 0;  // 1: tokens as wide as the SA is high (dw = d), the paper's reading
  double token_width(double hidden, double d) const { return paper_token_width > 0 ? d : token_dim > 0 ? token_dim : hidden; }
};

CtaHardwareConfig cta_config_from_json(const nlohmann::json& j, const std::string& source);
nlohmann::json cta_config_to_json(const CtaHardwareConfig& config);

struct CtaCycles {
  double compression = 0;  // steps 1-4: hashing, clustering, centroids
  double linear = 0;       // Qbar, Kbar, Vbar (dense: Q, K, V)
  double attention = 0;    // scores and outputs, with any PAG stall
  double total() const { return compression + linear + attention; }
  void add(const CtaCycles& other) { compression += other.compression, linear += other.linear, attention += other.attention; }
};

// One head: n tokens of width dw, SA height d, clusters k0, k1, k2.
CtaCycles cta_head_cycles(const CtaHardwareConfig& c, double n, double dw, double d, double k0, double k1, double k2);
CtaCycles dense_head_cycles(const CtaHardwareConfig& c, double n, double dw, double d);
double ideal_head_cycles(const CtaHardwareConfig& c, double n, double dw, double d);

// The paper states its operating points as RL = (k0 + 2 kc) / 3n and RA = k0 kc / n^2 (kc = k1 + k2).
// The two (k0, kc) that give them, or none when no real solution exists.
struct ClusterCounts {
  double k0 = 0, kc = 0;
};
std::vector<ClusterCounts> clusters_for(double n, double rl, double ra);

struct CtaSettingResult {
  std::string spec;
  CtaCycles cost;   // as the trace ran: CTA heads at their mean clusters, other heads dense, on the CTA SA
  CtaCycles dense;  // the same inputs, nothing pruned, every head dense on the same SA
  double ideal = 0; // the paper's ideal accelerator on the same inputs, nothing pruned
  double speedup() const { return cost.total() > 0 ? dense.total() / cost.total() : 0.0; }
};

// Encoder traces only (CTA is an encoder-stage method); one result per setting.
std::vector<CtaSettingResult> simulate_cta(const CtaHardwareConfig& c, const WorkloadTrace& trace);

}  // namespace sieve::sim
