// sasl.h: the server side of an SMTP AUTH exchange (RFC 4954) for the PLAIN
// (RFC 4616) and LOGIN mechanisms, as a value fed the client's lines. Pure:
// no I/O, no clock, no log; it only yields credentials to check, and never
// keeps a password longer than the step that returns it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "smtp/reply.h"

namespace stampd::smtp {

// Credentials are what a client sent to be checked.
struct Credentials {
  std::string username;
  std::string password;
};

// SaslStep is the exchange's answer to a line: a challenge to send (334), a
// final refusal (501, 504, 535), or the credentials to check.
struct SaslStep {
  enum class Kind { Challenge, Failed, Done };
  Kind kind = Kind::Failed;
  Reply reply;              // Challenge and Failed: send it
  Credentials credentials;  // Done: check them, then answer 235 or 535
};

class SaslExchange {
 public:
  enum class Mechanism { Plain, Login };

  // start parses the AUTH argument ("PLAIN", "LOGIN dXNlcg==") and takes the
  // first step: a 334 challenge, the credentials of an initial response, or
  // the refusal (501 no mechanism, 504 unknown mechanism, 501 bad base64).
  // exchange holds the state for the lines that follow a challenge.
  static SaslStep start(std::string_view argument, std::optional<SaslExchange>& exchange);

  // feed takes the client's line after a 334 challenge ("*" cancels: 501).
  SaslStep feed(std::string_view line);

  Mechanism mechanism() const { return mechanism_; }

 private:
  explicit SaslExchange(Mechanism mechanism) : mechanism_(mechanism) {}
  SaslStep plain_response(std::string_view decoded);

  Mechanism mechanism_;
  bool have_username_ = false;  // LOGIN: the user name came, the password is next
  std::string username_;
};

// mechanism_name is "PLAIN" or "LOGIN" (for logs and metrics).
const char* mechanism_name(SaslExchange::Mechanism mechanism);

// sasl_base64_decode decodes strict RFC 4648 base64 (padding required, no
// whitespace); "=" alone is the empty response (RFC 4954 §4).
std::optional<std::string> sasl_base64_decode(std::string_view text);
// sasl_base64_encode encodes bytes with padding.
std::string sasl_base64_encode(std::string_view bytes);

}  // namespace stampd::smtp
