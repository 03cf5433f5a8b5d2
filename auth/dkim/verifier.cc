#include "auth/dkim/verifier.h"

#include <algorithm>
#include <map>
#include <utility>

#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/header_hash.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/signature.h"
#include "auth/mail_address.h"

namespace stampd::auth {
namespace {

// BodyHashes computes each (canonicalization, l=) body hash once per message.
class BodyHashes {
 public:
  explicit BodyHashes(std::string_view body) : body_(body) {}
  // put stores a hash computed elsewhere (while the body streamed).
  void put(Canonicalization c, std::optional<std::uint64_t> limit, BodyDigest result) {
    cache_.insert_or_assign(std::make_pair(static_cast<int>(c), limit), result);
  }
  const BodyDigest& get(Canonicalization c, std::optional<std::uint64_t> limit) {
    const auto key = std::make_pair(static_cast<int>(c), limit);
    auto it = cache_.find(key);
    if (it == cache_.end()) {
      BodyHasher h(c, limit);
      h.update(body_);
      const Sha256Digest d = h.finish();
      it = cache_.emplace(key, BodyDigest{d, h.canonical_length()}).first;
    }
    return it->second;
  }

 private:
  std::string_view body_;
  std::map<std::pair<int, std::optional<std::uint64_t>>, BodyDigest> cache_;
};

std::string domain_of(std::string_view identity) {
  const auto at = identity.rfind('@');
  return ascii_lower(at == std::string_view::npos ? identity : identity.substr(at + 1));
}

SignatureResult verify_one(const HeaderBlock& block, std::size_t index, BodyHashes& bodies,
                           const KeyLookupFunction& lookup, const VerifyOptions& options) {
  auto parsed = parse_signature(block.field(index).raw);
  if (!parsed) {
    SignatureResult r;
    r.field_index = index;
    r.status = VerifyStatus::PermError;
    r.reason = "malformed signature: " + parsed.error().detail;
    return r;
  }
  const ParsedSignature& sig = *parsed;
  SignatureResult r = check_signature(
      block, sig, bodies.get(sig.canonicalization.body, sig.body_length), lookup, options);
  r.field_index = index;
  return r;
}

std::vector<std::pair<std::string, std::string>> wanted_keys(const HeaderBlock& block) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::size_t i : block.find_all("DKIM-Signature")) {
    auto sig = parse_signature(block.field(i).raw);
    if (!sig) continue;
    std::pair<std::string, std::string> k{sig->domain, sig->selector};
    bool have = false;
    for (const auto& o : out) have = have || o == k;
    if (!have) out.push_back(std::move(k));
  }
  return out;
}

}  // namespace

const char* to_string(VerifyStatus status) noexcept {
  switch (status) {
    case VerifyStatus::Pass:
      return "pass";
    case VerifyStatus::Fail:
      return "fail";
    case VerifyStatus::Neutral:
      return "neutral";
    case VerifyStatus::TempError:
      return "temperror";
    case VerifyStatus::PermError:
      return "permerror";
  }
  return "permerror";
}

