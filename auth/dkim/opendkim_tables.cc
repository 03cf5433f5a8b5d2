#include "auth/dkim/opendkim_tables.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace stampd::auth {
namespace {

struct Line {
  std::size_t number;
  std::string key;
  std::string value;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> out;
  std::size_t pos = 0;
  std::size_t number = 0;
  while (pos < text.size()) {
    std::string joined;
    const std::size_t first = number + 1;
    // Gather one logical line, following '\' continuations.
    for (;;) {
      ++number;
      std::size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(pos, end - pos);
      pos = end < text.size() ? end + 1 : end;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!line.empty() && line.back() == '\\' && pos < text.size()) {
        joined.append(line.substr(0, line.size() - 1)).append(" ");
        continue;
      }
      joined.append(line);
      break;
    }
    std::string_view content = joined;
    content = content.substr(0, content.find('#'));
    content = trim(content);
    if (content.empty()) continue;
    std::size_t gap = 0;
    while (gap < content.size() && !is_space(content[gap])) ++gap;
    out.push_back(
        Line{first, std::string(content.substr(0, gap)), std::string(trim(content.substr(gap)))});
  }
  return out;
}

net::Error line_error(std::string_view file, std::size_t line, const std::string& why) {
  return net::make_error(net::Errc::BadInput,
                         std::string(file) + ":" + std::to_string(line) + ": " + why);
}

std::string origin(std::string_view file, std::size_t line) {
  return std::string(file) + ":" + std::to_string(line);
}

std::string join_path(std::string_view dir, std::string_view path) {
  if (!path.empty() && path.front() == '/') return std::string(path);
  if (dir.empty() || dir == ".") return std::string(path);
  std::string out(dir);
  if (out.back() != '/') out += '/';
  out.append(path);
  return out;
}

// strip_prefix removes an opendkim.conf dataset prefix and reports whether
// it was "refile:".
std::string_view strip_prefix(std::string_view spec, bool& refile) {
  refile = false;
  if (spec.substr(0, 7) == "refile:") {
    refile = true;
    return spec.substr(7);
  }
  if (spec.substr(0, 5) == "file:") return spec.substr(5);
  return spec;
}

net::Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return net::make_error(errno == ENOENT ? net::Errc::NotFound : net::Errc::Io,
                           path + ": " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return net::make_error(net::Errc::Io, path + ": read error");
  return buf.str();
}

std::string dir_of(std::string_view path) {
  const auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

// Precedence classes of a plain (non-refile) SigningTable key, in the order
// OpenDKIM tries them (opendkim.conf(5), SigningTable).
enum class PlainKind { Address, Host, UserAtParent, Parent, UserAnyDomain, Any };

}  // namespace

net::Result<std::vector<KeySpec>> parse_opendkim_key_table(std::string_view text,
                                                           std::string_view file_name,
                                                           std::string_view base_dir) {
  std::vector<KeySpec> out;
  for (const Line& line : split_lines(text)) {
    const std::string usage = "expected \"name domain:selector:/path/to/key\"";
    if (line.value.empty())
      return line_error(file_name, line.number, "key \"" + line.key + "\" has no value; " + usage);
    const auto c1 = line.value.find(':');
    const auto c2 = c1 == std::string::npos ? std::string::npos : line.value.find(':', c1 + 1);
    if (c2 == std::string::npos) return line_error(file_name, line.number, usage);
    KeySpec spec;
    spec.name = line.key;
    spec.domain = std::string(trim(std::string_view(line.value).substr(0, c1)));
    spec.selector = std::string(trim(std::string_view(line.value).substr(c1 + 1, c2 - c1 - 1)));
    const std::string path(trim(std::string_view(line.value).substr(c2 + 1)));
    spec.origin = origin(file_name, line.number);
    if (spec.domain.empty() || spec.selector.empty() || path.empty())
      return line_error(file_name, line.number, usage);
    if (spec.domain == "%") {
      return line_error(file_name, line.number,
                        "a '%' domain (the sender's domain) is not supported; name the domain");
    }
    const bool is_path =
        path.front() == '/' || path.substr(0, 2) == "./" || path.substr(0, 3) == "../";
    if (!is_path) {
      return line_error(file_name, line.number,
                        "inline key data is not supported; put the key in a file and give its path "
                        "(starting with /, ./ or ../)");
    }
    for (const KeySpec& other : out) {
      if (other.name == spec.name) {
        return line_error(file_name, line.number,
                          "key name \"" + spec.name + "\" already defined at " + other.origin);
      }
    }
    spec.private_key_path = join_path(base_dir, path);
    out.push_back(std::move(spec));
  }
  return out;
}

