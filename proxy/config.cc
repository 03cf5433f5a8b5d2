#include "proxy/config.h"

#include <openssl/evp.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <type_traits>

#include "auth/dkim/opendkim_tables.h"
#include "auth/dns_name.h"
#include "auth/mail_address.h"

namespace stampd::proxy {
namespace {

namespace fs = std::filesystem;

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string origin(const std::string& file, const toml::node& node) {
  return file + ":" + std::to_string(node.source().begin.line);
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + quoted(items[i]);
  return out + "]";
}

std::string bool_text(bool value) { return value ? "true" : "false"; }

std::string resolve_path(const std::string& config_path, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  // Absolute, so that nothing depends on the working directory later.
  return fs::absolute(fs::path(config_path).parent_path() / path).lexically_normal().string();
}

// Reader is one TOML table being read; it reports every problem as
// "file:line: [section] key: reason".
struct Reader {
  const toml::table& table;
  std::string section;
  const std::string& file;

  [[noreturn]] void fail(const toml::node& node, const std::string& key,
                         const std::string& reason) const {
    throw ConfigError(origin(file, node) + ": " + where(key) + reason);
  }

  // reject_unknown names the first undeclared key: a typo must not silently
  // mean "default".
  void reject_unknown(const std::function<bool(std::string_view)>& declared,
                      const std::string& noun) const {
    for (const auto& [key, node] : table) {
      if (!declared(key.str())) {
        throw ConfigError(file + ":" + std::to_string(key.source().begin.line) + ": " + where("") +
                          "unknown " + noun + " '" + std::string(key.str()) + "'");
      }
    }
  }