SignatureResult check_signature(const HeaderBlock& block, const ParsedSignature& sig,
                                const BodyDigest& body, const KeyLookupFunction& lookup,
                                const VerifyOptions& options) {
  SignatureResult r;
  r.domain = sig.domain;
  r.selector = sig.selector;
  r.algorithm = sig.algorithm;
  r.identity = sig.identity;
  auto done = [&](VerifyStatus status, std::string reason) {
    r.status = status;
    r.reason = std::move(reason);
    return r;
  };

  // §6.1.1: an expired signature fails without a key lookup.
  if (sig.expiration && *sig.expiration < options.now)
    return done(VerifyStatus::Fail, "signature expired");
  if (sig.timestamp && *sig.timestamp > options.now + options.max_clock_skew)
    return done(VerifyStatus::Fail, "signature timestamp is in the future");

  KeyLookup found = lookup(sig.domain, sig.selector);
  if (!found.record) return done(found.failure, found.reason);
  const KeyRecord& key = *found.record;

  auto result = [&]() -> std::pair<VerifyStatus, std::string> {
    using S = VerifyStatus;
    if (auto unusable = unusable_key(key, sig.key_type, sig.algorithm, options)) {
      return {unusable->first, std::move(unusable->second)};
    }
    // t=s: the i= domain must be d= exactly, not a subdomain (§3.6.1).
    if (key.strict && domain_of(sig.identity) != ascii_lower(sig.domain)) {
      return {S::PermError, "i= is a subdomain of d= but the key has t=s"};
    }
    if (sig.body_length && *sig.body_length > body.canonical_length) {
      return {S::PermError, "l= is longer than the body"};
    }
    if (std::string_view(reinterpret_cast<const char*>(body.digest.data()), body.digest.size()) !=
        sig.body_hash) {
      return {S::Fail, "body hash mismatch"};
    }
    const Sha256Digest hh =
        header_hash(block, sig.headers, sig.canonicalization.header, sig.field_without_b);
    if (!key.key->verify_digest(hh, sig.signature)) return {S::Fail, "signature mismatch"};
    return {S::Pass, "good signature"};
  }();
  if (key.testing && result.first != VerifyStatus::Pass) {
    return done(VerifyStatus::Neutral, result.second + " (key in testing mode, t=y)");
  }
  return done(result.first, std::move(result.second));
}

std::optional<std::pair<VerifyStatus, std::string>> unusable_key(const KeyRecord& key, KeyType type,
                                                                 std::string_view algorithm,
                                                                 const VerifyOptions& options) {
  using S = VerifyStatus;
  if (key.revoked()) return std::make_pair(S::Fail, std::string("key revoked"));
  if (key.type != type || key.key->type() != type) {
    return std::make_pair(S::PermError, std::string("key type ") + key_type_name(key.key->type()) +
                                            " does not match a=" + std::string(algorithm));
  }
  if (key.type == KeyType::Rsa && key.key->bits() < options.min_rsa_bits) {
    return std::make_pair(S::PermError,
                          "RSA key too small (" + std::to_string(key.key->bits()) + " bits)");
  }
  return std::nullopt;
}

std::string key_record_name(std::string_view selector, std::string_view domain) {
  std::string name(selector);
  name.append("._domainkey.").append(domain);
  return name;
}

KeyLookup key_lookup_from_dns(const net::DnsAnswer& answer) {
  KeyLookup out;
  switch (answer.status) {
    case net::DnsStatus::Ok:
      break;
    case net::DnsStatus::NxDomain:
    case net::DnsStatus::NoData:
      out.failure = VerifyStatus::PermError;
      out.reason = "no key record";
      return out;
    case net::DnsStatus::ServFail:
    case net::DnsStatus::Timeout:
      out.failure = VerifyStatus::TempError;
      out.reason = std::string("key lookup failed: ") + net::to_string(answer.status) +
                   (answer.detail.empty() ? "" : " (" + answer.detail + ")");
      return out;
  }
  if (answer.txt.empty()) {
    out.failure = VerifyStatus::PermError;
    out.reason = "no key record";
    return out;
  }
  std::string first_error;
  for (const std::string& txt : answer.txt) {
    auto rec = parse_key_record(txt);
    if (rec) {
      out.record = std::move(rec).value();
      return out;
    }
    if (first_error.empty()) first_error = rec.error().detail;
  }
  out.failure = VerifyStatus::PermError;
  out.reason = "malformed key record: " + first_error;
  return out;
}

std::vector<SignatureResult> verify_message_with_lookup(std::string_view message,
                                                        const KeyLookupFunction& lookup,
                                                        const VerifyOptions& options) {
  const SplitMessage parts = split_message(message);
  auto block = HeaderBlock::parse(std::string(parts.header));
  if (!block) {
    SignatureResult r;
    r.status = VerifyStatus::PermError;
    r.reason = "malformed header section: " + block.error().detail;
    return {r};
  }
  BodyHashes bodies(parts.body);
  std::vector<SignatureResult> results;
  for (const std::size_t i : block->find_all("DKIM-Signature")) {
    results.push_back(verify_one(*block, i, bodies, lookup, options));
  }
  return results;
}

