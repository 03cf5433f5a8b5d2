#include "proxy/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "proxy/runtime.h"

namespace stampd::proxy {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_config(text, "test.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsWithEmptyFile) {
  auto c = parse_config("", "test.toml");
  EXPECT_EQ(c->server.listen, std::vector<std::string>{"127.0.0.1:10027"});
  EXPECT_EQ(c->server.max_message_size, 50u << 20);
  EXPECT_EQ(c->server.trusted_networks.size(), 2u);
  EXPECT_EQ(c->upstream.tls, TlsMode::None);
  EXPECT_FALSE(c->server.hostname.empty());
  EXPECT_EQ(c->upstream.helo_name, c->server.hostname);
}

TEST(Config, ReadsValues) {
  auto c = parse_config(R"(
[server]
listen = ["127.0.0.1:2525", "[::1]:2525"]
hostname = "relay.example.com"
trusted_networks = ["10.0.0.0/8", "2001:db8::/32"]
max_message_size = "10MiB"
command_timeout = "1m30s"
bare_line_endings = "reject"

[upstream]
servers = ["mx1.example.com:25", "mx2.example.com:587"]
tls = "required"
)",
                        "/etc/stampd/stampd.toml");
  EXPECT_EQ(c->server.listen.size(), 2u);
  EXPECT_EQ(c->server.hostname, "relay.example.com");
  EXPECT_EQ(c->server.max_message_size, 10u << 20);
  EXPECT_EQ(c->server.command_timeout, std::chrono::seconds(90));
  EXPECT_EQ(c->server.bare_line_endings, BareLineEndings::Reject);
  EXPECT_TRUE(c->server.trusted_networks[0].contains(*net::parse_ip("10.1.2.3")));
  EXPECT_TRUE(c->server.trusted_networks[1].contains(*net::parse_ip("2001:db8::1")));
  EXPECT_EQ(c->upstream.tls, TlsMode::Required);
  EXPECT_EQ(c->upstream.servers[1], "mx2.example.com:587");
  auto m = parse_config("[upstream]\nservers = [\"maildir:out\"]\n", "/etc/stampd/stampd.toml");
  EXPECT_EQ(m->upstream.servers[0], "maildir:/etc/stampd/out");  // relative to the file
}

TEST(Config, ErrorsNameFileAndLine) {
  EXPECT_EQ(error_of("[server]\nlisten = [\"127.0.0.1:1\"]\nmax_size = 5\n"),
            "test.toml:3: [server]: unknown key 'max_size'");
  EXPECT_EQ(error_of("[server]\n\nmax_message_size = \"lots\"\n"),
            "test.toml:3: [server] max_message_size: expected a size like \"50MiB\", \"64KiB\" or "
            "a byte count");
  EXPECT_EQ(
      error_of("[server]\ncommand_timeout = \"5 minutes\"\n"),
      "test.toml:2: [server] command_timeout: expected a duration like \"30s\", \"5m\" or \"1h\"");
  EXPECT_EQ(error_of("[server]\ntrusted_networks = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1/8\",\n]\n"),
            "test.toml:4: [server] trusted_networks: '10.0.0.1/8' has host bits set below the "
            "prefix length");
  EXPECT_EQ(error_of("[upstream]\ntls = \"maybe\"\n"),
            "test.toml:2: [upstream] tls: expected one of \"none\", \"starttls\", \"required\", "
            "\"implicit\"");
  EXPECT_EQ(error_of("[bogus]\nx = 1\n"), "test.toml:1: unknown section 'bogus'");
  EXPECT_EQ(error_of("[server]\nmax_recipients = 0\n"),
            "test.toml:2: [server] max_recipients: must be between 1 and 100000");
  EXPECT_EQ(
      error_of("[server]\nlisten = [\"mail.example.com:25\"]\n"),
      "test.toml:2: [server] listen: 'mail.example.com:25': listen on an IP address, not a name");
  EXPECT_EQ(error_of("[server]\nlisten = []\n"), "test.toml:2: [server] listen: must not be empty");
  EXPECT_EQ(error_of("[upstream]\nauth_username = \"x\"\n"),
            "test.toml:2: [upstream] auth_username: needs auth_password_file");
  EXPECT_EQ(error_of("server = 5\n"), "test.toml:1: 'server' must be a table ([server])");
  EXPECT_EQ(error_of("[server]\nhostname = 5\n"),
            "test.toml:2: [server] hostname: expected a string");
}

