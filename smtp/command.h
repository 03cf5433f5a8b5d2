// smtp_command.h: parses one SMTP command line (RFC 5321 §4.1) into a value.
// Pure string work; whether the command is allowed now is the session's call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/reply.h"

namespace stampd::smtp {

enum class Verb {
  Helo,
  Ehlo,
  Mail,
  Rcpt,
  Data,
  Rset,
  Noop,
  Quit,
  Vrfy,
  Help,
  Xforward,
  Starttls,
  Auth,
  Bdat,
  Expn,
  Etrn,
  Turn,  // known but not offered: 502
  Unknown,
};

// EsmtpParam is one MAIL/RCPT parameter (RFC 5321 §4.1.2 esmtp-param).
struct EsmtpParam {
  std::string keyword;  // upper-cased
  std::optional<std::string> value;

  // wire renders it back as KEYWORD[=value].
  std::string wire() const { return value ? keyword + "=" + *value : keyword; }
};

struct Command {
  Verb verb = Verb::Unknown;
  std::string verb_text;  // as sent, for logs of unknown commands
  std::string argument;   // HELO/EHLO name; MAIL/RCPT path without <>; other verbs' text
  std::vector<EsmtpParam> params;
  bool null_path = false;             // MAIL FROM:<>
  bool non_ascii = false;             // the path holds UTF-8 (needs SMTPUTF8, RFC 6531)
  std::uint64_t chunk_size = 0;       // BDAT: the octets that follow the command line
  bool last_chunk = false;            // BDAT ... LAST: the chunk ends the message
  std::optional<Reply> syntax_error;  // set when the line does not parse

  // param finds a parameter by upper-case keyword.
  const EsmtpParam* param(std::string_view keyword) const;
  // body_is tells whether MAIL's BODY= is type (any case, RFC 1652).
  bool body_is(std::string_view type) const;
};

// verb_name is the verb's upper-case name ("EHLO"; "unknown" for Unknown).
const char* verb_name(Verb verb);
// verb_names lists every verb_name in the order of Verb, for metric series.
std::vector<std::string_view> verb_names();

// parse_command parses a line without its CRLF. A BDAT line that does not
// parse leaves the size of its chunk unknown: the caller cannot skip it.
Command parse_command(std::string_view line);

// Limits from RFC 5321 §4.5.3.1.
inline constexpr std::size_t kMaxLocalPart = 64;
inline constexpr std::size_t kMaxDomain = 255;
inline constexpr std::size_t kMaxPath = 256;

}  // namespace stampd::smtp
