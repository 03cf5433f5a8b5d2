#include "proxy/config.h"

#include <openssl/evp.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "auth/dkim/opendkim_tables.h"
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

// Reader reads one TOML table, remembers which keys it used, and reports
// every problem as "file:line: [section] key: reason".
class Reader {
 public:
  Reader(const toml::table& table, std::string section, const std::string& file)
      : table_(table), section_(std::move(section)), file_(file) {}

  [[noreturn]] void fail(const toml::node& node, const std::string& key,
                         const std::string& reason) const {
    throw ConfigError(file_ + ":" + std::to_string(node.source().begin.line) + ": " + where(key) +
                      reason);
  }

  const toml::node* find(const std::string& key) {
    used_.insert(key);
    return table_.get(key);
  }

  void string(const std::string& key, std::string& out) {
    if (const auto* node = find(key)) {
      const auto value = node->value<std::string>();
      if (!value) fail(*node, key, "expected a string");
      out = *value;
    }
  }

  template <class Enum>
  void choice(const std::string& key, Enum& out,
              std::initializer_list<std::pair<const char*, Enum>> options) {
    if (const auto* node = find(key)) {
      const auto value = node->value<std::string>();
      std::string names;
      for (const auto& [name, e] : options) {
        if (value && *value == name) {
          out = e;
          return;
        }
        names += names.empty() ? "" : ", ";
        names += std::string("\"") + name + "\"";
      }
      fail(*node, key, "expected one of " + names);
    }
  }

  void boolean(const std::string& key, bool& out) {
    if (const auto* node = find(key)) {
      const auto value = node->value<bool>();
      if (!value) fail(*node, key, "expected true or false");
      out = *value;
    }
  }

  template <class Int>
  void count(const std::string& key, Int& out, std::int64_t min, std::int64_t max) {
    if (const auto* node = find(key)) {
      const auto value = node->value<std::int64_t>();
      if (!value || !node->is_integer()) fail(*node, key, "expected an integer");
      if (*value < min || *value > max) {
        fail(*node, key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      }
      out = static_cast<Int>(*value);
    }
  }

  void size(const std::string& key, std::uint64_t& out, std::uint64_t min, std::uint64_t max) {
    if (const auto* node = find(key)) {
      std::optional<std::uint64_t> value;
      if (node->is_integer()) {
        const auto i = node->value<std::int64_t>();
        if (i && *i >= 0) value = static_cast<std::uint64_t>(*i);
      } else if (const auto s = node->value<std::string>()) {
        value = parse_size(*s);
      }
      if (!value) fail(*node, key, "expected a size like \"50MiB\", \"64KiB\" or a byte count");
      if (*value < min || *value > max) {
        fail(*node, key, "must be between " + format_size(min) + " and " + format_size(max));
      }
      out = *value;
    }
  }

  void duration(const std::string& key, Duration& out, Duration min, Duration max) {
    if (const auto* node = find(key)) {
      std::optional<Duration> value;
      if (const auto s = node->value<std::string>()) value = parse_duration(*s);
      if (!value) fail(*node, key, "expected a duration like \"30s\", \"5m\" or \"1h\"");
      if (*value < min || *value > max) {
        fail(*node, key,
             "must be between " + format_duration(min) + " and " + format_duration(max));
      }
      out = *value;
    }
  }

  void strings(const std::string& key, std::vector<std::string>& out, bool allow_empty,
               const std::function<std::optional<std::string>(const std::string&)>& check = {}) {
    const auto* node = find(key);
    if (!node) return;
    const auto* array = node->as_array();
    if (!array) fail(*node, key, "expected an array of strings");
    std::vector<std::string> values;
    for (const auto& element : *array) {
      const auto value = element.value<std::string>();
      if (!value) fail(element, key, "expected an array of strings");
      if (check) {
        if (auto problem = check(*value)) fail(element, key, *problem);
      }
      values.push_back(*value);
    }
    if (values.empty() && !allow_empty) fail(*node, key, "must not be empty");
    out = std::move(values);
  }

  // finish rejects keys nobody asked for: a typo must not silently mean "default".
  void finish() const {
    for (const auto& [key, node] : table_) {
      if (!used_.contains(std::string(key.str()))) {
        throw ConfigError(file_ + ":" + std::to_string(key.source().begin.line) + ": " + where("") +
                          "unknown key '" + std::string(key.str()) + "'");
      }
    }
  }

 private:
  std::string where(const std::string& key) const {
    if (section_.empty()) return key.empty() ? "" : key + ": ";
    return "[" + section_ + "]" + (key.empty() ? "" : " " + key) + ": ";
  }

  const toml::table& table_;
  std::string section_;
  const std::string& file_;
  std::set<std::string> used_;
};

std::string resolve_path(const std::string& config_path, const std::string& path) {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  // Absolute, so that nothing depends on the working directory later.
  return fs::absolute(fs::path(config_path).parent_path() / path).lexically_normal().string();
}

std::optional<std::string> check_listen(const std::string& value) {
  auto hp = net::split_host_port(value);
  if (!hp) return hp.error().detail;
  if (!net::parse_ip(hp->host)) return "'" + value + "': listen on an IP address, not a name";
  return std::nullopt;
}

std::string default_hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

std::string read_secret_file(const std::string& path, const std::string& file,
                             const toml::node& node) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(file + ":" + std::to_string(node.source().begin.line) +
                      ": [upstream] auth_password_file: cannot read '" + path + "'");
  }
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  return secret;
}

