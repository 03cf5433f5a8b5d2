#include "auth/dkim/message_signer.h"

#include "auth/dkim/author.h"
#include "auth/dkim/signature.h"

namespace stampd::auth {

const char* to_string(NotSigned reason) noexcept {
  switch (reason) {
    case NotSigned::NoRule:
      return "no-rule";
    case NotSigned::NoFrom:
      return "no-from";
    case NotSigned::SeveralFrom:
      return "several-from";
    case NotSigned::BadFrom:
      return "bad-from";
    case NotSigned::MalformedHeader:
      return "malformed-header";
    case NotSigned::KeyUnavailable:
      return "key-unavailable";
    case NotSigned::SigningError:
      return "signing-error";
  }
  return "unknown";
}

void MessageSigner::skip(NotSigned reason, std::string detail) {
  outcome_.not_signed = reason;
  outcome_.detail = std::move(detail);
  outcome_.signatures.clear();
}

void MessageSigner::header(std::string_view header_block, std::int64_t now) {
  header_seen_ = true;
  auto block = HeaderBlock::parse(std::string(header_block));
  if (!block) return skip(NotSigned::MalformedHeader, "malformed header: " + block.error().detail);
  block_ = std::move(*block);
  auto from = author_address(block_);
  if (!from) {
    const std::size_t froms = block_.count("from");
    const NotSigned reason = froms == 0  ? NotSigned::NoFrom
                             : froms > 1 ? NotSigned::SeveralFrom
                                         : NotSigned::BadFrom;
    return skip(reason, from.error().detail);
  }
  outcome_.from = *from;
  selection_ = keys_->select(*from, now);
  if (!selection_) {
    return skip(NotSigned::NoRule, "no signing rule for the From domain " + from->domain);
  }
  outcome_.rule = selection_->rule;
  if (selection_->error) return skip(NotSigned::KeyUnavailable, selection_->error->detail);
  hashes_.add(settings_->options.canonicalization.body);
  // An ARC-Message-Signature is relaxed: its body hash comes from the same pass.
  if (selection_->arc_key != nullptr) hashes_.add(Canonicalization::Relaxed);
}

void MessageSigner::body(std::string_view chunk) {
  if (!hashes_.empty()) hashes_.update(chunk);
}

SigningOutcome MessageSigner::finish(std::int64_t timestamp) {
  if (!header_seen_) skip(NotSigned::MalformedHeader, "no header block");
  if (outcome_.not_signed || hashes_.empty()) return std::move(outcome_);
  hashes_.finish();
  const Sha256Digest body_hash = *hashes_.digest(settings_->options.canonicalization.body);
  SignOptions options = settings_->options;
  options.timestamp = timestamp;
  options.expiration.reset();
  if (settings_->signature_lifetime.count() > 0) {
    options.expiration = timestamp + settings_->signature_lifetime.count();
  }
  for (const SigningKeys::Key* key : selection_->keys) {
    // A rule's i= goes only on the signatures whose d= covers it: a relay
    // domain's key next to ours signs without one (signing_rules.h).
    options.identity.reset();
    if (selection_->identity && identity_within(*selection_->identity, key->signing_key->domain)) {
      options.identity = selection_->identity;
    }
    auto field = sign_header_block(block_, body_hash, *key->signing_key, options);
    if (!field) {
      skip(NotSigned::SigningError, key->spec.name + ": " + field.error().message());
      break;
    }
    outcome_.signatures.push_back({std::move(*field), key});
  }
  return std::move(outcome_);
}

}  // namespace stampd::auth
