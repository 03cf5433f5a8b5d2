// dkim_signature.h: parses a DKIM-Signature header field for the verifier
// (RFC 6376 §3.5, §6.1.1). Pure; cryptography is elsewhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/canonicalization.h"
#include "auth/dkim/keys.h"
#include "net/result.h"

namespace stampd::auth {

// ParsedSignature is a syntactically valid DKIM-Signature.
struct ParsedSignature {
  std::string algorithm;  // a=, e.g. "rsa-sha256"
  KeyType key_type = KeyType::Rsa;
  std::string signature;  // b=, decoded
  std::string body_hash;  // bh=, decoded (32 bytes)
  CanonicalizationPair canonicalization;
  std::string domain;                        // d=
  std::string selector;                      // s=
  std::vector<std::string> headers;          // h=, names as written
  std::string identity;                      // i=, or "@" + d= when absent (§3.5)
  int instance = 0;                          // i= of an ARC-Message-Signature
  std::optional<std::uint64_t> body_length;  // l=
  std::optional<std::int64_t> timestamp;     // t=
  std::optional<std::int64_t> expiration;    // x=
  // field_without_b is the raw field with the b= value (and the whitespace
  // around it) removed: what goes into the header hash (§3.7).
  std::string field_without_b;
};

// SignatureField is the kind of field parsed: a DKIM-Signature, or an
// ARC-Message-Signature (RFC 8617 §4.1.2: DKIM's syntax and semantics, but no
// v=, and i= is the instance, 1 to 50).
enum class SignatureField { Dkim, ArcMessage };

// kMaxArcInstance is the highest ARC instance (RFC 8617 §4.2.1).
inline constexpr int kMaxArcInstance = 50;

// parse_arc_instance reads an ARC i= value: 1 to kMaxArcInstance, digits only.
std::optional<int> parse_arc_instance(std::string_view value);

// parse_signature parses a raw DKIM-Signature field (name, colon, value,
// folds, final CRLF). Errors are PERMFAIL conditions of §6.1.1: BadInput for
// bad syntax, a missing required tag (v a b bh d h s), v= other than 1, h=
// without from, i= outside d=, x= before t=, bad base64, a q= without
// dns/txt; Unsupported for an algorithm other than rsa-sha256 and
// ed25519-sha256.
// An ARC-Message-Signature needs i= instead of v=, may list no header or an
// empty name in h= (as the ARC test suite and dkimpy accept; RFC 8617 says
// nothing of From), and must not list ARC-Seal (§4.1.2).
net::Result<ParsedSignature> parse_signature(std::string_view raw_field,
                                             SignatureField kind = SignatureField::Dkim);

// identity_within reports whether an i= identity ("user@host" or "@host")
// names domain or a subdomain of it (RFC 6376 §3.5), ignoring ASCII case.
bool identity_within(std::string_view identity, std::string_view domain) noexcept;

}  // namespace stampd::auth