const toml::table* section(const toml::table& root, const std::string& name,
                           const std::string& file) {
  const auto* node = root.get(name);
  if (!node) return nullptr;
  const auto* table = node->as_table();
  if (!table) {
    throw ConfigError(file + ":" + std::to_string(node->source().begin.line) + ": '" + name +
                      "' must be a table ([" + name + "])");
  }
  return table;
}

void read_server(Reader& r, ServerConfig& s) {
  using namespace std::chrono;
  r.strings("listen", s.listen, false, check_listen);
  r.string("hostname", s.hostname);
  r.strings("trusted_networks", s.trusted_networks_text, true,
            [](const std::string& v) -> std::optional<std::string> {
              auto cidr = net::Cidr::parse(v);
              if (!cidr) return cidr.error().detail;
              return std::nullopt;
            });
  r.size("max_message_size", s.max_message_size, 1024, 1ULL << 40);
  r.count("max_recipients", s.max_recipients, 1, 100000);
  r.count("max_command_line_length", s.max_command_line_length, 512, 65536);
  r.count("max_data_line_length", s.max_data_line_length, 78, 1 << 20);
  r.size("max_header_size", s.max_header_size, 1024, 64ULL << 20);
  r.count("max_commands", s.max_commands, 10, 10'000'000);
  r.count("max_errors", s.max_errors, 1, 1000);
  r.count("max_connections", s.max_connections, 1, 1'000'000);
  r.count("max_connections_per_ip", s.max_connections_per_ip, 1, 1'000'000);
  r.choice("bare_line_endings", s.bare_line_endings,
           {{"normalize", BareLineEndings::Normalize}, {"reject", BareLineEndings::Reject}});
  r.size("spool_memory", s.spool_memory, 4096, 1ULL << 30);
  r.string("spool_dir", s.spool_dir);
  r.duration("command_timeout", s.command_timeout, seconds(1), hours(1));
  r.duration("data_timeout", s.data_timeout, seconds(1), hours(1));
  r.count("threads", s.threads, 0, 256);
  r.duration("drain_timeout", s.drain_timeout, seconds(0), hours(1));
  r.string("user", s.user);
  r.boolean("proxy_protocol", s.proxy_protocol);
  r.strings("proxy_networks", s.proxy_networks_text, true,
            [](const std::string& v) -> std::optional<std::string> {
              auto cidr = net::Cidr::parse(v);
              if (!cidr) return cidr.error().detail;
              return std::nullopt;
            });
  r.finish();
}

