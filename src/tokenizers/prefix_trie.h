#pragma once
// PrefixTrie: finds the longest dictionary entry that starts a text in one walk along the text,
// at most as many steps as the longest entry has characters. Trying every candidate end and
// hashing each substring instead costs length^2 per position, which a vocabulary with one very
// long entry turns into minutes on a long word. WordPiece's greedy longest match and the
// added-token scan both use it (bytes and code points respectively).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace sieve {

template <class Char>
class PrefixTrie {
 public:
  struct Match {
    size_t length = 0;   // characters of the text the entry covers; 0: no entry matched
    int32_t value = -1;
  };

  // Adds `key` (non-empty) with `value`; an existing entry keeps its value unless `replace`.
  void insert(std::basic_string_view<Char> key, int32_t value, bool replace = true) {
    uint32_t node = 0;
    for (const Char c : key) {
      const auto [edge, added] = children_.try_emplace(edge_key(node, c), static_cast<uint32_t>(values_.size()));
      if (added) values_.push_back(-1);
      node = edge->second;
    }
    if (replace || values_[node] < 0) values_[node] = value;
  }

  // The longest entry that is a prefix of `text` and whose end satisfies at_boundary(end).
  template <class Boundary>
  Match longest_prefix(std::basic_string_view<Char> text, Boundary at_boundary) const {
    Match best;
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      const auto edge = children_.find(edge_key(node, text[i]));
      if (edge == children_.end()) break;
      node = edge->second;
      if (values_[node] >= 0 && at_boundary(i + 1)) best = {i + 1, values_[node]};
    }
    return best;
  }

 private:
  static uint64_t edge_key(uint32_t node, Char c) {
    return (static_cast<uint64_t>(node) << 32) | static_cast<std::make_unsigned_t<Char>>(c);
  }

  std::unordered_map<uint64_t, uint32_t> children_;  // (node, character) -> child node
  std::vector<int32_t> values_ = {-1};               // per node; node 0 is the root, -1: no entry ends here
};

}  // namespace sieve