  std::string where(const std::string& key) const {
    if (section.empty()) return key.empty() ? "" : key + ": ";
    return "[" + section + "]" + (key.empty() ? "" : " " + key) + ": ";
  }
};

// --- Value types: how one value is read, checked and printed ----------------------

template <class T>
struct Type {
  std::function<T(const Reader&, const toml::node&, const std::string& key)> read;
  std::function<std::string(const T&)> show;
};

using Check = std::function<std::optional<std::string>(const std::string&)>;
template <class E>
using Choices = std::vector<std::pair<std::string, E>>;

std::string checked(const Reader& r, const toml::node& node, const std::string& key,
                    const std::optional<std::string>& value, const Check& check) {
  if (!value) r.fail(node, key, "expected a string");
  if (auto problem = check ? check(*value) : std::nullopt) r.fail(node, key, *problem);
  return *value;
}

Type<std::string> text(const Check& check = {}) {
  return {[check](const Reader& r, const toml::node& node, const std::string& key) {
            return checked(r, node, key, node.value<std::string>(), check);
          },
          quoted};
}

// file_name is a path made absolute relative to the config file.
Type<std::string> file_name() {
  return {[](const Reader& r, const toml::node& node, const std::string& key) {
            return resolve_path(r.file, checked(r, node, key, node.value<std::string>(), {}));
          },
          quoted};
}

Type<bool> boolean() {
  return {[](const Reader& r, const toml::node& node, const std::string& key) {
            const auto value = node.value<bool>();
            if (!value) r.fail(node, key, "expected true or false");
            return *value;
          },
          [](bool value) { return std::string(value ? "true" : "false"); }};
}

// in_range checks a number read from node against [min, max].
template <class T>
T in_range(const Reader& r, const toml::node& node, const std::string& key,
           const std::optional<T>& value, const std::string& expected, T min, T max,
           std::string (*format)(T)) {
  if (!value) r.fail(node, key, expected);
  if (*value < min || *value > max)
    r.fail(node, key, "must be between " + format(min) + " and " + format(max));
  return *value;
}

std::string format_count(std::int64_t n) { return std::to_string(n); }

Type<std::int64_t> count(std::int64_t min, std::int64_t max) {
  return {[=](const Reader& r, const toml::node& node, const std::string& key) {
            const auto value = node.is_integer() ? node.value<std::int64_t>() : std::nullopt;
            return in_range(r, node, key, value, "expected an integer", min, max, format_count);
          },
          format_count};
}

Type<std::uint64_t> size(std::uint64_t min, std::uint64_t max) {
  return {[=](const Reader& r, const toml::node& node, const std::string& key) {
            std::optional<std::uint64_t> value;
            if (const auto i = node.is_integer() ? node.value<std::int64_t>() : std::nullopt) {
              if (*i >= 0) value = static_cast<std::uint64_t>(*i);
            } else if (const auto s = node.value<std::string>()) {
              value = parse_size(*s);
            }
            return in_range(r, node, key, value,
                            "expected a size like \"50MiB\", \"64KiB\" or a byte count", min, max,
                            format_size);
          },
          [](std::uint64_t value) { return quoted(format_size(value)); }};
}

Type<Duration> duration(Duration min, Duration max) {
  return {[=](const Reader& r, const toml::node& node, const std::string& key) {
            const auto s = node.value<std::string>();
            return in_range(r, node, key, s ? parse_duration(*s) : std::nullopt,
                            "expected a duration like \"30s\", \"5m\" or \"1h\"", min, max,
                            format_duration);
          },
          [](Duration value) { return quoted(format_duration(value)); }};
}

Type<std::vector<std::string>> strings(bool allow_empty, const Check& check = {}) {
  return {[allow_empty, check](const Reader& r, const toml::node& node, const std::string& key) {
            const auto* array = node.as_array();
            if (!array) r.fail(node, key, "expected an array of strings");
            std::vector<std::string> values;
            for (const auto& element : *array) {
              const auto value = element.value<std::string>();
              if (!value) r.fail(element, key, "expected an array of strings");
              values.push_back(checked(r, element, key, value, check));
            }
            if (values.empty() && !allow_empty) r.fail(node, key, "must not be empty");
            return values;
          },
          quoted_list};
}

// choice is one of the names in choices ("expected one of ..." otherwise).
template <class E>
Type<E> choice(Choices<E> choices) {
  return {[choices](const Reader& r, const toml::node& node, const std::string& key) {
            const auto value = node.value<std::string>();
            std::string names;
            for (const auto& [name, e] : choices) {
              if (value && *value == name) return e;
              names += (names.empty() ? "\"" : ", \"") + name + "\"";
            }
            r.fail(node, key, "expected one of " + names);
          },
          [choices](const E& value) {
            for (const auto& [name, e] : choices) {
              if (e == value) return quoted(name);
            }
            return quoted("?");
          }};
}

// parsed is a string that parse reads; expected says what it takes.
template <class T>
Type<T> parsed(std::optional<T> (*parse)(std::string_view), const char* (*show)(T),
               const std::string& expected) {
  return {[parse, expected](const Reader& r, const toml::node& node, const std::string& key) {
            const auto value = parse(checked(r, node, key, node.value<std::string>(), {}));
            if (!value) r.fail(node, key, expected);
            return *value;
          },
          [show](const T& value) { return quoted(show(value)); }};
}

// --- Keys ----------------------------------------------------------------------------

// Key declares one key of a table read into an S: its name, a line saying
// what it is, how it is read and checked, and how the effective config prints
// it. Its default is S's member initializer, as value prints it.
template <class S>
struct Key {
  std::string name;
  std::string about;
  std::function<void(const Reader&, const toml::node&, S&)> read;
  std::function<std::string(const S&)> value = {};  // as TOML; none for a table
  std::function<bool(const S&)> shown = {};         // none: always printed
  bool required = false;
  std::function<void(std::ostream&, const S&)> print = {};   // a table prints itself
  std::function<void(std::vector<ConfigKey>&)> nested = {};  // and lists its keys
};

template <class S>
using Keys = std::vector<Key<S>>;

// field declares a key whose value, of type, goes into member.
template <class S, class T, class V>
Key<S> field(std::string name, T S::*member, Type<V> type, std::string about) {
  return {name, std::move(about),
          [=](const Reader& r, const toml::node& node, S& s) {
            s.*member = static_cast<T>(type.read(r, node, name));
          },
          [=](const S& s) { return type.show(static_cast<V>(s.*member)); }};
}

template <class S>
Key<S> required(Key<S> key) {
  key.required = true;
  return key;
}

template <class S>
Key<S> shown_if(Key<S> key, std::type_identity_t<std::function<bool(const S&)>> shown) {
  key.shown = std::move(shown);
  return key;
}

// read_table reads r's table into out: unknown keys first (a misspelt key
// explains a missing one), then each declared key present, then the missing.
template <class S>
void read_table(const Reader& r, const Keys<S>& keys, S& out, const std::string& noun = "key") {
  r.reject_unknown(
      [&](std::string_view name) {
        return std::any_of(keys.begin(), keys.end(),
                           [&](const Key<S>& k) { return k.name == name; });
      },
      noun);
  for (const auto& key : keys) {
    if (const auto* node = r.table.get(key.name)) key.read(r, *node, out);
  }
  for (const auto& key : keys) {
    if (key.required && !r.table.get(key.name)) r.fail(r.table, "", "missing '" + key.name + "'");
  }
}

template <class S>
void print_keys(std::ostream& o, const Keys<S>& keys, const S& s) {
  for (const auto& key : keys) {
    if (key.print) {
      key.print(o, s);
    } else if (!key.shown || key.shown(s)) {
      o << key.name << " = " << key.value(s) << "\n";
    }
  }
}

template <class S>
void list_keys(std::vector<ConfigKey>& out, const std::string& section, const Keys<S>& keys) {
  if (std::any_of(out.begin(), out.end(), [&](const ConfigKey& k) { return k.section == section; }))
    return;  // a table whose keys another key listed already
  for (const auto& key : keys) {
    std::optional<std::string> default_value;
    if (key.value && !key.required) default_value = key.value(S{});
    out.push_back({section, key.name, key.about, default_value, key.required});
    if (key.nested) key.nested(out);
  }
}

template <class S>
using CheckTable = std::type_identity_t<void (*)(const Reader&, S&)>;

// section declares a top-level table, [name], read into member.
template <class S>
Key<Config> section(std::string name, S Config::*member, const Keys<S>& keys, CheckTable<S> check,
                    std::string about) {
  const auto* k = &keys;
  Key<Config> key{name, std::move(about), [=](const Reader& r, const toml::node& node, Config& c) {
                    const auto* table = node.as_table();
                    if (!table) {
                      throw ConfigError(origin(r.file, node) + ": '" + name +
                                        "' must be a table ([" + name + "])");
                    }
                    const Reader sr{*table, name, r.file};
                    read_table(sr, *k, c.*member);
                    if (check) check(sr, c.*member);
                  }};
  key.print = [=](std::ostream& o, const Config& c) {
    o << "[" << name << "]\n";
    print_keys(o, *k, c.*member);
  };
  key.nested = [=](std::vector<ConfigKey>& out) { list_keys(out, name, *k); };
  return key;
}

// tables declares [[parent.name]], an array of tables, each read into a T.
template <class S, class T>
Key<S> tables(const std::string& parent, std::string name, std::vector<T> S::*member,
              const Keys<T>& keys, CheckTable<T> check, std::string about) {
  const auto full = parent + "." + name;
  const auto* k = &keys;
  Key<S> key{name, std::move(about), [=](const Reader& r, const toml::node& node, S& s) {
               const auto* array = node.as_array();
               if (!array || !array->is_array_of_tables())
                 r.fail(node, name, "write each entry as a [[" + full + "]] table");
               for (const auto& element : *array) {
                 const Reader er{*element.as_table(), "[" + full + "]", r.file};
                 T item;
                 item.origin = origin(r.file, element);
                 read_table(er, *k, item);
                 if (check) check(er, item);
                 (s.*member).push_back(std::move(item));
               }
             }};
  key.print = [=](std::ostream& o, const S& s) {
    for (const auto& item : s.*member) {
      o << "\n[[" << full << "]]  # " << item.origin << "\n";
      print_keys(o, *k, item);
    }
  };
  key.nested = [=](std::vector<ConfigKey>& out) { list_keys(out, full, *k); };
  return key;
}

// --- Checks across values ---------------------------------------------------------

std::optional<std::string> check_listen(const std::string& value) {
  auto hp = net::split_host_port(value);
  if (!hp) return hp.error().detail;
  if (!net::parse_ip(hp->host)) return "'" + value + "': listen on an IP address, not a name";
  return std::nullopt;
}

std::optional<std::string> check_cidr(const std::string& value) {
  auto cidr = net::Cidr::parse(value);
  if (!cidr) return cidr.error().detail;
  return std::nullopt;
}

std::optional<std::string> check_upstream_server(const std::string& value) {
  if (value == "maildir:") return "'maildir:' needs a directory";
  if (value.starts_with("maildir:")) return std::nullopt;
  auto hp = net::split_host_port(value, "25");
  if (!hp) return hp.error().detail;
  return std::nullopt;
}

std::optional<std::string> check_resolver(const std::string& value) {
  auto hp = net::split_host_port(value, "53");
  if (!hp || !net::parse_ip(hp->host))
    return "'" + value + "': expected an IP address with an optional port";
  return std::nullopt;
}

std::optional<std::string> check_must_sign(const std::string& value) {
  const std::string_view domain = std::string_view(value).substr(value.starts_with("*.") ? 2 : 0);
  const bool hostname_chars = std::all_of(domain.begin(), domain.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
  if (!hostname_chars || !auth::is_spf_domain(domain) || !auth::FromPattern::parse("*@" + value)) {
    return "'" + value + "': expected a domain like \"example.com\" or \"*.example.com\"";
  }
  return std::nullopt;
}

std::optional<std::string> check_ip(const std::string& value) {
  if (!net::parse_ip(value)) return "'" + value + "' is not an IP address";
  return std::nullopt;
}

void check_server(const Reader& r, ServerConfig& s) {
  if (s.proxy_protocol && s.proxy_networks_text.empty()) {
    r.fail(*r.table.get("proxy_protocol"), "proxy_protocol",
           "needs proxy_networks, the addresses of your load balancers");
  }
  if (s.certificates.empty() && !s.listen_tls.empty())
    r.fail(*r.table.get("listen_tls"), "listen_tls", "needs a [[server.certificate]]");
  if (s.certificates.empty() && s.require_tls)
    r.fail(*r.table.get("require_tls"), "require_tls", "needs a [[server.certificate]]");
}

// check_certificate makes sure both files can be read now; whether they hold
// a usable certificate and key is build_runtime's check (OpenSSL's).
void check_certificate(const Reader& r, CertificateConfig& c) {
  for (const auto& [key, path] :
       {std::pair<const char*, const std::string*>{"chain_file", &c.chain_file},
        {"key_file", &c.key_file}}) {
    std::ifstream in(*path, std::ios::binary);
    if (!in) r.fail(*r.table.get(key), key, "cannot read '" + *path + "'");
  }
}

// check_upstream reads the password (never printed). An empty string means
// "not set", as in the effective config we print.
void check_upstream(const Reader& r, UpstreamConfig& u) {
  // SMTP servers are tried in order; a Maildir is not a server to fail over
  // to or from, so it stands alone.
  const auto is_maildir = [](const std::string& s) { return s.starts_with("maildir:"); };
  if (std::any_of(u.servers.begin(), u.servers.end(), is_maildir)) {
    if (u.servers.size() > 1) {
      r.fail(*r.table.get("servers"), "servers",
             "a \"maildir:DIR\" entry must be the only server (SMTP servers are tried in order; "
             "a Maildir is for trials)");
    }
    u.servers[0] = "maildir:" + resolve_path(r.file, u.servers[0].substr(8));
  }
  if (!u.auth_password_file.empty()) {
    const auto& node = *r.table.get("auth_password_file");
    std::ifstream in(u.auth_password_file, std::ios::binary);
    if (!in) r.fail(node, "auth_password_file", "cannot read '" + u.auth_password_file + "'");
    u.password.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    while (!u.password.empty() && (u.password.back() == '\n' || u.password.back() == '\r'))
      u.password.pop_back();
    if (u.auth_username.empty()) r.fail(node, "auth_password_file", "needs auth_username");
  } else if (!u.auth_username.empty()) {
    r.fail(*r.table.get("auth_username"), "auth_username", "needs auth_password_file");
  }
  if (!u.ca_file.empty() && !fs::exists(u.ca_file))
    r.fail(*r.table.get("ca_file"), "ca_file", "'" + u.ca_file + "' does not exist");
}

// resolve_table_path resolves an OpenDKIM table as opendkim.conf names it,
// keeping its dataset prefix ("file:" or "refile:", e.g. "KeyTable
// refile:/etc/opendkim/key.table" in the how-tos) in front of the path.
std::string resolve_table_path(const std::string& config_path, const std::string& spec) {
  for (const std::string prefix : {"refile:", "file:"}) {
    if (spec.starts_with(prefix)) {
      return prefix + resolve_path(config_path, spec.substr(prefix.size()));
    }
  }
  return resolve_path(config_path, spec);
}

// check_dkim appends the OpenDKIM files' entries after the TOML ones: first
// match wins, so a [[dkim.sign]] rule can override a SigningTable line.
void check_dkim(const Reader& r, DkimConfig& d) {
  d.oversign_headers_set = r.table.get("oversign_headers") != nullptr;  // [] means none
  if (!d.opendkim_key_table.empty()) {
    d.opendkim_key_table = resolve_table_path(r.file, d.opendkim_key_table);
    auto keys = auth::load_opendkim_key_table(d.opendkim_key_table);
    if (!keys)
      r.fail(*r.table.get("opendkim_key_table"), "opendkim_key_table", keys.error().detail);
    for (auto& k : *keys) d.keys.push_back(std::move(k));
  }
  if (!d.opendkim_signing_table.empty()) {
    d.opendkim_signing_table = resolve_table_path(r.file, d.opendkim_signing_table);
    auto rules = auth::load_opendkim_signing_table(d.opendkim_signing_table);
    if (!rules)
      r.fail(*r.table.get("opendkim_signing_table"), "opendkim_signing_table",
             rules.error().detail);
    for (auto& rule : *rules) d.rules.push_back(std::move(rule));
  }
}

void check_spf(const Reader& r, SpfConfig& spf) {
  for (const auto& text : spf.egress_ips_text)
    spf.egress_ips.push_back(net::unmap(*net::parse_ip(text)));
  if (spf.ip == SpfIpSource::Egress && spf.egress_ips.empty() && spf.mode != SpfMode::Off) {
    r.fail(*r.table.get("ip"), "ip",
           "\"egress\" needs egress_ips, the addresses your upstream sends from");
  }
}

void check_override(const Reader& r, SpfOverride& o) {
  if (o.domain.empty()) r.fail(r.table, "", "missing 'domain'");
  o.domain = auth::ascii_lower(o.domain);
}

// --- The keys, section by section --------------------------------------------------

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

const Keys<CertificateConfig>& certificate_keys() {
  using C = CertificateConfig;
  static const Keys<C> keys{
      required(field("chain_file", &C::chain_file, file_name(),
                     "PEM: the certificate, then its intermediates")),
      required(field("key_file", &C::key_file, file_name(), "PEM: its private key")),
  };
  return keys;
}

const Keys<ServerConfig>& server_keys() {
  using S = ServerConfig;
  static const Keys<S> keys{
      field("listen", &S::listen, strings(false, check_listen), "addresses to listen on"),
      field("hostname", &S::hostname, text(), "banner and EHLO name; default: the host name"),
      field("trusted_networks", &S::trusted_networks_text, strings(true, check_cidr),
            "clients that may relay"),
      field("max_message_size", &S::max_message_size, size(1024, 1ULL << 40), "largest message"),
      field("max_recipients", &S::max_recipients, count(1, 100000), "recipients per message"),
      field("max_command_line_length", &S::max_command_line_length, count(512, 65536),
            "longest command line, in octets"),
      field("max_data_line_length", &S::max_data_line_length, count(78, 1 << 20),
            "longest message line, in octets without CRLF"),
      field("max_header_size", &S::max_header_size, size(1024, 64ULL << 20), "largest header"),
      field("max_commands", &S::max_commands, count(10, 10'000'000), "commands per connection"),
      field("max_errors", &S::max_errors, count(1, 1000), "bad commands before we hang up"),
      field("max_connections", &S::max_connections, count(1, 1'000'000), "client connections"),
      field("max_connections_per_ip", &S::max_connections_per_ip, count(1, 1'000'000),
            "client connections from one IP address"),
      field("bare_line_endings", &S::bare_line_endings,
            choice(Choices<BareLineEndings>{{"normalize", BareLineEndings::Normalize},
                                            {"reject", BareLineEndings::Reject}}),
            "what a bare CR or LF in a message becomes"),
      field("spool_memory", &S::spool_memory, size(4096, 1ULL << 30),
            "message bytes kept in memory; the rest goes to a file"),
      field("spool_memory_total", &S::spool_memory_total, size(64 * 1024, 1ULL << 40),
            "message bytes all sessions keep in memory together"),
      field("spool_dir", &S::spool_dir, file_name(), "where that file goes; default: $TMPDIR"),
      field("command_timeout", &S::command_timeout, duration(seconds(1), hours(1)),
            "wait for the client's next command"),
      field("data_timeout", &S::data_timeout, duration(seconds(1), hours(1)),
            "wait for the client's next data"),
      field("min_data_rate", &S::min_data_rate, count(0, 1LL << 30),
            "octets a second a message must average; 0: off"),
      field("threads", &S::threads, count(0, 256), "I/O threads; 0: one per CPU core"),
      field("drain_timeout", &S::drain_timeout, duration(seconds(0), hours(1)),
            "on SIGTERM, time for sessions in flight to finish"),
      field("user", &S::user, text(), "when started as root, the user to switch to"),
      field("proxy_protocol", &S::proxy_protocol, boolean(), "expect a PROXY protocol header"),
      field("proxy_networks", &S::proxy_networks_text, strings(true, check_cidr),
            "load balancers that may send it"),
      field("listen_tls", &S::listen_tls, strings(true, check_listen),
            "addresses that speak TLS from the first byte (port 465)"),
      field("require_tls", &S::require_tls, boolean(), "refuse MAIL before STARTTLS"),
      field("tls_handshake_timeout", &S::tls_handshake_timeout, duration(seconds(1), minutes(10)),
            "time a client has for its TLS handshake"),
      // Last: a [[server.certificate]] table ends the [server] keys when printed.
      tables("server", "certificate", &S::certificates, certificate_keys(), check_certificate,
             "a certificate for STARTTLS and listen_tls; the first is the default"),
  };
  return keys;
}

const Keys<UpstreamConfig>& upstream_keys() {
  using U = UpstreamConfig;
  static const Keys<U> keys{
      field("servers", &U::servers, strings(false, check_upstream_server),
            "SMTP servers host:port, tried in order, or one maildir:DIR"),
      field("tls", &U::tls,
            choice(Choices<TlsMode>{{"none", TlsMode::None},
                                    {"starttls", TlsMode::Starttls},
                                    {"required", TlsMode::Required},
                                    {"implicit", TlsMode::Implicit}}),
            "TLS to the upstream"),
      field("ca_file", &U::ca_file, file_name(), "CA bundle (PEM); default: the system store"),
      field("verify_certificate", &U::verify_certificate, boolean(), "check the certificate"),
      field("server_name", &U::server_name, text(), "SNI and certificate name"),
      field("helo_name", &U::helo_name, text(), "our EHLO name; default: [server] hostname"),
      field("auth_username", &U::auth_username, text(), "AUTH PLAIN or LOGIN user name"),
      field("auth_password_file", &U::auth_password_file, file_name(), "the AUTH password"),
      field("xforward", &U::xforward, boolean(), "pass the original client on with XFORWARD"),
      field("xclient", &U::xclient, boolean(),
            "name the original client with XCLIENT where offered, instead of XFORWARD"),
      field("connect_timeout", &U::connect_timeout, duration(seconds(1), minutes(10)),
            "each step of setting a connection up"),
      field("command_timeout", &U::command_timeout, duration(seconds(1), hours(1)),
            "wait for a reply to a command"),
      field("data_timeout", &U::data_timeout, duration(seconds(1), hours(1)),
            "wait for the reply to the final dot"),
      field("health_check_interval", &U::health_check_interval, duration(seconds(0), hours(1)),
            "how often an idle stampd probes the upstream; 0s: never"),
      field("max_connections", &U::max_connections, count(1, 10000),
            "upstream connections open at most, in use and idle"),
      field("idle_timeout", &U::idle_timeout, duration(seconds(1), hours(1)),
            "how long an unused upstream connection is kept open"),
  };
  return keys;
}

constexpr auth::KeyAlgorithm kDefaultKeyAlgorithm = auth::KeyAlgorithm::Rsa2048;

void read_algorithm(const Reader& r, const toml::node& node, auth::KeySpec& k) {
  const auto algorithm = checked(r, node, "algorithm", node.value<std::string>(), {});
  if (!k.generate) r.fail(node, "algorithm", "only used with generate = true");
  k.generate = auth::parse_key_algorithm(algorithm);
  if (!k.generate) r.fail(node, "algorithm", "expected \"rsa-2048\", \"rsa-3072\" or \"ed25519\"");
}

// read_retire_after takes a TOML date (midnight UTC), local date-time (UTC)
// or offset date-time.
void read_retire_after(const Reader& r, const toml::node& node, auth::KeySpec& k) {
  toml::date date;
  std::int64_t seconds = 0;
  if (const auto* dt = node.as_date_time()) {
    date = dt->get().date;
    const toml::time t = dt->get().time;
    seconds = t.hour * 3600 + t.minute * 60 + t.second;
    if (dt->get().offset) seconds -= dt->get().offset->minutes * 60;
  } else if (const auto* d = node.as_date()) {
    date = d->get();
  } else {
    r.fail(node, "retire_after",
           "expected a TOML date or date-time, such as 2027-01-31 or 2027-01-31T12:00:00Z");
  }
  const std::chrono::sys_days day{std::chrono::year{date.year} / std::chrono::month{date.month} /
                                  std::chrono::day{date.day}};
  k.retire_after =
      static_cast<std::int64_t>(day.time_since_epoch() / std::chrono::seconds{1}) + seconds;
}

std::string show_retire_after(const auth::KeySpec& k) {
  if (!k.retire_after) return quoted("");  // not set (and not shown)
  return auth::utc_time(*k.retire_after);
}

const Keys<auth::KeySpec>& dkim_key_keys() {
  using K = auth::KeySpec;
  const auto generating = [](const K& k) { return k.generate.has_value(); };
  static const Keys<K> keys{
      required(field("name", &K::name, text(), "the name [[dkim.sign]] keys use")),
      required(field("domain", &K::domain, text(), "d=, the signing domain")),
      required(field("selector", &K::selector, text(), "s=, where the public key is")),
      required(field("private_key", &K::private_key_path, file_name(), "the PEM file")),
      shown_if(Key<K>{"generate", "make the key file on start when it does not exist",
                      [](const Reader& r, const toml::node& node, K& k) {
                        k.generate.reset();
                        if (boolean().read(r, node, "generate")) k.generate = kDefaultKeyAlgorithm;
                      },
                      [](const K& k) { return bool_text(k.generate.has_value()); }},
               generating),
      shown_if(Key<K>{"algorithm", "the algorithm of a generated key", read_algorithm,
                      [](const K& k) {
                        return quoted(auth::to_string(k.generate.value_or(kDefaultKeyAlgorithm)));
                      }},
               generating),
      shown_if(field("replaces", &K::replaces, text(),
                     "the key it takes over from once its DNS record matches"),
               [](const K& k) { return !k.replaces.empty(); }),
      shown_if(Key<K>{"retire_after", "when the key stops signing (a TOML date or date-time)",
                      read_retire_after, show_retire_after},
               [](const K& k) { return k.retire_after.has_value(); }),
  };
  return keys;
}

const Keys<auth::SigningRule>& dkim_sign_keys() {
  using R = auth::SigningRule;
  static const Keys<R> keys{
      required(Key<R>{"from", "the From: address it matches: a@b, *@b, *@*.b or *",
                      [](const Reader& r, const toml::node& node, R& rule) {
                        auto pattern = auth::FromPattern::parse(text().read(r, node, "from"));
                        if (!pattern) r.fail(node, "from", pattern.error().detail);
                        rule.from = *pattern;
                      },
                      [](const R& rule) { return quoted(rule.from.text()); }}),
      required(field("keys", &R::keys, strings(false), "the keys that sign, one signature each")),
      field("on_error", &R::on_error,
            parsed<auth::OnError>(auth::parse_on_error, auth::to_string,
                                  "expected \"fail-closed\" or \"send-unsigned\""),
            "what a failure to sign does"),
      shown_if(Key<R>{"identity", "i=, \"%\" standing for the From domain",
                      [](const Reader& r, const toml::node& node, R& rule) {
                        auto identity = text().read(r, node, "identity");
                        if (!identity.empty()) rule.identity = std::move(identity);
                      },
                      [](const R& rule) { return quoted(rule.identity.value_or("")); }},
               [](const R& rule) { return rule.identity.has_value(); }),
      shown_if(field("arc_seal", &R::arc_seal, text(),
                     "the RSA key that adds an ARC set (see [arc]); \"\": none"),
               [](const R& rule) { return !rule.arc_seal.empty(); }),
  };
  return keys;
}

const Keys<ArcConfig>& arc_keys() {
  using A = ArcConfig;
  static const Keys<A> keys{
      field("authserv_id", &A::authserv_id,
            text([](const std::string& v) -> std::optional<std::string> {
              if (v.find_first_of(" \t\r\n;()\"\\") != std::string::npos)
                return "expected a host name (no spaces, ';', '(' or quotes)";
              return std::nullopt;
            }),
            "our name in ARC-Authentication-Results; default: [server] hostname"),
      field("max_sets", &A::max_sets, count(1, 50),
            "ARC sets examined per message; a longer chain fails unchecked"),
  };
  return keys;
}

const Keys<DkimConfig>& dkim_keys() {
  using D = DkimConfig;
  const auto never = [](const D&) { return false; };
  static const Keys<D> keys = [&] {
    auto key_tables = tables("dkim", "key", &D::keys, dkim_key_keys(), nullptr, "a signing key");
    key_tables.print = [print = key_tables.print](std::ostream& o, const D& d) {
      o << "# " << d.keys.size() << " key(s), " << d.rules.size() << " signing rule(s)"
        << (d.opendkim_key_table.empty() ? "" : ", OpenDKIM tables included") << "\n";
      print(o, d);
    };
    return Keys<D>{
        Key<D>{"canonicalization", "c= of every signature",
               [](const Reader& r, const toml::node& node, D& d) {
                 const auto text = node.value<std::string>().value_or("");
                 const auto pair = auth::parse_canonicalization(text);
                 if (!pair) {
                   r.fail(node, "canonicalization",
                          "expected \"relaxed/relaxed\", \"relaxed/simple\", \"simple/relaxed\" or "
                          "\"simple/simple\"");
                 }
                 d.canonicalization = *pair;
               },
               [](const D& d) { return quoted(auth::to_string(d.canonicalization)); }},
        shown_if(field("sign_headers", &D::sign_headers, strings(false), "header fields to sign"),
                 [](const D& d) { return !d.sign_headers.empty(); }),
        shown_if(field("oversign_headers", &D::oversign_headers, strings(true),
                       "header fields to sign once more than they occur"),
                 [](const D& d) { return d.oversign_headers_set; }),
        field("oversign_absent", &D::oversign_absent, boolean(), "oversign missing ones too"),
        field("signature_lifetime", &D::signature_lifetime, duration(Duration{}, hours(24 * 366)),
              "x= is t= plus this; 0s: no x="),
        field("allow_group_readable_keys", &D::allow_group_readable_keys, boolean(),
              "accept key files readable by group or others"),
        shown_if(field("must_sign", &D::must_sign, strings(true, check_must_sign),
                       "From domains tempfailed (451 4.7.0) rather than relayed unsigned"),
                 [](const D& d) { return !d.must_sign.empty(); }),
        field("dns_check_interval", &D::dns_check_interval, duration(Duration{}, hours(24 * 366)),
              "check the keys' DNS records this often; 0s: never"),
        field("self_verify", &D::self_verify,
              choice(Choices<SelfVerify>{{"off", SelfVerify::Off},
                                         {"sample", SelfVerify::Sample},
                                         {"all", SelfVerify::All}}),
              "verify our signatures before the message leaves"),
        shown_if(field("opendkim_key_table", &D::opendkim_key_table, text(), "a KeyTable"), never),
        shown_if(
            field("opendkim_signing_table", &D::opendkim_signing_table, text(), "a SigningTable"),
            never),
        key_tables,
        tables("dkim", "sign", &D::rules, dkim_sign_keys(), nullptr, "a rule: From to keys"),
    };
  }();
  return keys;
}

constexpr std::array<const char*, 7> kVerdictNames{"none",     "neutral",   "pass",     "fail",
                                                   "softfail", "temperror", "permerror"};

// action_keys are the keys of [spf.actions], one per SPF result (indexed as
// auth::SpfVerdict); a result not set takes the mode's default.
const Keys<SpfActions>& action_keys() {
  static const Keys<SpfActions> keys = [] {
    const auto action = parsed<SpfAction>(
        parse_spf_action, to_string, "expected \"accept\", \"tag\", \"reject\" or \"tempfail\"");
    Keys<SpfActions> out;
    for (std::size_t i = 0; i < kVerdictNames.size(); ++i) {
      const std::string name = kVerdictNames[i];
      out.push_back(shown_if(
          Key<SpfActions>{name, "what an SPF " + name + " result does",
                          [=](const Reader& r, const toml::node& node, SpfActions& actions) {
                            actions[i] = action.read(r, node, name);
                          },
                          [=](const SpfActions& actions) {
                            return actions[i] ? action.show(*actions[i]) : quoted("");
                          }},
          [i](const SpfActions& actions) { return actions[i].has_value(); }));
    }
    return out;
  }();
  return keys;
}

// actions declares the per-result actions of [spf] or of an [[spf.override]].
template <class S>
Key<S> actions(SpfActions S::*member, std::string section, std::string about) {
  Key<S> key{"actions", std::move(about),
             [member, section = std::move(section)](const Reader& r, const toml::node& node, S& s) {
               const auto* table = node.as_table();
               if (!table) r.fail(node, "actions", "expected a table of result = action");
               read_table(Reader{*table, section, r.file}, action_keys(), s.*member);
             },
             [=](const S& s) {
               std::string line;
               for (const auto& key : action_keys()) {
                 if (key.shown(s.*member))
                   line += (line.empty() ? "" : ", ") + key.name + " = " + key.value(s.*member);
               }
               return "{ " + line + " }";
             }};
  key.nested = [](std::vector<ConfigKey>& out) { list_keys(out, "spf.actions", action_keys()); };
  return key;
}

const Type<SpfMode>& spf_mode() {
  static const auto type = choice(Choices<SpfMode>{
      {"off", SpfMode::Off}, {"tag", SpfMode::Tag}, {"enforce", SpfMode::Enforce}});
  return type;
}

const Keys<SpfOverride>& spf_override_keys() {
  using O = SpfOverride;
  static const Keys<O> keys{
      required(field("domain", &O::domain, text(), "the sender domain, or *.domain")),
      shown_if(Key<O>{"mode", "the mode for this domain",
                      [](const Reader& r, const toml::node& node, O& o) {
                        o.mode = spf_mode().read(r, node, "mode");
                      },
                      [](const O& o) { return o.mode ? spf_mode().show(*o.mode) : quoted(""); }},
               [](const O& o) { return o.mode.has_value(); }),
      actions(&O::actions, "spf.override.actions", "the actions for this domain"),
  };
  return keys;
}

const Keys<SpfConfig>& spf_keys() {
  using P = SpfConfig;
  static const Keys<P> keys{
      field("mode", &P::mode, spf_mode(), "off, tag (Received-SPF) or enforce (reject too)"),
      field("ip", &P::ip,
            choice(Choices<SpfIpSource>{{"client", SpfIpSource::Client},
                                        {"egress", SpfIpSource::Egress}}),
            "the address checked: the client's or each of egress_ips"),
      field("egress_ips", &P::egress_ips_text, strings(true, check_ip),
            "the addresses your upstream sends from"),
      field("helo_check", &P::helo_check, boolean(), "also check the HELO identity"),
      actions(&P::actions, "spf.actions", "per-result actions instead of the mode's"),
      tables("spf", "override", &P::overrides, spf_override_keys(), check_override,
             "the mode and actions for one sender domain"),
  };
  return keys;
}

const Keys<AuthUser>& auth_user_keys() {
  using A = AuthUser;
  static const Keys<A> keys{
      required(field("name", &A::name, text(), "the login, as in users_file")),
      required(Key<A>{"senders", "addresses it may send as: a@b, *@b, *@*.b",
                      [](const Reader& r, const toml::node& node, A& user) {
                        for (const auto& text : strings(false).read(r, node, "senders")) {
                          auto pattern = auth::FromPattern::parse(text);
                          if (!pattern) r.fail(node, "senders", pattern.error().detail);
                          user.senders.push_back(*pattern);
                        }
                      },
                      [](const A& user) {
                        std::vector<std::string> texts;
                        for (const auto& p : user.senders) texts.push_back(p.text());
                        return quoted_list(texts);
                      }}),
  };
  return keys;
}

void check_auth(const Reader& r, AuthConfig& a) {
  for (std::size_t i = 0; i < a.users.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (a.users[i].name == a.users[j].name) {
        throw ConfigError(a.users[i].origin + ": [auth.user] '" + a.users[i].name +
                          "' appears twice (first at " + a.users[j].origin + ")");
      }
    }
  }
  if (!a.users.empty() && a.users_file.empty()) {
    r.fail(r.table, "", "[[auth.user]] needs users_file, the logins and their password hashes");
  }
}

const Keys<AuthConfig>& auth_keys() {
  using A = AuthConfig;
  static const Keys<A> keys{
      field("users_file", &A::users_file, file_name(),
            "user:crypt-hash lines (stampd passwd); \"\": no AUTH"),
      field("plaintext_listen", &A::plaintext_listen, strings(true, check_listen),
            "listen addresses where AUTH needs no TLS (loopback)"),
      field("failure_delay", &A::failure_delay, duration(seconds(0), minutes(1)),
            "wait before answering a failed AUTH"),
      field("max_failures", &A::max_failures, count(1, 1000),
            "failed AUTHs per client IP or user before 454 and a disconnect"),
      field("failure_window", &A::failure_window, duration(seconds(1), hours(24)),
            "how long a failure counts"),
      tables("auth", "user", &A::users, auth_user_keys(), nullptr, "a login's sender addresses"),
  };
  return keys;
}

const Keys<DnsConfig>& dns_keys() {
  using N = DnsConfig;
  static const Keys<N> keys{
      field("resolvers", &N::resolvers, strings(true, check_resolver),
            "IP[:port] of resolvers; empty: /etc/resolv.conf"),
      field("timeout", &N::timeout, duration(std::chrono::milliseconds(100), minutes(5)),
            "per query"),
      field("trust_anchor_file", &N::trust_anchor_file, file_name(), "set: validate DNSSEC"),
  };
  return keys;
}

const Keys<LogConfig>& log_keys() {
  static const Keys<LogConfig> keys{
      field("level", &LogConfig::level,
            choice(Choices<LogLevel>{{"debug", LogLevel::Debug},
                                     {"info", LogLevel::Info},
                                     {"warning", LogLevel::Warning},
                                     {"error", LogLevel::Error}}),
            "the least important events logged"),
      field("format", &LogConfig::format,
            choice(Choices<LogFormat>{{"text", LogFormat::Text}, {"json", LogFormat::Json}}),
            "key=value text or JSON lines"),
  };
  return keys;
}

const Keys<MetricsConfig>& metrics_keys() {
  static const Keys<MetricsConfig> keys{
      field("listen", &MetricsConfig::listen,
            text([](const std::string& v) { return v.empty() ? std::nullopt : check_listen(v); }),
            "the Prometheus endpoint; \"\": none"),
  };
  return keys;
}

const Keys<Config>& config_sections() {
  static const Keys<Config> keys{
      section("server", &Config::server, server_keys(), check_server, "the client side"),
      section("upstream", &Config::upstream, upstream_keys(), check_upstream, "the MTA after us"),
      section("dkim", &Config::dkim, dkim_keys(), check_dkim, "DKIM signing"),
      section("arc", &Config::arc, arc_keys(), nullptr, "ARC sealing"),
      section("spf", &Config::spf, spf_keys(), check_spf, "the SPF policy"),
      section("auth", &Config::auth, auth_keys(), check_auth, "AUTH for submitting apps"),
      section("dns", &Config::dns, dns_keys(), nullptr, "DNS lookups"),
      section("log", &Config::log, log_keys(), nullptr, "the log"),
      section("metrics", &Config::metrics, metrics_keys(), nullptr, "the metrics endpoint"),
  };
  return keys;
}

std::string default_hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

// complete fills in what follows from other settings or from the machine.
void complete(Config& c) {
  auto& s = c.server;
  for (const auto& text : s.trusted_networks_text)
    s.trusted_networks.push_back(*net::Cidr::parse(text));
  for (const auto& text : s.proxy_networks_text)
    s.proxy_networks.push_back(*net::Cidr::parse(text));
  if (s.hostname.empty()) s.hostname = default_hostname();
  if (s.spool_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    s.spool_dir = (tmp && *tmp) ? tmp : "/tmp";
  }
  if (c.upstream.helo_name.empty()) c.upstream.helo_name = s.hostname;
  if (c.arc.authserv_id.empty()) c.arc.authserv_id = s.hostname;
}

}  // namespace

std::shared_ptr<const Config> parse_config(const std::string& text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(path + ":" + std::to_string(e.source().begin.line) + ": " +
                      std::string(e.description()));
  }
  auto config = std::make_shared<Config>();
  config->path = path;
  config->hash = sha256_hex(text);
  read_table(Reader{root, "", path}, config_sections(), *config, "section");
  // AUTH without TLS only where [server] listens.
  for (const auto& address : config->auth.plaintext_listen) {
    const auto& listen = config->server.listen;
    if (std::find(listen.begin(), listen.end(), address) == listen.end()) {
      const auto* node = root.at_path("auth.plaintext_listen").node();
      throw ConfigError(origin(path, node ? *node : static_cast<const toml::node&>(root)) +
                        ": [auth] plaintext_listen: '" + address +
                        "' is not one of [server] listen");
    }
  }
  complete(*config);
  return config;
}

std::shared_ptr<const Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open the configuration file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_config(buffer.str(), path);
}

const AuthUser* AuthConfig::find_user(std::string_view name) const {
  for (const auto& user : users) {
    if (user.name == name) return &user;
  }
  return nullptr;
}

bool ServerConfig::trusts(const net::IpAddress& ip) const {
  return std::any_of(trusted_networks.begin(), trusted_networks.end(),
                     [&](const net::Cidr& network) { return network.contains(ip); });
}

std::string describe_config(const Config& c) {
  std::ostringstream o;
  o << "# effective configuration of " << c.path << " (sha256 " << c.hash << ")\n";
  const char* separator = "";
  for (const auto& section : config_sections()) {
    o << separator;
    section.print(o, c);
    separator = "\n";
  }
  return o.str();
}

std::vector<ConfigKey> config_keys() {
  std::vector<ConfigKey> out;
  list_keys(out, "", config_sections());
  return out;
}

}  // namespace stampd::proxy
