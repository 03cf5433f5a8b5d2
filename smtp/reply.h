// smtp_reply.h: an SMTP reply as a value (RFC 5321 §4.2, RFC 3463 enhanced
// status codes) and its wire form. The client sees the text; details of why
// belong in the log.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stampd::smtp {

struct Reply {
  int code = 0;          // 3 digits, e.g. 250
  std::string enhanced;  // "2.0.0", or empty when the peer sent none
  std::string text;      // may hold '\n' for a multi-line reply

  bool positive() const noexcept { return code >= 200 && code < 400; }
  bool transient() const noexcept { return code >= 400 && code < 500; }
  bool permanent() const noexcept { return code >= 500; }
  // wire renders the reply as CRLF lines ("250-a", "250 b"), each with the enhanced code.
  std::string wire() const;
  // summary is a one-line form for logs: "250 2.0.0 Ok".
  std::string summary() const;
};

// ReplyLine is one line of a reply as a server sends it.
struct ReplyLine {
  int code = 0;
  bool last = true;  // "250 x" rather than "250-x"
  std::string_view text;
};

// parse_reply_line reads "250-text" / "250 text" / "250"; nullopt if malformed.
std::optional<ReplyLine> parse_reply_line(std::string_view line);

// split_enhanced moves a leading RFC 3463 code ("5.1.1 ") of the right class
// from text into reply.enhanced.
void split_enhanced(Reply& reply);

// upstream_reply_for_client adapts a reply the upstream gave for relaying
// to our client: an enhanced code is added where the upstream sent none (we
// advertise ENHANCEDSTATUSCODES, RFC 2034), and a 421 becomes 451, because
// it is the upstream connection that closes, not ours.
Reply upstream_reply_for_client(Reply reply);

// make_reply builds a Reply; a shorthand for the many fixed replies.
inline Reply make_reply(int code, std::string enhanced, std::string text) {
  return Reply{code, std::move(enhanced), std::move(text)};
}

}  // namespace stampd::smtp
