// dkim_verifier.h: verifies every DKIM-Signature of a message (RFC 6376 §6,
// RFC 8463), one result per signature. Keys come from DNS through
// net::Resolver, or from a key given by the caller (offline). Pure apart
// from the resolver: the time is given, nothing is logged.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/keys.h"
#include "auth/dkim/message_splitter.h"
#include "net/resolver.h"

namespace stampd::auth {

// VerifyStatus follows RFC 8601 §2.7.1:
//   Pass       the signature verified;
//   Fail       it did not (body hash mismatch, signature mismatch, key
//              revoked, signature expired, t= in the future);
//   Neutral    a failure under a key in testing mode (t=y, §3.6.1: treat as
//              unsigned);
//   TempError  the key could not be fetched now (DNS SERVFAIL, timeout);
//   PermError  the signature cannot be checked (malformed signature or key
//              record, no key record, unsupported algorithm, key/algorithm
//              mismatch, key too small, l= longer than the body).
enum class VerifyStatus { Pass, Fail, Neutral, TempError, PermError };
const char* to_string(VerifyStatus status) noexcept;

// SignatureResult is the verdict on one DKIM-Signature field.
struct SignatureResult {
  VerifyStatus status = VerifyStatus::PermError;
  std::string reason;           // for people: "body hash mismatch", "key revoked", ...
  std::string domain;           // d= (empty if the field did not parse)
  std::string selector;         // s=
  std::string algorithm;        // a=
  std::string identity;         // i=
  std::size_t field_index = 0;  // position of the field in the header block
};

struct VerifyOptions {
  std::int64_t now = 0;            // seconds since the epoch, for t= and x= (§3.5)
  int min_rsa_bits = kMinRsaBits;  // RFC 8301 §3.2: below 1024 never passes
  // A t= further than this ahead of now fails (§3.5 allows it); the slack
  // absorbs clock drift between signer and verifier, as OpenDKIM's ClockDrift.
  std::int64_t max_clock_skew = 300;
};

// KeyLookup is the outcome of finding the key for (domain, selector): a
// record, or the status and reason to report instead.
struct KeyLookup {
  std::optional<KeyRecord> record;
  VerifyStatus failure = VerifyStatus::PermError;  // used when record is empty
  std::string reason;
};

using KeyLookupFunction =
    std::function<KeyLookup(const std::string& domain, const std::string& selector)>;

// key_record_name is "selector._domainkey.domain" (§3.6.2.1).
std::string key_record_name(std::string_view selector, std::string_view domain);

// key_lookup_from_dns turns a TXT answer into a KeyLookup: NXDOMAIN/NODATA
// is PermError "no key record" (§6.1.2), SERVFAIL/timeout TempError; of
// several records the first that parses is used (§6.1.2 leaves the choice).
KeyLookup key_lookup_from_dns(const net::DnsAnswer& answer);

// BodyDigest is a body hash with the length of the canonical body it covered.
struct BodyDigest {
  Sha256Digest digest;
  std::uint64_t canonical_length = 0;
};

struct ParsedSignature;

// check_signature verifies one parsed signature (a DKIM-Signature, or an
// ARC-Message-Signature, which RFC 8617 §4.1.2 verifies the same way) over
// block, body being the hash of the body under its c= and l=. field_index is
// left zero.
SignatureResult check_signature(const HeaderBlock& block, const ParsedSignature& sig,
                                const BodyDigest& body, const KeyLookupFunction& lookup,
                                const VerifyOptions& options);

// unusable_key tells why key cannot check a signature of type (named
// algorithm): revoked, of another type, or an RSA key under
// options.min_rsa_bits; nullopt when it can.
std::optional<std::pair<VerifyStatus, std::string>> unusable_key(const KeyRecord& key, KeyType type,
                                                                 std::string_view algorithm,
                                                                 const VerifyOptions& options);

// verify_message verifies every DKIM-Signature in message (CRLF text,
// header and body) fetching keys with resolver, which the caller owns and
// keeps alive until the coroutine finishes. An unparsable header section
// yields a single PermError result; no signature yields an empty vector.
boost::asio::awaitable<std::vector<SignatureResult>> verify_message(std::string message,
                                                                    net::Resolver& resolver,
                                                                    VerifyOptions options);

// verify_message_with_key verifies offline, using key for every signature.
std::vector<SignatureResult> verify_message_with_key(std::string_view message, const KeyRecord& key,
                                                     const VerifyOptions& options);

// verify_message_with_lookup is the synchronous core: keys come from lookup.
std::vector<SignatureResult> verify_message_with_lookup(std::string_view message,
                                                        const KeyLookupFunction& lookup,
                                                        const VerifyOptions& options);

// MessageVerifier verifies a message that arrives in chunks split anywhere
// (a spool read back piece by piece), in one pass: once the header section
// is complete, each body hash the signatures need is computed as the body
// streams through; nothing of the body is kept. finish gives the same
// results as verify_message_with_lookup on the whole text.
class MessageVerifier {
 public:
  // FieldRange limits verification to the DKIM-Signature fields at header
  // positions [first, first + count) (say, the ones a signer just added).
  struct FieldRange {
    std::size_t first = 0;
    std::size_t count = 0;
  };

  explicit MessageVerifier(VerifyOptions options, std::optional<FieldRange> only = std::nullopt,
                           std::size_t max_header_bytes = HeaderSplitter::kDefaultMaxHeaderBytes);

  // update feeds the next bytes of the message (CRLF text, not dot-stuffed).
  void update(std::string_view chunk);
  // finish ends the message and verifies, with keys from lookup; call once.
  std::vector<SignatureResult> finish(const KeyLookupFunction& lookup);

 private:
  void header_complete();
  std::vector<std::size_t> signature_fields() const;

  VerifyOptions options_;
  std::optional<FieldRange> only_;
  HeaderSplitter splitter_;
  std::optional<HeaderBlock> block_;
  std::string header_error_;
  struct Hasher {
    Canonicalization canonicalization;
    std::optional<std::uint64_t> limit;
    BodyHasher hasher;
  };
  std::vector<Hasher> hashers_;
};

}  // namespace stampd::auth