std::vector<SignatureResult> verify_message_with_key(std::string_view message, const KeyRecord& key,
                                                     const VerifyOptions& options) {
  const KeyLookupFunction lookup = [&key](const std::string&, const std::string&) {
    return KeyLookup{key, VerifyStatus::Pass, {}};
  };
  return verify_message_with_lookup(message, lookup, options);
}

MessageVerifier::MessageVerifier(VerifyOptions options, std::optional<FieldRange> only,
                                 std::size_t max_header_bytes)
    : options_(options), only_(only), splitter_(max_header_bytes) {}

std::vector<std::size_t> MessageVerifier::signature_fields() const {
  std::vector<std::size_t> out = block_->find_all("DKIM-Signature");
  if (only_) {
    std::erase_if(out, [this](std::size_t i) {
      return i < only_->first || i - only_->first >= only_->count;
    });
  }
  return out;
}

void MessageVerifier::header_complete() {
  auto block = HeaderBlock::parse(splitter_.header());
  if (!block) {
    header_error_ = "malformed header section: " + block.error().detail;
    return;
  }
  block_ = std::move(block).value();
  // One hasher per (canonicalization, l=) the signatures ask for.
  for (const std::size_t i : signature_fields()) {
    auto sig = parse_signature(block_->field(i).raw);
    if (!sig) continue;
    const Canonicalization c = sig->canonicalization.body;
    const bool have = std::any_of(hashers_.begin(), hashers_.end(), [&](const Hasher& h) {
      return h.canonicalization == c && h.limit == sig->body_length;
    });
    if (!have) hashers_.push_back({c, sig->body_length, BodyHasher(c, sig->body_length)});
  }
}

void MessageVerifier::update(std::string_view chunk) {
  const bool was_complete = splitter_.header_complete();
  auto body = splitter_.feed(chunk);
  if (!body) {
    if (header_error_.empty()) header_error_ = "malformed header section: " + body.error().detail;
    return;
  }
  if (!was_complete && splitter_.header_complete()) header_complete();
  for (auto& h : hashers_) h.hasher.update(*body);
}

std::vector<SignatureResult> MessageVerifier::finish(const KeyLookupFunction& lookup) {
  if (header_error_.empty() && !splitter_.header_complete()) {
    if (auto done = splitter_.finish(); !done) {
      header_error_ = "malformed header section: " + done.error().detail;
    } else {
      header_complete();  // a message without a body
    }
  }
  if (!header_error_.empty() || !block_) {
    SignatureResult r;
    r.status = VerifyStatus::PermError;
    r.reason = header_error_.empty() ? "malformed header section" : header_error_;
    return {r};
  }
  BodyHashes bodies{std::string_view{}};
  for (auto& h : hashers_) {
    const Sha256Digest digest = h.hasher.finish();
    bodies.put(h.canonicalization, h.limit, BodyDigest{digest, h.hasher.canonical_length()});
  }
  std::vector<SignatureResult> results;
  for (const std::size_t i : signature_fields()) {
    results.push_back(verify_one(*block_, i, bodies, lookup, options_));
  }
  return results;
}

boost::asio::awaitable<std::vector<SignatureResult>> verify_message(std::string message,
                                                                    net::Resolver& resolver,
                                                                    VerifyOptions options) {
  // Fetch every distinct key first (each at most once), then verify
  // synchronously against what was fetched.
  std::map<std::pair<std::string, std::string>, KeyLookup> keys;
  {
    const SplitMessage parts = split_message(message);
    auto block = HeaderBlock::parse(std::string(parts.header));
    if (block) {
      for (auto& want : wanted_keys(*block)) {
        const net::DnsAnswer answer =
            co_await resolver.query(key_record_name(want.second, want.first), net::RrType::Txt);
        keys.emplace(std::move(want), key_lookup_from_dns(answer));
      }
    }
  }
  const KeyLookupFunction lookup = [&keys](const std::string& domain, const std::string& selector) {
    const auto it = keys.find({domain, selector});
    if (it != keys.end()) return it->second;
    return KeyLookup{std::nullopt, VerifyStatus::PermError, "no key record"};
  };
  co_return verify_message_with_lookup(message, lookup, options);
}

}  // namespace stampd::auth
