#include "tokenizers/unicode_text.h"

#include <utf8proc.h>

#include <algorithm>
#include <iterator>
#include <span>

#include "util/error.h"

namespace sieve::unicode {
namespace {

struct CodePointRange {
  char32_t first;
  char32_t last;
};

// Hugging Face tokenizers 0.19 takes categories (P*, Mn, Cc/Cf/Co) from the `unicode_categories`
// crate, whose tables are frozen at about Unicode 8, while utf8proc follows Unicode 15. To give
// the same tokens we correct utf8proc by the code points where the two disagree; the lists were
// found by running every code point through both. Characters assigned after Unicode 8 that HF
// does not treat as punctuation / non-spacing marks / format controls:
constexpr CodePointRange kNewerPunctuation[] = {
    {0x61D, 0x61D}, {0x9FD, 0x9FD}, {0xA76, 0xA76}, {0xC77, 0xC77}, {0xC84, 0xC84},
    {0x1B7D, 0x1B7E}, {0x2E43, 0x2E4F}, {0x2E52, 0x2E5D}, {0x10EAD, 0x10EAD}, {0x10F55, 0x10F59},
    {0x10F86, 0x10F89}, {0x1144B, 0x1144F}, {0x1145A, 0x1145B}, {0x1145D, 0x1145D},
    {0x11660, 0x1166C}, {0x116B9, 0x116B9}, {0x1183B, 0x1183B}, {0x11944, 0x11946},
    {0x119E2, 0x119E2}, {0x11A3F, 0x11A46}, {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2},
    {0x11B00, 0x11B09}, {0x11C41, 0x11C45}, {0x11C70, 0x11C71}, {0x11EF7, 0x11EF8},
    {0x11F43, 0x11F4F}, {0x11FFF, 0x11FFF}, {0x12FF1, 0x12FF2}, {0x16E97, 0x16E9A},
    {0x16FE2, 0x16FE2}, {0x1E95E, 0x1E95F},
};
constexpr CodePointRange kNewerNonspacingMarks[] = {
    {0x7FD, 0x7FD}, {0x898, 0x89F}, {0x8CA, 0x8E1}, {0x9FE, 0x9FE}, {0xAFA, 0xAFF},
    {0xB55, 0xB55}, {0xC04, 0xC04}, {0xC3C, 0xC3C}, {0xD00, 0xD00}, {0xD3B, 0xD3C},
    {0xD81, 0xD81}, {0xEBA, 0xEBA}, {0xECE, 0xECE}, {0x180F, 0x180F}, {0x1885, 0x1886},
    {0x1ABF, 0x1ACE}, {0x1DF6, 0x1DFB}, {0xA82C, 0xA82C}, {0xA8C5, 0xA8C5}, {0xA8FF, 0xA8FF},
    {0xA9BD, 0xA9BD}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF},
    {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x11073, 0x11074},
    {0x110C2, 0x110C2}, {0x111C9, 0x111C9}, {0x111CF, 0x111CF}, {0x1123E, 0x1123E},
    {0x11241, 0x11241}, {0x1133B, 0x1133B}, {0x11438, 0x1143F}, {0x11442, 0x11444},
    {0x11446, 0x11446}, {0x1145E, 0x1145E}, {0x1182F, 0x11837}, {0x11839, 0x1183A},
    {0x1193B, 0x1193C}, {0x1193E, 0x1193E}, {0x11943, 0x11943}, {0x119D4, 0x119D7},
    {0x119DA, 0x119DB}, {0x119E0, 0x119E0}, {0x11A01, 0x11A0A}, {0x11A33, 0x11A38},
    {0x11A3B, 0x11A3E}, {0x11A47, 0x11A47}, {0x11A51, 0x11A56}, {0x11A59, 0x11A5B},
    {0x11A8A, 0x11A96}, {0x11A98, 0x11A99}, {0x11C30, 0x11C36}, {0x11C38, 0x11C3D},
    {0x11C3F, 0x11C3F}, {0x11C92, 0x11CA7}, {0x11CAA, 0x11CB0}, {0x11CB2, 0x11CB3},
    {0x11CB5, 0x11CB6}, {0x11D31, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D},
    {0x11D3F, 0x11D45}, {0x11D47, 0x11D47}, {0x11D90, 0x11D91}, {0x11D95, 0x11D95},
    {0x11D97, 0x11D97}, {0x11EF3, 0x11EF4}, {0x11F00, 0x11F01}, {0x11F36, 0x11F3A},
    {0x11F40, 0x11F40}, {0x11F42, 0x11F42}, {0x13440, 0x13440}, {0x13447, 0x13455},
    {0x16F4F, 0x16F4F}, {0x16FE4, 0x16FE4}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46},
    {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024},
    {0x1E026, 0x1E02A}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE},
    {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF}, {0x1E944, 0x1E94A},
};
constexpr CodePointRange kNewerFormatControls[] = {
    {0x890, 0x891}, {0x8E2, 0x8E2}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},
};
// ...and the few the other way round: HF still has their old category.
constexpr char32_t kFormerPunctuation[] = {0x166D, 0x111C9};  // now So and Mn
constexpr char32_t kFormerNonspacingMark = 0x1734;            // now Mc
// U+11938 gained a canonical decomposition in Unicode 13, after HF's normalization tables.
constexpr char32_t kNewlyDecomposable = 0x11938;