void read_upstream(Reader& r, UpstreamConfig& u) {
  using namespace std::chrono;
  r.strings("servers", u.servers, false, [](const std::string& v) -> std::optional<std::string> {
    if (v.starts_with("maildir:")) {
      if (v.size() == 8) return "'maildir:' needs a directory";
      return std::nullopt;
    }
    auto hp = net::split_host_port(v, "25");
    if (!hp) return hp.error().detail;
    return std::nullopt;
  });
  // SMTP servers are tried in order; a Maildir is not a server to fail over
  // to or from, so it stands alone.
  const bool maildir = std::any_of(u.servers.begin(), u.servers.end(),
                                   [](const std::string& s) { return s.starts_with("maildir:"); });
  if (maildir && u.servers.size() > 1) {
    r.fail(*r.find("servers"), "servers",
           "a \"maildir:DIR\" entry must be the only server (SMTP servers are tried in order; a "
           "Maildir is for trials)");
  }
  r.choice("tls", u.tls,
           {{"none", TlsMode::None},
            {"starttls", TlsMode::Starttls},
            {"required", TlsMode::Required},
            {"implicit", TlsMode::Implicit}});
  r.string("ca_file", u.ca_file);
  r.boolean("verify_certificate", u.verify_certificate);
  r.string("server_name", u.server_name);
  r.string("helo_name", u.helo_name);
  r.string("auth_username", u.auth_username);
  r.string("auth_password_file", u.auth_password_file);
  r.boolean("xforward", u.xforward);
  r.duration("connect_timeout", u.connect_timeout, seconds(1), minutes(10));
  r.duration("command_timeout", u.command_timeout, seconds(1), hours(1));
  r.duration("data_timeout", u.data_timeout, seconds(1), hours(1));
  r.duration("health_check_interval", u.health_check_interval, seconds(0), hours(1));
  r.finish();
}

