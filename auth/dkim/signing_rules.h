// dkim_signing_rules.h: which keys sign which mail, as plain data: a rule
// matches the From address and names keys ([[dkim.sign]] in the TOML, or an
// OpenDKIM SigningTable). Matching only; loading lives with the config.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/mail_address.h"
#include "net/result.h"

namespace stampd::auth {

// OnError says what happens when a rule matches but signing fails
// (unreadable key, crypto error).
enum class OnError {
  FailClosed,    // tempfail the message (4xx); nothing leaves unsigned
  SendUnsigned,  // relay it without this rule's signatures
};
std::optional<OnError> parse_on_error(
    std::string_view text) noexcept;  // "fail-closed" | "send-unsigned"
const char* to_string(OnError on_error) noexcept;

// FromPattern matches a From address. All matching is ASCII
// case-insensitive, on the domain as DNS is, and on the local part too:
// OpenDKIM compares SigningTable keys case-insensitively, and a rule that
// missed "Alice@" for "alice@" would silently pick another key.
class FromPattern {
 public:
  // parse reads a [[dkim.sign]] from= value:
  //   "user@example.com"  that address;
  //   "*@example.com"     any address at example.com (not its subdomains);
  //   "*@*.example.com"   any address at a subdomain of example.com, NOT at
  //                       example.com itself (as OpenDKIM's refile pattern:
  //                       write two rules to cover both);
  //   "*" or "*@*"        any address.
  // Anything else is BadInput with the reason.
  static net::Result<FromPattern> parse(std::string_view text);
  // glob reads an OpenDKIM refile pattern: '*' matches any run of bytes,
  // every other byte itself; the whole address is matched.
  static FromPattern glob(std::string_view text);

  bool matches(const MailAddress& address) const;
  const std::string& text() const noexcept { return text_; }

 private:
  explicit FromPattern(std::string_view text);
  std::string text_;
  std::string glob_;  // lower-cased
};

// SigningRule maps From addresses to keys.
struct SigningRule {
  FromPattern from = FromPattern::glob("*");
  // keys are key names; "%" stands for the From domain (OpenDKIM's SigningTable
  // convention). Several keys: several signatures.
  std::vector<std::string> keys;
  OnError on_error = OnError::FailClosed;
  // identity is the i= to use, "%" standing for the From domain (OpenDKIM's
  // optional second SigningTable field); dropped for a key whose d= does not
  // cover it.
  std::optional<std::string> identity;
  // arc_seal names the key that adds an ARC set (RFC 8617) to the mail this
  // rule matches; empty: none. An RSA key (rsa-sha256 is ARC's algorithm).
  std::string arc_seal;
  std::string origin;  // where the rule was written ("file:line"), for messages
};

// match_rule returns the first rule matching from, or nullptr.
const SigningRule* match_rule(std::span<const SigningRule> rules, const MailAddress& from);

}  // namespace stampd::auth