TEST(Config, DkimSpfAndDnsErrorsNameFileAndLine) {
  EXPECT_EQ(
      error_of("[dkim]\ncanonicalization = \"loose\"\n"),
      "test.toml:2: [dkim] canonicalization: expected \"relaxed/relaxed\", \"relaxed/simple\", "
      "\"simple/relaxed\" or \"simple/simple\"");
  EXPECT_EQ(error_of("[dkim]\nkey = 5\n"),
            "test.toml:2: [dkim] key: write each entry as a [[dkim.key]] table");
  EXPECT_EQ(error_of("[[dkim.key]]\nname = \"a\"\ndomain = \"example.com\"\nselector = \"s\"\n"),
            "test.toml:1: [[dkim.key]]: missing 'private_key'");
  EXPECT_EQ(error_of("[[dkim.key]]\nname = \"a\"\ncolour = 1\n"),
            "test.toml:3: [[dkim.key]]: unknown key 'colour'");
  EXPECT_TRUE(error_of("[[dkim.sign]]\nfrom = \"*@*@x\"\nkeys = [\"a\"]\n")
                  .starts_with("test.toml:2: [[dkim.sign]] from: "));
  EXPECT_EQ(
      error_of("[[dkim.sign]]\nfrom = \"*@example.com\"\nkeys = [\"a\"]\non_error = \"ignore\"\n"),
      "test.toml:4: [[dkim.sign]] on_error: expected \"fail-closed\" or \"send-unsigned\"");
  EXPECT_EQ(error_of("[spf]\nmode = \"strict\"\n"),
            "test.toml:2: [spf] mode: expected one of \"off\", \"tag\", \"enforce\"");
  EXPECT_EQ(
      error_of("[spf]\nmode = \"tag\"\nip = \"egress\"\n"),
      "test.toml:3: [spf] ip: \"egress\" needs egress_ips, the addresses your upstream sends from");
  EXPECT_EQ(error_of("[spf]\negress_ips = [\"192.0.2.300\"]\n"),
            "test.toml:2: [spf] egress_ips: '192.0.2.300' is not an IP address");
  EXPECT_EQ(
      error_of("[spf.actions]\nfail = \"drop\"\n"),
      "test.toml:2: [spf.actions] fail: expected \"accept\", \"tag\", \"reject\" or \"tempfail\"");
  EXPECT_EQ(error_of("[dns]\nresolvers = [\"dns.example:53\"]\n"),
            "test.toml:2: [dns] resolvers: 'dns.example:53': expected an IP address with an "
            "optional port");
  EXPECT_EQ(error_of("[server]\nproxy_protocol = true\n"),
            "test.toml:2: [server] proxy_protocol: needs proxy_networks, the addresses of your "
            "load balancers");
}

TEST(Config, KeyReplacementAndRetirement) {
  const std::string keys =
      "[[dkim.key]]\nname = \"old\"\ndomain = \"example.com\"\nselector = \"a\"\n"
      "private_key = \"a.pem\"\n"
      "[[dkim.key]]\nname = \"new\"\ndomain = \"example.com\"\nselector = \"b\"\n"
      "private_key = \"b.pem\"\nreplaces = \"old\"\n";
  const auto retire = [&](const std::string& when) {
    return parse_config(keys + "retire_after = " + when + "\n", "/x/test.toml");
  };
  const auto c = retire("2027-01-31");
  ASSERT_EQ(c->dkim.keys.size(), 2u);
  EXPECT_EQ(c->dkim.keys[1].replaces, "old");
  EXPECT_EQ(c->dkim.keys[1].retire_after, 1801353600);  // 2027-01-31T00:00:00Z
  EXPECT_FALSE(c->dkim.keys[0].retire_after.has_value());
  EXPECT_EQ(retire("2027-01-31T12:30:00Z")->dkim.keys[1].retire_after, 1801353600 + 45000);
  EXPECT_EQ(retire("2027-01-31T12:30:00+02:00")->dkim.keys[1].retire_after,
            1801353600 + 45000 - 7200);
  EXPECT_EQ(retire("2027-01-31T12:30:00")->dkim.keys[1].retire_after, 1801353600 + 45000);
  // Printed and read back the same.
  const auto again = parse_config(describe_config(*retire("2027-01-31T12:30:00Z")), "/x/test.toml");
  EXPECT_EQ(again->dkim.keys[1].retire_after, 1801353600 + 45000);
  EXPECT_EQ(again->dkim.keys[1].replaces, "old");
  EXPECT_EQ(error_of(keys + "retire_after = \"next year\"\n"),
            "test.toml:12: [[dkim.key]] retire_after: expected a TOML date or date-time, such as "
            "2027-01-31 or 2027-01-31T12:00:00Z");
  EXPECT_EQ(error_of("[[dkim.key]]\nreplaces = 3\n"),
            "test.toml:2: [[dkim.key]] replaces: expected a string");
}

