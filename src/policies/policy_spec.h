#pragma once
// Policies are chosen with a spec string, the same in the CLI, the evaluator and the bindings:
//   dense
//   spatten:tokens=0.3[,heads=0.75][,start=1][,at=ffn|next]
//   spatten:token_ratios=1/1/0.8/0.6/0.5/0.4[,head_ratios=...]
//   ltp:final=0.02[,at=ffn|next]        thresholds final*(l+1)/L, as in LTP / Magic Pyramid
//   ltp:thresholds=0.001/0.002/.../0.02  one per layer
//   exit:tau=0.3                         early exit when an exit's normalized entropy <= tau
//   cta:w=2.0[,l=6][,seed=0][,layers=2-5][,share=head|layer]
//                                        Compressed Token Attention (attention/cta.h) as the
//                                        attention of all layers or of the listed ones (0-based,
//                                        ranges a-b, separated by '/'); clustering per head (the
//                                        default) or once per layer; composes with the others
//   blockskim:threshold=0.5[,layers=0-4][,at=next|ffn]
//                                        Block-Skim (policies/block_skim.h): context blocks whose
//                                        predictor gives P(keep) < threshold are skimmed; needs the
//                                        predictors in <model>/blockskim/ (tools/train_qa.py);
//                                        layers default to all but the last, at to next
// joined with '+' to compose, e.g. "ltp:final=0.02+spatten:heads=0.75".
// tokens/heads: keep ratio reached at the last layer, linearly from layer `start` (default 1).
// at=ffn drops tokens before the current layer's FFN (default; saves that FFN); at=next drops them
// from the next layer on, as the SpAtten and LTP papers describe.
#include <memory>
#include <string>

#include "model/exit_heads.h"
#include "model/model_config.h"
#include "policies/block_skim.h"
#include "policies/layer_policy.h"

namespace sieve {

// Throws sieve::Error on an unknown policy or key, a ratio outside [0, 1], a list of the wrong length.
// `exits` is needed only by "exit" (the model's exit classifiers), `block_skim` only by
// "blockskim" (its predictors); both must outlive the policy.
std::unique_ptr<PolicyChain> parse_policy_spec(const std::string& spec, const ModelConfig& config,
                                               const ExitHeads* exits = nullptr, const BlockSkimModules* block_skim = nullptr);

extern const char* const kPolicySpecHelp;

class GenerationPolicyChain;  // policies/generation_policy.h
// Generation-stage policies for decoders (grammar in policies/generation_policy.h):
//   dense | kv_prune:keep=R[,recent=N] | value_prune:k=K[,renorm=0|1] | progressive:msb=M,lsb=L,threshold=T
// composed with '+'. Throws sieve::Error on an unknown name or option, a value out of range, a repeat.
std::unique_ptr<GenerationPolicyChain> parse_generation_spec(const std::string& spec);
extern const char* const kGenerationSpecHelp;

}  // namespace sieve
