// message_signer.h: the one DKIM signing path, used by the proxy's DKIM stage
// (chunk by chunk) and by `stampd sign` (a whole message): the header block
// once, the body as it streams, and at the end the DKIM-Signature fields or
// the reason there are none. No sockets, no log, no clock: the caller passes
// the time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/keyring.h"
#include "auth/dkim/signer.h"
#include "auth/dkim/signing_rules.h"

namespace stampd::auth {

// SignerSettings is what every signature made under one config shares.
struct SignerSettings {
  // options gives the canonicalization and the header policy; its timestamp,
  // expiration and identity are set per message and signature.
  SignOptions options;
  std::chrono::seconds signature_lifetime{0};  // x= = t= + this; zero: no x=
};

// NotSigned is why a message leaves without our signatures.
enum class NotSigned {
  NoRule,           // no rule matches the From address: relay unsigned
  NoFrom,           // no From field: relay unsigned
  SeveralFrom,      // more than one From field: relay unsigned
  BadFrom,          // a From field without exactly one local@domain: relay unsigned
  MalformedHeader,  // the header block does not parse, or never came: relay unsigned
  KeyUnavailable,   // a rule matched but one of its keys is missing or broken
  SigningError,     // a rule matched but making a signature failed
};
// to_string gives the bounded label of a reason: "no-rule", "no-from",
// "several-from", "bad-from", "malformed-header", "key-unavailable",
// "signing-error".
const char* to_string(NotSigned reason) noexcept;

// SigningOutcome is what signing one message came to.
struct SigningOutcome {
  struct Signature {
    std::string field;                      // "DKIM-Signature: ...", folded, CRLF-terminated
    const SigningKeys::Key* key = nullptr;  // the key that made it
  };
  std::vector<Signature> signatures;    // in the rule's key order; empty unless signed
  std::optional<NotSigned> not_signed;  // set: why there are no signatures
  std::string detail;                   // what went wrong, for a log line
  std::optional<MailAddress> from;      // the From address, when there is exactly one
  // rule is the rule that matched (nullptr when none was chosen); its
  // on_error decides what a KeyUnavailable or SigningError means.
  const SigningRule* rule = nullptr;

  bool is_signed() const noexcept { return !not_signed; }
  // failed tells that a rule matched but could not sign.
  bool failed() const noexcept {
    return not_signed == NotSigned::KeyUnavailable || not_signed == NotSigned::SigningError;
  }
  // fail_closed tells that the message must not be relayed: the rule failed
  // and its on_error is fail-closed.
  bool fail_closed() const noexcept { return failed() && rule->on_error == OnError::FailClosed; }
};

// MessageSigner signs one message: header, then body chunks, then finish.
//
// The rule is picked by the From address (SigningKeys::select); all the
// rule's keys share one body hash (the config's body canonicalization), so
// the body is read once whatever the number of signatures. Only the header
// block is held in memory.
class MessageSigner {
 public:
  MessageSigner(std::shared_ptr<const SigningKeys> keys,
                std::shared_ptr<const SignerSettings> settings)
      : keys_(std::move(keys)), settings_(std::move(settings)) {}

  // header takes the header block (the fields with their CRLFs, no blank
  // line), once, before the body: parses it, reads the From address and
  // picks the rule and the keys that sign at now (seconds since the epoch).
  void header(std::string_view header_block, std::int64_t now);
  // body feeds the next body chunk (CRLF text, dot-unstuffed); nothing is
  // done with it when there is nothing to sign.
  void body(std::string_view chunk);
  // finish ends the body and signs with each key of the rule: t= is
  // timestamp (seconds since the epoch), x= timestamp + the lifetime, i= the
  // rule's identity on the signatures whose d= covers it (RFC 6376 §3.5).
  // Call once.
  SigningOutcome finish(std::int64_t timestamp);

  // arc_key is the key that ARC-seals this message (the matched rule's
  // arc_seal, chosen at header time), or nullptr; block is the parsed header.
  const SigningKeys::Key* arc_key() const noexcept {
    return selection_ && !selection_->error ? selection_->arc_key : nullptr;
  }
  const HeaderBlock& block() const noexcept { return block_; }
  // body_hash is the body's hash under c once finish has run: the config's
  // body canonicalization, and relaxed when the rule seals; else nullopt.
  std::optional<Sha256Digest> body_hash(Canonicalization c) const { return hashes_.digest(c); }

 private:
  void skip(NotSigned reason, std::string detail);

  std::shared_ptr<const SigningKeys> keys_;
  std::shared_ptr<const SignerSettings> settings_;
  bool header_seen_ = false;
  HeaderBlock block_;
  std::optional<SigningKeys::Selection> selection_;
  BodyHashSet hashes_;
  SigningOutcome outcome_;
};

}  // namespace stampd::auth
