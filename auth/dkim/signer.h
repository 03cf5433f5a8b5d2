// dkim_signer.h: builds the DKIM-Signature field (RFC 6376 §3.5, §5.4-5.6)
// from a parsed header block and a finished body hash; rsa-sha256 and
// ed25519-sha256 (RFC 8463). Pure: the time (t=) is given, nothing is logged.
//
// Several signatures per message: the caller feeds the body once into a
// BodyHashSet holding the body canonicalizations its keys use, then calls
// sign_header_block once per key with that canonicalization's digest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/dkim/canonicalization.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/keys.h"
#include "auth/dkim/sha256.h"
#include "net/result.h"

namespace stampd::auth {

// SigningKey is a key as a signature names it: d=, s= and the private key.
struct SigningKey {
  std::string domain;    // d=
  std::string selector;  // s=
  std::shared_ptr<const PrivateKey> key;
};

// default_signed_headers is RFC 6376 §5.4.1's list plus the MIME, List-*
// (RFC 2369, RFC 8058) and Resent-* fields whose change alters what a reader
// sees; only the ones present are signed.
std::vector<std::string> default_signed_headers();
// default_oversigned_headers lists fields an attacker could add a second
// copy of to change what a reader sees; each one present is listed once more
// in h= (RFC 6376 §8.15).
std::vector<std::string> default_oversigned_headers();

// HeaderPolicy chooses h=. Names are case-insensitive.
struct HeaderPolicy {
  std::vector<std::string> sign = default_signed_headers();
  std::vector<std::string> oversign = default_oversigned_headers();
  // oversign_absent also lists oversign names the message lacks (OpenDKIM's
  // OversignHeaders does), so adding one later breaks the signature. Off by
  // default: an MTA after us may legitimately add a missing Date or
  // Message-ID, which would then break our signature.
  bool oversign_absent = false;
};

// select_signed_headers returns h= for block under policy, lower-cased: every
// sign name as many times as it is present (in policy order), then one more
// of each present oversign name. From is always signed and always oversigned,
// whatever the lists say (RFC 6376 §5.4: From MUST be signed).
std::vector<std::string> select_signed_headers(const HeaderBlock& block,
                                               const HeaderPolicy& policy);

enum class HeaderListStyle {
  Compact,  // h=from:to:subject
  Spaced,   // h=from : to : subject (as RFC 8463 Appendix A prints it)
};

struct SignOptions {
  CanonicalizationPair canonicalization{Canonicalization::Relaxed, Canonicalization::Relaxed};
  std::int64_t timestamp = 0;              // t=, seconds since the epoch
  std::optional<std::int64_t> expiration;  // x=, absolute; must be after t=
  std::optional<std::string> identity;     // i=; its domain must be d= or below
  HeaderPolicy headers;
  // explicit_headers, when non-empty, is h= exactly (no policy, no From
  // rule): for reproducing published vectors and for callers with their own
  // policy. It must include "from" (§5.4).
  std::vector<std::string> explicit_headers;
  HeaderListStyle header_list_style = HeaderListStyle::Compact;
  bool query_method = false;  // emit q=dns/txt (the default anyway, §3.5)
};

// kMaxSignatureLineLength is the fold limit for the field's lines (RFC 5322
// §2.1.1 SHOULD), CRLF not counted.
inline constexpr std::size_t kMaxSignatureLineLength = 78;

// sign_header_block returns the complete "DKIM-Signature: ..." field, CRLF
// terminated, folded to at most 78 columns, ready to be put on top of the
// message. body_hash must come from the body canonicalization in options.
// Tags in order v a c d [i] [q] s t [x] h bh b; never l= (§8.2). Errors:
// BadInput for invalid options (empty or malformed d=/s=, i= outside d=, x=
// not after t=, explicit h= without from), Crypto when signing fails.
net::Result<std::string> sign_header_block(const HeaderBlock& headers,
                                           const Sha256Digest& body_hash, const SigningKey& key,
                                           const SignOptions& options);

}  // namespace stampd::auth
