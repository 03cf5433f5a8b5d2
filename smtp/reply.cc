#include "smtp/reply.h"

namespace stampd::smtp {

std::string Reply::wire() const {
  std::string out;
  const std::string code_text = std::to_string(code);
  std::string_view rest = text;
  for (;;) {
    const auto nl = rest.find('\n');
    const bool last = nl == std::string_view::npos;
    std::string_view line = last ? rest : rest.substr(0, nl);
    out += code_text;
    out += last ? ' ' : '-';
    if (!enhanced.empty()) {
      out += enhanced;
      if (!line.empty()) out += ' ';
    }
    // Control characters from an upstream's text must not reach the client raw.
    for (char c : line) out += (c == '\r' || c == '\0') ? ' ' : c;
    out += "\r\n";
    if (last) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

std::string Reply::summary() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) out += " " + enhanced;
  if (!text.empty()) {
    out += ' ';
    for (char c : text) out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return out;
}

Reply upstream_reply_for_client(Reply reply) {
  if (reply.code == 421) reply.code = 451;
  if (reply.enhanced.empty() && reply.code >= 200 && reply.code != 354) {
    reply.enhanced = std::to_string(reply.code / 100) + ".0.0";
  }
  return reply;
}

std::optional<ReplyLine> parse_reply_line(std::string_view line) {
  if (line.size() < 3) return std::nullopt;
  int code = 0;
  for (int i = 0; i < 3; ++i) {
    if (line[i] < '0' || line[i] > '9') return std::nullopt;
    code = code * 10 + (line[i] - '0');
  }
  if (code < 200 || code > 599) return std::nullopt;
  ReplyLine out;
  out.code = code;
  if (line.size() == 3) return out;
  if (line[3] != ' ' && line[3] != '-') return std::nullopt;
  out.last = line[3] == ' ';
  out.text = line.substr(4);
  return out;
}

void split_enhanced(Reply& reply) {
  // class.subject.detail, class matching the reply's first digit (RFC 3463 §2).
  const std::string& t = reply.text;
  if (t.size() < 5 || t[0] - '0' != reply.code / 100 || t[1] != '.') return;
  std::size_t i = 2;
  auto digits = [&](std::size_t max) {
    std::size_t n = 0;
    while (i < t.size() && n < max && t[i] >= '0' && t[i] <= '9') ++i, ++n;
    return n > 0;
  };
  if (!digits(3) || i >= t.size() || t[i] != '.') return;
  ++i;
  if (!digits(3)) return;
  if (i < t.size() && t[i] != ' ' && t[i] != '\n') return;
  reply.enhanced = t.substr(0, i);
  reply.text = i < t.size() ? t.substr(i + 1) : std::string();
}

}  // namespace stampd::smtp