bool in_ranges(std::span<const CodePointRange> ranges, char32_t c) {
  // Ranges are sorted and disjoint: find the first that ends at or after c.
  const auto it = std::ranges::lower_bound(ranges, c, {}, &CodePointRange::last);
  return it != ranges.end() && it->first <= c;
}

utf8proc_category_t category(char32_t c) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(c)));
}

[[noreturn]] void throw_invalid_utf8(std::string_view what, size_t byte, const char* reason) {
  throw Error(std::string(what) + ": invalid UTF-8 at byte " + std::to_string(byte) + " (" + reason + ")");
}

}  // namespace

std::u32string decode_utf8(std::string_view text, std::string_view what) {
  std::u32string code_points;
  code_points.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead < 0x80) {
      code_points.push_back(lead);
      ++pos;
      continue;
    }
    size_t length = 0;
    char32_t value = 0;
    char32_t smallest = 0;  // below this the same value has a shorter encoding
    if (lead >= 0xC0 && lead <= 0xDF) {
      length = 2, value = lead & 0x1F, smallest = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3, value = lead & 0x0F, smallest = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF7) {
      length = 4, value = lead & 0x07, smallest = 0x10000;
    } else if (lead <= 0xBF) {
      throw_invalid_utf8(what, pos, "continuation byte without a lead byte");
    } else {
      throw_invalid_utf8(what, pos, "byte 0xF8-0xFF never occurs in UTF-8");
    }
    for (size_t i = 1; i < length; ++i) {
      if (pos + i >= text.size() || !is_utf8_continuation_byte(text[pos + i])) {
        throw_invalid_utf8(what, pos, "truncated multi-byte sequence");
      }
      value = (value << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
    }
    if (value < smallest) throw_invalid_utf8(what, pos, "overlong encoding");
    if (value >= 0xD800 && value <= 0xDFFF) throw_invalid_utf8(what, pos, "UTF-16 surrogate");
    if (value > 0x10FFFF) throw_invalid_utf8(what, pos, "code point beyond U+10FFFF");
    code_points.push_back(value);
    pos += length;
  }
  return code_points;
}

void append_utf8(char32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

bool is_whitespace(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r' || c == ' ') return true;
  const auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;  // BERT counts these as whitespace
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    case UTF8PROC_CATEGORY_CF:
      return !in_ranges(kNewerFormatControls, c);
    default:
      return false;
  }
}

bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) {
    return true;
  }
  if (std::ranges::find(kFormerPunctuation, c) != std::end(kFormerPunctuation)) return true;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return !in_ranges(kNewerPunctuation, c);
    default:
      return false;
  }
}

bool is_cjk_ideograph(char32_t c) {
  // HF's list (0x2B920 rather than 0x2B820 is theirs too: Extension E's first 256 are left out).
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_nonspacing_mark(char32_t c) {
  if (c == kFormerNonspacingMark) return true;
  return category(c) == UTF8PROC_CATEGORY_MN && !in_ranges(kNewerNonspacingMarks, c);
}

void append_nfd(std::u32string_view text, std::u32string& out) {
  const size_t start = out.size();
  for (const char32_t c : text) {
    // A canonical decomposition is at most 4 code points; the buffer leaves room to spare.
    utf8proc_int32_t decomposed[16];
    int unused_boundclass = 0;
    const utf8proc_ssize_t count =
        c == kNewlyDecomposable
            ? 0
            : utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), decomposed, 16,
                                      UTF8PROC_DECOMPOSE, &unused_boundclass);
    if (count <= 0 || count > 16) {
      out.push_back(c);
      continue;
    }
    for (utf8proc_ssize_t i = 0; i < count; ++i) out.push_back(static_cast<char32_t>(decomposed[i]));
  }
  // Canonical ordering: within each run of marks (combining class > 0) the marks are put in
  // ascending class order, keeping the text's order among equal classes; starters (class 0) never
  // move. A stable sort per run is O(n log n) even for a hostile run of 200k marks, where moving
  // each mark back one swap at a time was quadratic (58 s).
  const auto combining_class = [](char32_t c) {
    return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
  };
  for (size_t run_start = start; run_start < out.size();) {
    if (combining_class(out[run_start]) == 0) {
      ++run_start;
      continue;
    }
    size_t run_end = run_start + 1;
    while (run_end < out.size() && combining_class(out[run_end]) != 0) ++run_end;
    if (run_end - run_start > 1) {
      std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(run_start), out.begin() + static_cast<std::ptrdiff_t>(run_end),
                       [&](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    }
    run_start = run_end;
  }
}

void append_lowercase(char32_t c, std::u32string& out) {
  // U+0130 (capital I with dot) is the one character whose unconditional lowercase is two
  // code points; utf8proc only knows simple mappings.
  if (c == 0x130) {
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

}  // namespace sieve::unicode
