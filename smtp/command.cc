#include "smtp/command.h"

#include <algorithm>
#include <array>
#include <utility>

namespace stampd::smtp {
namespace {

char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (upper(a[i]) != upper(b[i])) return false;
  }
  return true;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// In the order of Verb, which verb_name relies on.
constexpr std::array<std::pair<std::string_view, Verb>, 17> kVerbs{{
    {"HELO", Verb::Helo},
    {"EHLO", Verb::Ehlo},
    {"MAIL", Verb::Mail},
    {"RCPT", Verb::Rcpt},
    {"DATA", Verb::Data},
    {"RSET", Verb::Rset},
    {"NOOP", Verb::Noop},
    {"QUIT", Verb::Quit},
    {"VRFY", Verb::Vrfy},
    {"HELP", Verb::Help},
    {"XFORWARD", Verb::Xforward},
    {"STARTTLS", Verb::Starttls},
    {"AUTH", Verb::Auth},
    {"BDAT", Verb::Bdat},
    {"EXPN", Verb::Expn},
    {"ETRN", Verb::Etrn},
    {"TURN", Verb::Turn},
}};

constexpr bool in_verb_order() {
  for (std::size_t i = 0; i < kVerbs.size(); ++i) {
    if (static_cast<std::size_t>(kVerbs[i].second) != i) return false;
  }
  return kVerbs.size() == static_cast<std::size_t>(Verb::Unknown);
}
static_assert(in_verb_order());

Verb verb_of(std::string_view word) {
  for (const auto& [name, verb] : kVerbs) {
    if (iequals(word, name)) return verb;
  }
  return Verb::Unknown;
}

Reply syntax(std::string text) { return make_reply(501, "5.5.4", std::move(text)); }

bool is_ctl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// check_mailbox validates "local@domain" loosely enough for real mail and
// strictly enough that nothing odd reaches the upstream: no controls, no
// spaces or brackets outside a quoted local-part, the RFC 5321 length limits.
std::optional<std::string> check_mailbox(std::string_view path, bool allow_no_domain,
                                         bool& non_ascii) {
  if (path.size() > kMaxPath) return "path too long";
  bool quoted = false;
  std::size_t at = std::string_view::npos;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (is_ctl(c)) return "control character in address";
    if (c >= 0x80) non_ascii = true;
    if (quoted) {
      if (c == '\\' && i + 1 < path.size()) {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (c == '"' && (i == 0 || path[i - 1] == '.')) {
      quoted = true;
    } else if (c == ' ' || c == '<' || c == '>' || c == '\\' || c == '"' || c == ',' || c == ';' ||
               c == '(' || c == ')') {
      return "invalid character in address";
    } else if (c == '@') {
      at = i;
    }
  }
  if (quoted) return "unterminated quoted local-part";
  if (at == std::string_view::npos) {
    if (allow_no_domain) return std::nullopt;
    return "address needs a domain";
  }
  const auto local = path.substr(0, at);
  const auto domain = path.substr(at + 1);
  if (local.empty()) return "empty local-part";
  if (local.size() > kMaxLocalPart) return "local-part too long";
  if (domain.empty()) return "empty domain";
  if (domain.size() > kMaxDomain) return "domain too long";
  if (domain.front() == '[') {
    if (domain.back() != ']') return "bad address literal";
  } else {
    for (char c : domain) {
      const auto u = static_cast<unsigned char>(c);
      if (!(u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.')) {
        return "invalid character in domain";
      }
    }
    if (domain.front() == '.' || domain.find("..") != std::string_view::npos) {
      return "invalid domain";
    }
  }
  return std::nullopt;
}

// parse_params splits " KEY=value KEY2" (RFC 5321 §4.1.2 mail-parameters).
std::optional<std::string> parse_params(std::string_view rest, std::vector<EsmtpParam>& out) {
  std::size_t i = 0;
  while (i < rest.size()) {
    if (rest[i] == ' ') {
      ++i;
      continue;
    }
    const auto end = std::min(rest.find(' ', i), rest.size());
    const auto token = rest.substr(i, end - i);
    i = end;
    const auto eq = token.find('=');
    const auto keyword = token.substr(0, eq);
    if (keyword.empty()) return "empty parameter keyword";
    for (std::size_t k = 0; k < keyword.size(); ++k) {
      const char c = keyword[k];
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (!alnum && !(c == '-' && k > 0)) return "bad parameter keyword";
    }
    EsmtpParam param;
    for (char c : keyword) param.keyword += upper(c);
    if (eq != std::string_view::npos) {
      const auto value = token.substr(eq + 1);
      if (value.empty()) return "empty value for " + param.keyword;
      for (char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (is_ctl(u) || c == '=') return "bad value for " + param.keyword;
      }
      param.value = std::string(value);
    }
    for (const auto& p : out) {
      if (p.keyword == param.keyword) return "duplicate parameter " + param.keyword;
    }
    out.push_back(std::move(param));
  }
  return std::nullopt;
}

// parse_path handles "FROM:<path> params" / "TO:<path> params".
void parse_path(Command& cmd, std::string_view rest, std::string_view keyword) {
  if (!starts_with_ci(rest, keyword)) {
    cmd.syntax_error =
        syntax("Syntax: " +
               std::string(cmd.verb == Verb::Mail ? "MAIL FROM:<address>" : "RCPT TO:<address>"));
    return;
  }
  rest.remove_prefix(keyword.size());
  // Many clients write "MAIL FROM: <a@b>"; accepting the space harms no one.
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty() || rest.front() != '<') {
    cmd.syntax_error = syntax("Address must be in angle brackets");
    return;
  }
  const auto close = rest.find('>');
  if (close == std::string_view::npos) {
    cmd.syntax_error = syntax("Missing '>' after address");
    return;
  }
  std::string_view path = rest.substr(1, close - 1);
  rest.remove_prefix(close + 1);
  if (!rest.empty() && rest.front() != ' ') {
    cmd.syntax_error = syntax("Unexpected text after address");
    return;
  }
  // RFC 5321 §4.1.2 / §C: source routes are accepted and ignored.
  if (!path.empty() && path.front() == '@') {
    const auto colon = path.find(':');
    if (colon == std::string_view::npos) {
      cmd.syntax_error = syntax("Bad source route");
      return;
    }
    path.remove_prefix(colon + 1);
  }
  if (path.empty()) {
    if (cmd.verb == Verb::Rcpt) {
      cmd.syntax_error = syntax("Empty recipient address");
      return;
    }
    cmd.null_path = true;
  } else if (auto problem = check_mailbox(path, cmd.verb == Verb::Rcpt, cmd.non_ascii)) {
    cmd.syntax_error = syntax("Bad address: " + *problem);
    return;
  }
  cmd.argument = std::string(path);
  if (auto problem = parse_params(rest, cmd.params)) {
    cmd.syntax_error = syntax("Bad parameters: " + *problem);
  }
}

// parse_bdat handles "chunk-size [LAST]" (RFC 3030 §3: bdat-cmd).
void parse_bdat(Command& cmd, std::string_view rest) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const auto space = rest.find(' ');
  const std::string_view size = rest.substr(0, space);
  std::string_view last =
      space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  while (!last.empty() && last.front() == ' ') last.remove_prefix(1);
  // 19 digits always fit in 64 bits; a longer size is no chunk anyone sends.
  const bool digits =
      !size.empty() && size.size() <= 19 &&
      std::all_of(size.begin(), size.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || (!last.empty() && !iequals(last, "LAST"))) {
    cmd.syntax_error = syntax("Syntax: BDAT chunk-size [LAST]");
    return;
  }
  for (char c : size) cmd.chunk_size = cmd.chunk_size * 10 + static_cast<std::uint64_t>(c - '0');
  cmd.last_chunk = !last.empty();
  cmd.argument = std::string(rest);
}

}  // namespace