TEST(Config, ArcSection) {
  const std::string key =
      "[[dkim.key]]\nname = \"k\"\ndomain = \"example.com\"\nselector = \"a\"\n"
      "private_key = \"a.pem\"\n"
      "[[dkim.sign]]\nfrom = \"*\"\nkeys = [\"k\"]\narc_seal = \"k\"\n";
  const auto c = parse_config("[server]\nhostname = \"mx.example.com\"\n" + key, "/x/test.toml");
  EXPECT_EQ(c->dkim.rules.at(0).arc_seal, "k");
  EXPECT_EQ(c->arc.authserv_id, "mx.example.com");  // [server] hostname
  EXPECT_EQ(c->arc.max_sets, 10u);
  const auto d = parse_config(key + "[arc]\nauthserv_id = \"relay.example.com\"\nmax_sets = 3\n",
                              "/x/test.toml");
  EXPECT_EQ(d->arc.authserv_id, "relay.example.com");
  EXPECT_EQ(d->arc.max_sets, 3u);
  // Printed and read back the same.
  const auto again = parse_config(describe_config(*d), "/x/test.toml");
  EXPECT_EQ(again->dkim.rules.at(0).arc_seal, "k");
  EXPECT_EQ(again->arc.max_sets, 3u);
  EXPECT_EQ(error_of("[arc]\nmax_sets = 51\n"),
            "test.toml:2: [arc] max_sets: must be between 1 and 50");
  EXPECT_EQ(error_of("[arc]\nauthserv_id = \"a b\"\n"),
            "test.toml:2: [arc] authserv_id: expected a host name (no spaces, ';', '(' or quotes)");
  EXPECT_EQ(error_of("[arc]\nseal = true\n"), "test.toml:2: [arc]: unknown key 'seal'");
}

TEST(Config, SpfPolicyFromConfig) {
  auto c = parse_config(R"(
[spf]
mode = "enforce"
[spf.actions]
softfail = "reject"
[[spf.override]]
domain = "*.legacy.example"
mode = "tag"
)",
                        "test.toml");
  using auth::SpfVerdict;
  EXPECT_EQ(spf_decide(c->spf, "example.com", SpfVerdict::Fail), SpfAction::Reject);
  EXPECT_EQ(spf_decide(c->spf, "example.com", SpfVerdict::SoftFail), SpfAction::Reject);
  EXPECT_EQ(spf_decide(c->spf, "example.com", SpfVerdict::TempError), SpfAction::Tempfail);
  EXPECT_EQ(spf_decide(c->spf, "example.com", SpfVerdict::Pass), SpfAction::Tag);
  EXPECT_EQ(spf_decide(c->spf, "a.legacy.example", SpfVerdict::Fail), SpfAction::Tag);
  EXPECT_EQ(spf_decide(c->spf, "legacy.example", SpfVerdict::Fail), SpfAction::Reject);
}

TEST(Config, TomlSyntaxErrorsNameTheLine) {
  const std::string e = error_of("[server]\nlisten = [\"a\"\n\n");
  // toml++ reports where it noticed: the end of the file here.
  EXPECT_TRUE(e.starts_with("test.toml:3: ")) << e;
}

TEST(Config, MissingFile) {
  try {
    load_config("/nonexistent/stampd.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/stampd.toml"), std::string::npos);
  }
}

TEST(Config, DescribeRoundTrips) {
  auto c = parse_config("[server]\nmax_message_size = \"10MiB\"\n", "/x/test.toml");
  auto again = parse_config(describe_config(*c), "/x/test.toml");
  EXPECT_EQ(describe_config(*again).substr(describe_config(*again).find('\n')),
            describe_config(*c).substr(describe_config(*c).find('\n')));
}

// Every example in etc/ must load, so the examples cannot rot.
TEST(Config, EveryFileInEtcLoads) {
  namespace fs = std::filesystem;
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(STAMPD_SOURCE_DIR) / "etc")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    std::shared_ptr<const Config> c;
    ASSERT_NO_THROW(c = load_config(entry.path().string()));
    ASSERT_NO_THROW(build_runtime(c));
    ++loaded;
  }
  EXPECT_GE(loaded, 1);
}

