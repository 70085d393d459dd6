#pragma once
// Unicode helpers for the BERT tokenizer: strict UTF-8 decoding, and the character classes and
// mappings that Hugging Face's BertNormalizer / BertPreTokenizer apply, reproduced code point for
// code point (tokenizers 0.19 classifies with older Unicode tables than utf8proc; see the .cpp).
#include <string>
#include <string_view>

namespace sieve::unicode {

// Decodes UTF-8 into code points. Anything the standard calls ill-formed (a stray continuation
// byte, a truncated sequence, an overlong form, a surrogate, a value past U+10FFFF) throws
// Error("<what>: invalid UTF-8 at byte N (<reason>)"), N counted from 0.
std::u32string decode_utf8(std::string_view text, std::string_view what);

// Appends the UTF-8 encoding of a valid code point (not a surrogate, at most U+10FFFF).
void append_utf8(char32_t code_point, std::string& out);

// True for the bytes 0x80-0xBF that continue a multi-byte UTF-8 sequence.
inline bool is_utf8_continuation_byte(char byte) { return (static_cast<unsigned char>(byte) & 0xC0) == 0x80; }

bool is_whitespace(char32_t c);       // \t \n \r and Unicode White_Space
bool is_control(char32_t c);          // categories Cc Cf Co Cs, except \t \n \r
bool is_punctuation(char32_t c);      // ASCII symbols !../:..@[..`{..~ and Unicode categories P*
bool is_cjk_ideograph(char32_t c);    // the CJK Unified / Compatibility Ideograph blocks
bool is_nonspacing_mark(char32_t c);  // category Mn

// Appends the canonical decomposition (NFD) of text: each character decomposed, then runs of
// combining marks put in canonical order.
void append_nfd(std::u32string_view text, std::u32string& out);

// Appends the full lowercase mapping of c, as Rust's char::to_lowercase (one or two code points).
void append_lowercase(char32_t c, std::u32string& out);

}  // namespace sieve::unicode