const EsmtpParam* Command::param(std::string_view keyword) const {
  for (const auto& p : params) {
    if (p.keyword == keyword) return &p;
  }
  return nullptr;
}

bool Command::body_is(std::string_view type) const {
  const EsmtpParam* body = param("BODY");
  return body != nullptr && body->value && iequals(*body->value, type);
}

const char* verb_name(Verb verb) {
  const auto i = static_cast<std::size_t>(verb);
  return i < kVerbs.size() ? kVerbs[i].first.data() : "unknown";
}

std::vector<std::string_view> verb_names() {
  std::vector<std::string_view> names;
  for (std::size_t i = 0; i <= static_cast<std::size_t>(Verb::Unknown); ++i) {
    names.emplace_back(verb_name(static_cast<Verb>(i)));
  }
  return names;
}

Command parse_command(std::string_view line) {
  Command cmd;
  for (char c : line) {
    if (c == '\0' || c == '\r' || c == '\n') {
      cmd.syntax_error = make_reply(500, "5.5.2", "Control characters in command");
      return cmd;
    }
  }
  const auto space = line.find(' ');
  const auto word = line.substr(0, space);
  std::string_view rest =
      space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  cmd.verb_text = std::string(word.substr(0, 16));
  cmd.verb = verb_of(word);
  // Trailing spaces are common and harmless.
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);

  switch (cmd.verb) {
    case Verb::Helo:
    case Verb::Ehlo:
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
      if (rest.empty()) {
        cmd.syntax_error = syntax(std::string("Syntax: ") +
                                  (cmd.verb == Verb::Ehlo ? "EHLO" : "HELO") + " hostname");
      } else {
        cmd.argument = std::string(rest.substr(0, rest.find(' ')));
      }
      break;
    case Verb::Mail:
      parse_path(cmd, rest, "FROM:");
      break;
    case Verb::Rcpt:
      parse_path(cmd, rest, "TO:");
      break;
    case Verb::Data:
    case Verb::Rset:
    case Verb::Quit:
    case Verb::Starttls:
      if (!rest.empty())
        cmd.syntax_error = syntax("Syntax: " + std::string(word) + " takes no arguments");
      break;
    case Verb::Bdat:
      parse_bdat(cmd, rest);
      break;
    case Verb::Unknown:
      cmd.syntax_error = make_reply(500, "5.5.2", "Command unrecognized");
      break;
    default:
      cmd.argument = std::string(rest);
      break;
  }
  return cmd;
}

}  // namespace stampd::smtp