std::string origin(const std::string& file, const toml::node& node) {
  return file + ":" + std::to_string(node.source().begin.line);
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

// tables returns the [[SECTION.NAME]] array of tables, or nothing.
const toml::array* tables(Reader& r, const std::string& section, const std::string& name) {
  const auto* node = r.find(name);
  if (!node) return nullptr;
  const auto* array = node->as_array();
  if (!array || !array->is_array_of_tables()) {
    r.fail(*node, name, "write each entry as a [[" + section + "." + name + "]] table");
  }
  return array;
}

void read_dkim(const toml::table& t, const std::string& path, DkimConfig& d) {
  Reader r(t, "dkim", path);
  if (const auto* node = r.find("canonicalization")) {
    const auto text = node->value<std::string>();
    auto pair =
        text ? auth::parse_canonicalization(*text)
             : net::Result<auth::CanonicalizationPair>(net::make_error(net::Errc::BadInput, ""));
    if (!pair)
      r.fail(*node, "canonicalization",
             "expected \"relaxed/relaxed\", \"relaxed/simple\", \"simple/relaxed\" or "
             "\"simple/simple\"");
    d.canonicalization = *pair;
  }
  r.strings("sign_headers", d.sign_headers, false);
  if (t.get("oversign_headers")) d.oversign_headers_set = true;
  r.strings("oversign_headers", d.oversign_headers, true);
  r.boolean("oversign_absent", d.oversign_absent);
  r.duration("signature_lifetime", d.signature_lifetime, Duration{}, std::chrono::hours(24 * 366));
  r.boolean("allow_group_readable_keys", d.allow_group_readable_keys);
  r.string("opendkim_key_table", d.opendkim_key_table);
  r.string("opendkim_signing_table", d.opendkim_signing_table);

  if (const auto* keys = tables(r, "dkim", "key")) {
    for (const auto& element : *keys) {
      const auto& kt = *element.as_table();
      Reader kr(kt, "[dkim.key]", path);
      auth::KeySpec spec;
      spec.origin = origin(path, element);
      kr.string("name", spec.name);
      kr.string("domain", spec.domain);
      kr.string("selector", spec.selector);
      kr.string("private_key", spec.private_key_path);
      bool generate = false;
      kr.boolean("generate", generate);
      std::string algorithm = "rsa-2048";
      kr.string("algorithm", algorithm);
      if (const auto* node = kt.get("algorithm")) {
        if (!generate) kr.fail(*node, "algorithm", "only used with generate = true");
        if (!auth::parse_key_algorithm(algorithm))
          kr.fail(*node, "algorithm", "expected \"rsa-2048\", \"rsa-3072\" or \"ed25519\"");
      }
      if (generate) spec.generate = auth::parse_key_algorithm(algorithm);
      kr.finish();  // a misspelt key explains a missing one: report it first
      for (const char* required : {"name", "domain", "selector", "private_key"}) {
        if (!kt.get(required)) kr.fail(element, "", std::string("missing '") + required + "'");
      }
      spec.private_key_path = resolve_path(path, spec.private_key_path);
      d.keys.push_back(std::move(spec));
    }
  }
  if (const auto* rules = tables(r, "dkim", "sign")) {
    for (const auto& element : *rules) {
      const auto& st = *element.as_table();
      Reader sr(st, "[dkim.sign]", path);
      auth::SigningRule rule;
      rule.origin = origin(path, element);
      std::string from;
      sr.string("from", from);
      if (!st.get("from")) sr.fail(element, "", "missing 'from'");
      auto pattern = auth::FromPattern::parse(from);
      if (!pattern) sr.fail(*st.get("from"), "from", pattern.error().detail);
      rule.from = *pattern;
      sr.strings("keys", rule.keys, false);
      if (!st.get("keys")) sr.fail(element, "", "missing 'keys'");
      std::string on_error;
      sr.string("on_error", on_error);
      if (const auto* node = st.get("on_error")) {
        auto parsed = auth::parse_on_error(on_error);
        if (!parsed) sr.fail(*node, "on_error", "expected \"fail-closed\" or \"send-unsigned\"");
        rule.on_error = *parsed;
      }
      std::string identity;
      sr.string("identity", identity);
      if (!identity.empty()) rule.identity = identity;
      sr.finish();
      d.rules.push_back(std::move(rule));
    }
  }
  r.finish();

  // The OpenDKIM files come after the TOML entries: first match wins, so a
  // [[dkim.sign]] rule can override a SigningTable line.
  if (!d.opendkim_key_table.empty()) {
    d.opendkim_key_table = resolve_table_path(path, d.opendkim_key_table);
    auto keys = auth::load_opendkim_key_table(d.opendkim_key_table);
    if (!keys) r.fail(*t.get("opendkim_key_table"), "opendkim_key_table", keys.error().detail);
    for (auto& k : *keys) d.keys.push_back(std::move(k));
  }
  if (!d.opendkim_signing_table.empty()) {
    d.opendkim_signing_table = resolve_table_path(path, d.opendkim_signing_table);
    auto rules = auth::load_opendkim_signing_table(d.opendkim_signing_table);
    if (!rules)
      r.fail(*t.get("opendkim_signing_table"), "opendkim_signing_table", rules.error().detail);
    for (auto& rule : *rules) d.rules.push_back(std::move(rule));
  }
}

constexpr std::array<const char*, 7> kVerdictNames{"none",     "neutral",   "pass",     "fail",
                                                   "softfail", "temperror", "permerror"};

// read_actions reads {fail = "reject", ...} keyed by SPF result names.
void read_actions(Reader& r, const std::string& section, const std::string& key,
                  const std::string& path, SpfActions& out) {
  const auto* node = r.find(key);
  if (!node) return;
  const auto* table = node->as_table();
  if (!table) r.fail(*node, key, "expected a table of result = action");
  Reader ar(*table, section + "." + key, path);
  for (std::size_t i = 0; i < kVerdictNames.size(); ++i) {
    std::string text;
    ar.string(kVerdictNames[i], text);
    if (const auto* n = table->get(kVerdictNames[i])) {
      auto action = parse_spf_action(text);
      if (!action)
        ar.fail(*n, kVerdictNames[i], "expected \"accept\", \"tag\", \"reject\" or \"tempfail\"");
      out[i] = action;
    }
  }
  ar.finish();
}

void read_spf(const toml::table& t, const std::string& path, SpfConfig& spf) {
  Reader r(t, "spf", path);
  r.choice("mode", spf.mode,
           {{"off", SpfMode::Off}, {"tag", SpfMode::Tag}, {"enforce", SpfMode::Enforce}});
  r.choice("ip", spf.ip, {{"client", SpfIpSource::Client}, {"egress", SpfIpSource::Egress}});
  r.strings("egress_ips", spf.egress_ips_text, true,
            [](const std::string& v) -> std::optional<std::string> {
              if (!net::parse_ip(v)) return "'" + v + "' is not an IP address";
              return std::nullopt;
            });
  for (const auto& text : spf.egress_ips_text)
    spf.egress_ips.push_back(net::unmap(*net::parse_ip(text)));
  if (spf.ip == SpfIpSource::Egress && spf.egress_ips.empty() && spf.mode != SpfMode::Off) {
    r.fail(*t.get("ip"), "ip",
           "\"egress\" needs egress_ips, the addresses your upstream sends from");
  }
  r.boolean("helo_check", spf.helo_check);
  read_actions(r, "spf", "actions", path, spf.actions);
  if (const auto* array = tables(r, "spf", "override")) {
    for (const auto& element : *array) {
      const auto& ot = *element.as_table();
      Reader orr(ot, "[spf.override]", path);
      SpfOverride o;
      o.origin = origin(path, element);
      orr.string("domain", o.domain);
      if (o.domain.empty()) orr.fail(element, "", "missing 'domain'");
      o.domain = auth::ascii_lower(o.domain);
      if (ot.get("mode")) {
        SpfMode mode = SpfMode::Off;
        orr.choice("mode", mode,
                   {{"off", SpfMode::Off}, {"tag", SpfMode::Tag}, {"enforce", SpfMode::Enforce}});
        o.mode = mode;
      }
      read_actions(orr, "spf.override", "actions", path, o.actions);
      orr.finish();
      spf.overrides.push_back(std::move(o));
    }
  }
  r.finish();
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

  static const std::set<std::string> kSections{"server", "upstream", "dkim",   "spf",
                                               "dns",    "log",      "metrics"};
  for (const auto& [key, node] : root) {
    if (!kSections.contains(std::string(key.str()))) {
      throw ConfigError(path + ":" + std::to_string(key.source().begin.line) +
                        ": unknown section '" + std::string(key.str()) + "'");
    }
  }

  if (const auto* t = section(root, "server", path)) {
    Reader r(*t, "server", path);
    read_server(r, config->server);
  }
  if (const auto* t = section(root, "upstream", path)) {
    Reader r(*t, "upstream", path);
    read_upstream(r, config->upstream);
    // An empty string means "not set", as in the effective config we print.
    if (const auto* node = t->get("auth_password_file");
        node && !config->upstream.auth_password_file.empty()) {
      config->upstream.auth_password_file = resolve_path(path, config->upstream.auth_password_file);
      config->upstream.password =
          read_secret_file(config->upstream.auth_password_file, path, *node);
      if (config->upstream.auth_username.empty())
        r.fail(*node, "auth_password_file", "needs auth_username");
    } else if (const auto* user = t->get("auth_username");
               user && !config->upstream.auth_username.empty()) {
      r.fail(*user, "auth_username", "needs auth_password_file");
    }
    if (const auto* node = t->get("ca_file"); node && !config->upstream.ca_file.empty()) {
      config->upstream.ca_file = resolve_path(path, config->upstream.ca_file);
      if (!fs::exists(config->upstream.ca_file))
        r.fail(*node, "ca_file", "'" + config->upstream.ca_file + "' does not exist");
    }
  }
  if (const auto* t = section(root, "dkim", path)) read_dkim(*t, path, config->dkim);
  if (const auto* t = section(root, "spf", path)) read_spf(*t, path, config->spf);
  if (const auto* t = section(root, "dns", path)) {
    Reader r(*t, "dns", path);
    auto& d = config->dns;
    r.strings("resolvers", d.resolvers, true,
              [](const std::string& v) -> std::optional<std::string> {
                auto hp = net::split_host_port(v, "53");
                if (!hp || !net::parse_ip(hp->host))
                  return "'" + v + "': expected an IP address with an optional port";
                return std::nullopt;
              });
    r.duration("timeout", d.timeout, std::chrono::milliseconds(100), std::chrono::minutes(5));
    r.string("trust_anchor_file", d.trust_anchor_file);
    if (!d.trust_anchor_file.empty()) d.trust_anchor_file = resolve_path(path, d.trust_anchor_file);
    r.finish();
  }
  if (const auto* t = section(root, "log", path)) {
    Reader r(*t, "log", path);
    r.choice("level", config->log.level,
             {{"debug", LogLevel::Debug},
              {"info", LogLevel::Info},
              {"warning", LogLevel::Warning},
              {"error", LogLevel::Error}});
    r.choice("format", config->log.format, {{"text", LogFormat::Text}, {"json", LogFormat::Json}});
    r.finish();
  }
  if (const auto* t = section(root, "metrics", path)) {
    Reader r(*t, "metrics", path);
    r.string("listen", config->metrics.listen);
    if (!config->metrics.listen.empty()) {
      if (auto problem = check_listen(config->metrics.listen))
        r.fail(*t->get("listen"), "listen", *problem);
    }
    r.finish();
  }

  auto& s = config->server;
  for (const auto& text_net : s.trusted_networks_text) {
    s.trusted_networks.push_back(*net::Cidr::parse(text_net));
  }
  for (const auto& text_net : s.proxy_networks_text) {
    s.proxy_networks.push_back(*net::Cidr::parse(text_net));
  }
  if (s.proxy_protocol && s.proxy_networks.empty()) {
    const auto* server = root.get("server")->as_table();
    throw ConfigError(
        path + ":" + std::to_string(server->get("proxy_protocol")->source().begin.line) +
        ": [server] proxy_protocol: needs proxy_networks, the addresses of your load balancers");
  }
  if (s.hostname.empty()) s.hostname = default_hostname();
  if (s.spool_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    s.spool_dir = (tmp && *tmp) ? tmp : "/tmp";
  } else {
    s.spool_dir = resolve_path(path, s.spool_dir);
  }
  for (auto& server : config->upstream.servers) {
    if (server.starts_with("maildir:")) server = "maildir:" + resolve_path(path, server.substr(8));
  }
  if (config->upstream.helo_name.empty()) config->upstream.helo_name = s.hostname;
  return config;
}

std::shared_ptr<const Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open the configuration file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_config(buffer.str(), path);
}

