// sieve_cuda_bench: latency of the CUDA backend as JSON, for bench/cuda_bench.py to put next to
// PyTorch (scaled_dot_product_attention and eager Hugging Face BERT) measured on the same device.
//
//   sieve_cuda_bench --model DIR [--seq 128,384,512] [--batch 1,8,32] [--policy dense --policy SPEC]
//                    [--warmup 5] [--repeats 30] [--json out.json]
//   sieve_cuda_bench --attention-only [--heads 12 --head-dim 64] [--seq ...] [--batch ...] [--json ...]
//
// End to end: inputs are the synthetic [CLS] w... [SEP] batches of `sieve bench`, equal lengths; the
// time is one forward() call (upload of ids, all layers, download of the [CLS] rows), median
// of the repeats. --attention-only times the fused attention kernel alone on random FP16 Q/K/V with
// CUDA events: the one-pass kernel, and the two-pass kernel without and with the pruning statistics.
#include <cuda_fp16.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/cuda_encoder.h"
#include "cuda/host/attention_plan.h"
#include "cuda/kernels.h"
#include "policies/policy_spec.h"
#include "util/error.h"

namespace {

using sieve::Error;
using namespace sieve::cuda;

struct Options {
  std::string model_dir, json_out;
  std::vector<int> seqs{128, 384, 512}, batches{1, 8, 32};
  std::vector<std::string> policies;
  int warmup = 5, repeats = 30, heads = 12, head_dim = 64;
  bool attention_only = false;
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) v.push_back(std::stoi(item));
  if (v.empty()) throw Error("empty list: " + s);
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("missing value for " + a);
      return argv[++i];
    };
    if (a == "--model") o.model_dir = value();
    else if (a == "--seq") o.seqs = parse_list(value());
    else if (a == "--batch") o.batches = parse_list(value());
    else if (a == "--policy") o.policies.push_back(value());
    else if (a == "--warmup") o.warmup = std::stoi(value());
    else if (a == "--repeats") o.repeats = std::stoi(value());
    else if (a == "--heads") o.heads = std::stoi(value());
    else if (a == "--head-dim") o.head_dim = std::stoi(value());
    else if (a == "--json") o.json_out = value();
    else if (a == "--attention-only") o.attention_only = true;
    else if (a == "--help" || a == "-h") {
      std::cout << "usage: sieve_cuda_bench --model DIR [--seq L] [--batch L] [--policy SPEC]... [--warmup N] "
                   "[--repeats N] [--json FILE]\n       sieve_cuda_bench --attention-only [--heads N] [--head-dim D] "
                   "[--seq L] [--batch L] [--json FILE]\n";
      std::exit(0);
    } else {
      throw Error("unknown option " + a);
    }
  }
  if (o.policies.empty()) o.policies.push_back("dense");
  if (!o.attention_only && o.model_dir.empty()) throw Error("--model is required (or --attention-only)");
  if (o.repeats < 1 || o.warmup < 0) throw Error("--repeats must be >= 1 and --warmup >= 0");
  return o;
}

nlohmann::json summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[static_cast<size_t>(q * static_cast<double>(ms.size() - 1) + 0.5)]; };
  return {{"median_ms", at(0.5)}, {"p10_ms", at(0.1)}, {"p90_ms", at(0.9)}, {"runs", ms.size()}};
}

std::vector<sieve::EncoderInput> synthetic_batch(int batch, int seq) {
  std::vector<sieve::EncoderInput> inputs(static_cast<size_t>(batch));
  for (int j = 0; j < batch; ++j)
    for (int i = 0; i < seq; ++i)
      inputs[static_cast<size_t>(j)].ids.push_back(
          i == 0 ? 101 : i == seq - 1 ? 102 : 1000 + static_cast<int>((static_cast<int64_t>(i) * 7919 + static_cast<int64_t>(j) * 104729) % 20000));
  return inputs;
}

