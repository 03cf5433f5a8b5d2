// dkim_canonicalization.h: the "simple" and "relaxed" algorithms of RFC 6376
// §3.4 for header fields, and parsing of the c= tag. The incremental body
// canonicalizer is in dkim_body_canonicalizer.h. Pure string work.
#pragma once

#include <string>
#include <string_view>

#include "net/result.h"

namespace stampd::auth {

enum class Canonicalization { Simple, Relaxed };

// CanonicalizationPair is the c= tag: header/body. The default is what RFC
// 6376 §3.5 says an absent c= means.
struct CanonicalizationPair {
  Canonicalization header = Canonicalization::Simple;
  Canonicalization body = Canonicalization::Simple;
  bool operator==(const CanonicalizationPair&) const = default;
};

const char* to_string(Canonicalization c) noexcept;
// to_string gives the c= value, e.g. "relaxed/simple".
std::string to_string(CanonicalizationPair c);

// parse_canonicalization parses a c= value; "relaxed" alone means
// relaxed/simple (RFC 6376 §3.5). Case-insensitive.
net::Result<CanonicalizationPair> parse_canonicalization(std::string_view text);

// append_canonical_header appends the canonical form of one raw header field
// (name, colon, value, folds as in the message) to out. The trailing CRLF is
// kept if raw_field has one and omitted otherwise, which is what the
// DKIM-Signature field itself needs (RFC 6376 §3.7).
// simple (§3.4.1): unchanged. relaxed (§3.4.2): name lower-cased, folds
// unfolded, WSP runs reduced to one SP, WSP at the value's ends and around
// the colon removed.
void append_canonical_header(Canonicalization c, std::string_view raw_field, std::string& out);

// canonicalize_header returns the canonical form of one raw field.
std::string canonicalize_header(Canonicalization c, std::string_view raw_field);

}  // namespace stampd::auth