namespace {

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

const char* name(BareLineEndings v) {
  return v == BareLineEndings::Normalize ? "normalize" : "reject";
}
const char* name(TlsMode v) {
  switch (v) {
    case TlsMode::None:
      return "none";
    case TlsMode::Starttls:
      return "starttls";
    case TlsMode::Required:
      return "required";
    case TlsMode::Implicit:
      return "implicit";
  }
  return "?";
}
}  // namespace

bool ServerConfig::trusts(const net::IpAddress& ip) const {
  return std::any_of(trusted_networks.begin(), trusted_networks.end(),
                     [&](const net::Cidr& network) { return network.contains(ip); });
}

std::string describe_config(const Config& c) {
  std::ostringstream o;
  const auto& s = c.server;
  o << "# effective configuration of " << c.path << " (sha256 " << c.hash << ")\n";
  o << "[server]\n"
    << "listen = " << quoted_list(s.listen) << "\n"
    << "hostname = " << quoted(s.hostname) << "\n"
    << "trusted_networks = " << quoted_list(s.trusted_networks_text) << "\n"
    << "max_message_size = " << quoted(format_size(s.max_message_size)) << "\n"
    << "max_recipients = " << s.max_recipients << "\n"
    << "max_command_line_length = " << s.max_command_line_length << "\n"
    << "max_data_line_length = " << s.max_data_line_length << "\n"
    << "max_header_size = " << quoted(format_size(s.max_header_size)) << "\n"
    << "max_commands = " << s.max_commands << "\n"
    << "max_errors = " << s.max_errors << "\n"
    << "max_connections = " << s.max_connections << "\n"
    << "max_connections_per_ip = " << s.max_connections_per_ip << "\n"
    << "bare_line_endings = " << quoted(name(s.bare_line_endings)) << "\n"
    << "spool_memory = " << quoted(format_size(s.spool_memory)) << "\n"
    << "spool_dir = " << quoted(s.spool_dir) << "\n"
    << "command_timeout = " << quoted(format_duration(s.command_timeout)) << "\n"
    << "data_timeout = " << quoted(format_duration(s.data_timeout)) << "\n"
    << "threads = " << s.threads << "\n"
    << "drain_timeout = " << quoted(format_duration(s.drain_timeout)) << "\n"
    << "user = " << quoted(s.user) << "\n"
    << "proxy_protocol = " << (s.proxy_protocol ? "true" : "false") << "\n"
    << "proxy_networks = " << quoted_list(s.proxy_networks_text) << "\n";
  const auto& u = c.upstream;
  o << "\n[upstream]\n"
    << "servers = " << quoted_list(u.servers) << "\n"
    << "tls = " << quoted(name(u.tls)) << "\n"
    << "ca_file = " << quoted(u.ca_file) << "\n"
    << "verify_certificate = " << (u.verify_certificate ? "true" : "false") << "\n"
    << "server_name = " << quoted(u.server_name) << "\n"
    << "helo_name = " << quoted(u.helo_name) << "\n"
    << "auth_username = " << quoted(u.auth_username) << "\n"
    << "auth_password_file = " << quoted(u.auth_password_file) << "\n"
    << "xforward = " << (u.xforward ? "true" : "false") << "\n"
    << "connect_timeout = " << quoted(format_duration(u.connect_timeout)) << "\n"
    << "command_timeout = " << quoted(format_duration(u.command_timeout)) << "\n"
    << "data_timeout = " << quoted(format_duration(u.data_timeout)) << "\n"
    << "health_check_interval = " << quoted(format_duration(u.health_check_interval)) << "\n";
  const auto& d = c.dkim;
  o << "\n[dkim]\n"
    << "canonicalization = " << quoted(auth::to_string(d.canonicalization)) << "\n";
  if (!d.sign_headers.empty()) o << "sign_headers = " << quoted_list(d.sign_headers) << "\n";
  if (d.oversign_headers_set) o << "oversign_headers = " << quoted_list(d.oversign_headers) << "\n";
  o << "oversign_absent = " << (d.oversign_absent ? "true" : "false") << "\n"
    << "signature_lifetime = " << quoted(format_duration(d.signature_lifetime)) << "\n"
    << "allow_group_readable_keys = " << (d.allow_group_readable_keys ? "true" : "false") << "\n";
  o << "# " << d.keys.size() << " key(s), " << d.rules.size() << " signing rule(s)"
    << (d.opendkim_key_table.empty() ? "" : ", OpenDKIM tables included") << "\n";
  for (const auto& k : d.keys) {
    o << "\n[[dkim.key]]  # " << k.origin << "\n"
      << "name = " << quoted(k.name) << "\n"
      << "domain = " << quoted(k.domain) << "\n"
      << "selector = " << quoted(k.selector) << "\n"
      << "private_key = " << quoted(k.private_key_path) << "\n";
    if (k.generate) {
      o << "generate = true\n"
        << "algorithm = " << quoted(auth::to_string(*k.generate)) << "\n";
    }
  }
  for (const auto& rule : d.rules) {
    o << "\n[[dkim.sign]]  # " << rule.origin << "\n"
      << "from = " << quoted(rule.from.text()) << "\n"
      << "keys = " << quoted_list(rule.keys) << "\n"
      << "on_error = " << quoted(auth::to_string(rule.on_error)) << "\n";
    if (rule.identity) o << "identity = " << quoted(*rule.identity) << "\n";
  }
  const auto& spf = c.spf;
  o << "\n[spf]\n"
    << "mode = " << quoted(to_string(spf.mode)) << "\n"
    << "ip = " << quoted(spf.ip == SpfIpSource::Client ? "client" : "egress") << "\n"
    << "egress_ips = " << quoted_list(spf.egress_ips_text) << "\n"
    << "helo_check = " << (spf.helo_check ? "true" : "false") << "\n";
  auto actions_line = [&](const SpfActions& actions) {
    std::string line;
    for (std::size_t i = 0; i < actions.size(); ++i) {
      if (!actions[i]) continue;
      line += (line.empty() ? "" : ", ") + std::string(kVerdictNames[i]) + " = " +
              quoted(to_string(*actions[i]));
    }
    return "{ " + line + " }";
  };
  o << "actions = " << actions_line(spf.actions) << "\n";
  for (const auto& ov : spf.overrides) {
    o << "\n[[spf.override]]  # " << ov.origin << "\n"
      << "domain = " << quoted(ov.domain) << "\n";
    if (ov.mode) o << "mode = " << quoted(to_string(*ov.mode)) << "\n";
    o << "actions = " << actions_line(ov.actions) << "\n";
  }
  o << "\n[dns]\n"
    << "resolvers = " << quoted_list(c.dns.resolvers) << "\n"
    << "timeout = " << quoted(format_duration(c.dns.timeout)) << "\n"
    << "trust_anchor_file = " << quoted(c.dns.trust_anchor_file) << "\n";
  o << "\n[log]\n"
    << "level = " << quoted(to_string(c.log.level)) << "\n"
    << "format = " << quoted(c.log.format == LogFormat::Text ? "text" : "json") << "\n";
  o << "\n[metrics]\n"
    << "listen = " << quoted(c.metrics.listen) << "\n";
  return o.str();
}

}  // namespace stampd::proxy