nlohmann::json bench_encoder(const Options& o) {
  const CudaBertEncoder enc = CudaBertEncoder::load(o.model_dir);
  nlohmann::json rows = nlohmann::json::array();
  for (int seq : o.seqs) {
    for (int batch : o.batches) {
      const auto inputs = synthetic_batch(batch, std::min<int>(seq, static_cast<int>(enc.config().max_position_embeddings)));
      double dense_ms = 0.0;
      for (const std::string& spec : o.policies) {
        auto policy = sieve::parse_policy_spec(spec, enc.config());
        sieve::ForwardOptions fo;
        if (!policy->empty()) fo.policy = policy.get();
        CudaRunOptions run{.hidden_to_policies = false, .cls_only = true};
        sieve::ForwardStats stats;
        for (int w = 0; w < o.warmup; ++w) enc.forward(inputs, fo, &stats, run);
        CudaRunOptions::HostTimes host;
        run.host_times = &host;
        std::vector<double> ms;
        for (int r = 0; r < o.repeats; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          enc.forward(inputs, fo, &stats, run);
          ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        nlohmann::json row = summarize(ms);
        // Per forward: the host waiting for statistics, and deciding + compacting (GPU idle).
        row["statistics_wait_ms"] = 1e3 * host.statistics_wait_s / o.repeats;
        row["decide_ms"] = 1e3 * host.decide_s / o.repeats;
        row["engine"] = "sieve-cuda";
        row["policy"] = spec;
        row["seq"] = seq;
        row["batch"] = batch;
        row["gflops"] = stats.flops / 1e9;
        row["tokens_per_layer"] = stats.tokens_per_layer;
        if (spec == "dense") dense_ms = row["median_ms"];
        if (dense_ms > 0.0 && spec != "dense") row["speedup_vs_dense"] = dense_ms / row["median_ms"].get<double>();
        std::cerr << "sieve-cuda " << spec << " seq " << seq << " batch " << batch << ": " << row["median_ms"]
                  << " ms (host: waiting " << row["statistics_wait_ms"] << " ms, deciding " << row["decide_ms"] << " ms)\n";
        rows.push_back(row);
      }
    }
  }
  return {{"device", enc.device_name()}, {"model", o.model_dir}, {"results", rows}};
}

nlohmann::json bench_attention(const Options& o) {
  if (!device_available()) throw Error("no CUDA device is available");
  cudaDeviceProp prop{};
  SIEVE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  nlohmann::json rows = nlohmann::json::array();
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  cudaEvent_t start, stop;
  SIEVE_CUDA_CHECK(cudaEventCreate(&start));
  SIEVE_CUDA_CHECK(cudaEventCreate(&stop));
  const int64_t H = static_cast<int64_t>(o.heads) * o.head_dim;
  for (int seq : o.seqs) {
    for (int batch : o.batches) {
      std::vector<sieve::PackedSequence> seqs(static_cast<size_t>(batch));
      for (int b = 0; b < batch; ++b) {
        seqs[static_cast<size_t>(b)].positions.resize(static_cast<size_t>(seq));
        seqs[static_cast<size_t>(b)].is_special.assign(static_cast<size_t>(seq), 0);
        for (int h = 0; h < o.heads; ++h) seqs[static_cast<size_t>(b)].heads.push_back(h);
      }
      const int64_t rows_n = sieve::assign_offsets(seqs);
      const AttentionPlan plan = plan_attention(seqs, o.heads);
      std::vector<__half> host(static_cast<size_t>(rows_n * 3 * H));
      for (auto& v : host) v = __float2half(dist(rng));
      DeviceBuffer<__half> qkv(host.size()), out(static_cast<size_t>(rows_n * H));
      qkv.upload(host.data(), host.size());
      DeviceBuffer<int32_t> cu(plan.cu_seqlens.size());
      cu.upload(plan.cu_seqlens.data(), plan.cu_seqlens.size());
      DeviceBuffer<AttentionWorkItem> items(plan.items.size());
      items.upload(plan.items.data(), plan.items.size());
      DeviceBuffer<float> received(static_cast<size_t>(plan.received_size())), mag(static_cast<size_t>(plan.head_magnitude_size()));
      // One pass (no statistics: dense layers), two passes without and with the pruning statistics.
      struct Variant {
        const char* engine;
        bool with_stats, two_pass;
      };
      for (const Variant& variant : {Variant{"sieve-cuda-attention", false, false},
                                     Variant{"sieve-cuda-attention-two-pass", false, true},
                                     Variant{"sieve-cuda-attention+stats", true, true}}) {
        const bool with_stats = variant.with_stats;
        AttentionArgs args = packed_attention_args(qkv.get(), out.get(), o.heads, o.head_dim, cu.get(), items.get(),
                                                   static_cast<int>(plan.items.size()));
        args.received = with_stats ? received.get() : nullptr;
        args.head_magnitude = with_stats ? mag.get() : nullptr;
        if (variant.two_pass) args.algorithm = AttentionAlgorithm::kTwoPass;
        for (int w = 0; w < o.warmup; ++w) fused_attention(args, plan.received_size(), plan.head_magnitude_size());
        std::vector<double> ms;
        for (int r = 0; r < o.repeats; ++r) {
          SIEVE_CUDA_CHECK(cudaEventRecord(start));
          fused_attention(args, plan.received_size(), plan.head_magnitude_size());
          SIEVE_CUDA_CHECK(cudaEventRecord(stop));
          SIEVE_CUDA_CHECK(cudaEventSynchronize(stop));
          float t = 0.0f;
          SIEVE_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
          ms.push_back(t);
        }
        nlohmann::json row = summarize(ms);
        row["engine"] = variant.engine;
        row["seq"] = seq;
        row["batch"] = batch;
        row["heads"] = o.heads;
        row["head_dim"] = o.head_dim;
        std::cerr << row["engine"].get<std::string>() << " seq " << seq << " batch " << batch << ": " << row["median_ms"] << " ms\n";
        rows.push_back(row);
      }
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return {{"device", prop.name}, {"results", rows}};
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const nlohmann::json j = o.attention_only ? bench_attention(o) : bench_encoder(o);
    if (o.json_out.empty()) {
      std::cout << j.dump(2) << "\n";
    } else {
      std::ofstream(o.json_out) << j.dump(2) << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "sieve_cuda_bench: " << e.what() << "\n";
    return 1;
  }
}