// Documented is what etc/stampd.toml shows of one key: a line "key = value"
// (or "# key = value", commented out), or the header "[a.b]" / "[[a.b]]"
// (or commented out) that shows key b of section a.
struct Documented {
  int line = 0;
  std::string section, name;
  std::string value;           // empty for a header
  std::string stated_default;  // from a trailing "# default: ..."
};

std::vector<Documented> documented_keys(const std::string& path) {
  static const std::regex kHeader(R"(^(# ?)?\[\[?([a-z_.]+)\]\]?\s*$)");
  static const std::regex kKey(R"(^(# ?)?([a-z_]+) = (.*?)(\s+# default: (.*))?$)");
  std::ifstream in(path);
  std::vector<Documented> out;
  std::string active, commented, text;  // the sections of active and of commented lines
  for (int line = 1; std::getline(in, text); ++line) {
    std::smatch m;
    if (std::regex_match(text, m, kHeader)) {
      const std::string table = m[2];
      if (m[1].matched) {
        commented = table;
      } else {
        active = table;
        commented.clear();
      }
      const auto dot = table.rfind('.');
      out.push_back({line, dot == std::string::npos ? "" : table.substr(0, dot),
                     table.substr(dot == std::string::npos ? 0 : dot + 1), "", ""});
    } else if (std::regex_match(text, m, kKey)) {
      const bool in_comment = m[1].matched && !commented.empty();
      out.push_back({line, in_comment ? commented : active, m[2], m[3], m[5]});
    }
  }
  return out;
}

// unset is a default that means "not set": the line shown is an example.
bool unset(const std::string& value) {
  return std::regex_match(value, std::regex(R"(""|\[\]|\{\s*\})"));
}

// The annotated reference shows every key the reader declares, and only
// those, with the declared default wherever it shows one.
TEST(ConfigKeys, MatchTheAnnotatedReference) {
  const auto declared = config_keys();
  const auto documented = documented_keys(STAMPD_SOURCE_DIR "/etc/stampd.toml");
  ASSERT_GT(declared.size(), 50u);
  for (const auto& d : documented) {
    SCOPED_TRACE("etc/stampd.toml:" + std::to_string(d.line));
    const auto key = std::find_if(declared.begin(), declared.end(), [&](const ConfigKey& k) {
      return k.section == d.section && k.name == d.name;
    });
    ASSERT_TRUE(key != declared.end()) << "[" << d.section << "] " << d.name << " is not declared";
    if (!d.stated_default.empty()) {
      EXPECT_EQ(d.stated_default, key->default_value.value_or("(none)")) << d.name;
    } else if (!d.value.empty() && key->default_value && !unset(*key->default_value)) {
      EXPECT_EQ(d.value, *key->default_value)
          << d.name << ": not the default; add \"  # default: " << *key->default_value << "\"";
    }
  }
  for (const auto& key : declared) {
    const bool shown = std::any_of(documented.begin(), documented.end(), [&](const Documented& d) {
      return d.section == key.section && d.name == key.name;
    });
    EXPECT_TRUE(shown) << "etc/stampd.toml does not show [" << key.section << "] " << key.name
                       << "; e.g.\n# " << key.about << "\n# " << key.name << " = "
                       << key.default_value.value_or("...");
    EXPECT_FALSE(key.about.empty()) << key.name;
    EXPECT_EQ(key.about.find('\n'), std::string::npos) << key.name;
    EXPECT_FALSE(key.required && key.default_value) << key.name;
  }
}

// Each declared default is a value the reader accepts and prints as it is.
TEST(ConfigKeys, DefaultsReadBack) {
  for (const auto& key : config_keys()) {
    if (key.section.empty() || key.section.find('.') != std::string::npos || !key.default_value ||
        unset(*key.default_value))
      continue;
    const std::string line = key.name + " = " + *key.default_value + "\n";
    std::shared_ptr<const Config> c;
    ASSERT_NO_THROW(c = parse_config("[" + key.section + "]\n" + line, "/x/test.toml")) << line;
    const auto text = describe_config(*c);
    const auto begin = text.find("[" + key.section + "]\n");
    ASSERT_NE(begin, std::string::npos);
    const auto block = text.substr(begin, text.find("\n[", begin) - begin);
    EXPECT_NE(block.find("\n" + line), std::string::npos) << key.section << " " << line;
  }
}

}  // namespace
}  // namespace stampd::proxy