net::Result<std::vector<SigningRule>> parse_opendkim_signing_table(std::string_view text,
                                                                   std::string_view file_name,
                                                                   bool refile) {
  struct Entry {
    SigningRule rule;
    PlainKind kind = PlainKind::Any;
    std::size_t specificity = 0;
  };
  std::vector<Entry> entries;
  for (const Line& line : split_lines(text)) {
    if (line.value.empty())
      return line_error(file_name, line.number, "\"" + line.key + "\" names no key");
    // The value is "keyname" or "keyname:signer" (OpenDKIM separates the
    // entries of a value with colons).
    const auto colon = line.value.find(':');
    const std::string key_name(trim(std::string_view(line.value).substr(0, colon)));
    std::optional<std::string> identity;
    if (colon != std::string::npos) {
      identity = std::string(trim(std::string_view(line.value).substr(colon + 1)));
      if (identity->empty()) identity.reset();
    }
    if (key_name.empty())
      return line_error(file_name, line.number, "\"" + line.key + "\" names no key");

    Entry e;
    e.rule.keys = {key_name};
    e.rule.identity = identity;
    e.rule.origin = origin(file_name, line.number);
    if (refile) {
      // Same pattern again: one more key for that rule.
      auto same = std::find_if(entries.begin(), entries.end(),
                               [&](const Entry& x) { return x.rule.from.text() == line.key; });
      if (same != entries.end()) {
        same->rule.keys.push_back(key_name);
        continue;
      }
      e.rule.from = FromPattern::glob(line.key);
      entries.push_back(std::move(e));
      continue;
    }
    const std::string& k = line.key;
    const auto at = k.rfind('@');
    std::string glob;
    if (k == "*") {
      e.kind = PlainKind::Any;
      glob = "*";
    } else if (at == std::string::npos) {
      if (k.front() == '.') {
        e.kind = PlainKind::Parent;
        glob = "*@*" + k;
      } else {
        e.kind = PlainKind::Host;
        glob = "*@" + k;
      }
    } else {
      const std::string local = k.substr(0, at);
      const std::string domain = k.substr(at + 1);
      if (local.empty() || domain.empty() || local.find('*') != std::string::npos) {
        return line_error(
            file_name, line.number,
            "\"" + k +
                "\" is not a lookup key (user@host, host, user@.domain, .domain, user@*, *); "
                "for wildcards use a refile: table");
      }
      if (domain == "*") {
        e.kind = PlainKind::UserAnyDomain;
        glob = local + "@*";
      } else if (domain.front() == '.') {
        e.kind = PlainKind::UserAtParent;
        glob = local;
        glob.append("@*").append(domain);
      } else {
        e.kind = PlainKind::Address;
        glob = k;
      }
    }
    if (k.find('*') != std::string::npos && e.kind != PlainKind::Any &&
        e.kind != PlainKind::UserAnyDomain) {
      return line_error(file_name, line.number, "'*' in \"" + k + "\" needs a refile: table");
    }
    e.rule.from = FromPattern::glob(glob);
    e.specificity = k.size();
    entries.push_back(std::move(e));
  }
  if (!refile) {
    // Longer parent domains are nearer parents, which OpenDKIM tries first.
    std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      if (a.kind != b.kind) return a.kind < b.kind;
      return a.specificity > b.specificity;
    });
  }
  std::vector<SigningRule> out;
  out.reserve(entries.size());
  for (Entry& e : entries) out.push_back(std::move(e.rule));
  return out;
}

net::Result<std::vector<KeySpec>> load_opendkim_key_table(std::string_view spec) {
  bool refile = false;
  const std::string path(strip_prefix(spec, refile));
  auto text = read_file(path);
  if (!text) return std::move(text).error();
  return parse_opendkim_key_table(*text, path, dir_of(path));
}

net::Result<std::vector<SigningRule>> load_opendkim_signing_table(std::string_view spec) {
  bool refile = false;
  const std::string path(strip_prefix(spec, refile));
  auto text = read_file(path);
  if (!text) return std::move(text).error();
  return parse_opendkim_signing_table(*text, path, refile);
}

}  // namespace stampd::auth
