// dkim_sign_message.h: signing a whole message held in memory, for
// `stampd sign` and tests. The proxy streams instead (HeaderSplitter +
// BodyHashSet + sign_header_block) and never holds the body twice.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/keyring.h"
#include "auth/dkim/signer.h"
#include "net/result.h"

namespace stampd::auth {

// sign_message signs message (CRLF text) with each key and returns it with
// the DKIM-Signature fields on top, in key order. One body hash per body
// canonicalization. BadInput for a malformed header section.
net::Result<std::string> sign_message(std::string_view message, std::span<const SigningKey> keys,
                                      const SignOptions& options);

// SignOutcome is the result of signing by rules.
struct SignOutcome {
  enum class Kind {
    Signed,    // message has the signatures
    Unsigned,  // no rule, no usable From, or on_error = send-unsigned: message unchanged
    Failed,    // a rule matched, signing failed, and the rule is fail-closed: do not relay
  };
  Kind kind = Kind::Unsigned;
  std::string message;                 // what to relay (signed, or the input unchanged)
  std::string reason;                  // why not signed, for the log
  std::vector<std::string> key_names;  // keys that signed
};

// sign_message_by_rules picks keys by the From address (keyring.select) and
// signs as the proxy would. options gives canonicalization, time, header
// policy; its identity is replaced by the rule's (when within each key's d=).
SignOutcome sign_message_by_rules(std::string_view message, const SigningKeys& keyring,
                                  const SignOptions& options);

}  // namespace stampd::auth
