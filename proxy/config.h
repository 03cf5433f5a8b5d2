// config.h: the whole effective configuration as plain data, read once from
// stampd.toml and then shared read-only (std::shared_ptr<const Config>) by all
// sessions. A member initializer here is the key's default; config.cc holds
// the one table of keys that reads, checks and prints them (and toml++).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "auth/dkim/canonicalization.h"
#include "auth/dkim/keyring.h"
#include "auth/dkim/signing_rules.h"
#include "net/cidr.h"
#include "net/host_port.h"
#include "obs/log.h"
#include "proxy/config_values.h"
#include "proxy/stages/spf_policy.h"

namespace stampd::proxy {

// ConfigError carries "file:line: reason"; thrown only while loading.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class BareLineEndings { Normalize, Reject };
// SelfVerify is [dkim] self_verify: which signed messages stampd verifies
// itself before they leave (off, one in kSelfVerifySampleEvery, or all).
enum class SelfVerify { Off, Sample, All };
inline constexpr unsigned kSelfVerifySampleEvery = 100;
enum class TlsMode { None, Starttls, Required, Implicit };
using obs::LogFormat;
using obs::LogLevel;

// CertificateConfig is one [[server.certificate]]: a chain and its key (PEM).
struct CertificateConfig {
  std::string origin;  // "file:line" of its table, for errors
  std::string chain_file;
  std::string key_file;
};

struct ServerConfig {
  std::vector<std::string> listen{"127.0.0.1:10027"};
  std::string hostname;  // default: the machine's host name
  std::vector<net::Cidr> trusted_networks;
  std::vector<std::string> trusted_networks_text{"127.0.0.0/8", "::1/128"};
  // trusts tells whether a client at ip may relay (it is in trusted_networks).
  bool trusts(const net::IpAddress& ip) const;
  std::uint64_t max_message_size = 50ULL << 20;
  std::size_t max_recipients = 1000;
  std::size_t max_command_line_length = 2048;  // RFC 5321 §4.5.3.1.4 minimum is 512
  std::size_t max_data_line_length = 998;      // RFC 5322 §2.1.1, without CRLF
  std::uint64_t max_header_size = 1ULL << 20;
  std::size_t max_commands = 10000;  // per connection
  std::size_t max_errors = 20;       // bad commands before we hang up
  std::size_t max_connections = 1000;
  std::size_t max_connections_per_ip = 100;
  BareLineEndings bare_line_endings = BareLineEndings::Normalize;
  std::uint64_t spool_memory = 8ULL << 20;             // per message, then a temporary file
  std::uint64_t spool_memory_total = 128ULL << 20;     // all messages together, then their files
  std::string spool_dir;                               // default: $TMPDIR or /tmp
  Duration command_timeout = std::chrono::minutes(5);  // RFC 5321 §4.5.3.2.7
  Duration data_timeout = std::chrono::minutes(5);
  // A message must come at least this fast on average (octets a second,
  // after a first data_timeout; 0: off), as Postfix's smtpd_min_data_rate.
  std::uint64_t min_data_rate = 500;
  unsigned threads = 0;                               // 0: one per CPU core
  Duration drain_timeout = std::chrono::seconds(30);  // SIGTERM: time for sessions to finish
  std::string user;  // set: drop root privileges to this user after binding
  // PROXY protocol (v1 and v2) from TCP load balancers in proxy_networks:
  // the client address in it replaces the balancer's for everything else.
  bool proxy_protocol = false;
  std::vector<net::Cidr> proxy_networks;
  std::vector<std::string> proxy_networks_text;
  // TLS in: STARTTLS (RFC 3207) is offered on every listen address when a
  // certificate is configured; listen_tls addresses speak TLS from the first
  // byte (RFC 8314). The first certificate is the default; the others are
  // chosen by the name the client asks for (SNI).
  std::vector<std::string> listen_tls;
  bool require_tls = false;  // MAIL refused with 530 5.7.0 until STARTTLS
  Duration tls_handshake_timeout = std::chrono::seconds(30);
  std::vector<CertificateConfig> certificates;
};

struct UpstreamConfig {
  std::vector<std::string> servers{"127.0.0.1:10026"};
  TlsMode tls = TlsMode::None;
  std::string ca_file;  // empty: the system store
  bool verify_certificate = true;
  std::string server_name;  // SNI and certificate name; default: the server's host
  std::string helo_name;    // default: server.hostname
  std::string auth_username;
  std::string auth_password_file;
  std::string password;  // read from auth_password_file; never printed
  bool xforward = true;  // pass the original client on when the upstream offers XFORWARD
  bool xclient = false;  // name it with XCLIENT instead where offered (Postfix submission)
  Duration connect_timeout = std::chrono::seconds(30);
  Duration command_timeout = std::chrono::minutes(5);
  Duration data_timeout = std::chrono::minutes(10);           // RFC 5321 §4.5.3.2.6
  Duration health_check_interval = std::chrono::seconds(30);  // 0: no probe, sessions only
  // Connections kept between transactions: at most this many open in all
  // (below Postfix's default process limit of 100), each closed after idle_timeout.
  std::size_t max_connections = 50;
  Duration idle_timeout = std::chrono::seconds(60);
};

struct DkimConfig {
  auth::CanonicalizationPair canonicalization{auth::Canonicalization::Relaxed,
                                              auth::Canonicalization::Relaxed};
  std::vector<std::string> sign_headers;      // empty: the default list
  std::vector<std::string> oversign_headers;  // empty: the default list
  bool oversign_headers_set = false;          // oversign_headers = [] means none
  bool oversign_absent = false;
  Duration signature_lifetime{};  // x= = t= + this; zero: no x=
  bool allow_group_readable_keys = false;
  std::string opendkim_key_table;        // path
  std::string opendkim_signing_table;    // "refile:path" or path
  std::vector<auth::KeySpec> keys;       // [[dkim.key]], then the KeyTable's
  std::vector<auth::SigningRule> rules;  // [[dkim.sign]], then the SigningTable's
  // must_sign: From domains never relayed unsigned ("*.d" is d's subdomains).
  std::vector<std::string> must_sign;
  SelfVerify self_verify = SelfVerify::Off;
  // How often the daemon checks that each key's DNS record is its public half; zero: never.
  Duration dns_check_interval = std::chrono::minutes(15);
};

// ArcConfig is [arc]: what every ARC set we add shares. Which mail is
// sealed, and with which key, is per [[dkim.sign]] rule (arc_seal).
struct ArcConfig {
  // authserv_id names our ADMD in the ARC-Authentication-Results; the
  // Authentication-Results fields bearing it are copied in. Default: [server] hostname.
  std::string authserv_id;
  std::size_t max_sets = 10;  // ARC sets examined per message; more is a failed chain
};

struct DnsConfig {
  std::vector<std::string> resolvers;          // "127.0.0.1:5353" style; empty: /etc/resolv.conf
  Duration timeout = std::chrono::seconds(5);  // per query
  std::string trust_anchor_file;               // set: DNSSEC validation with these anchors
};

struct LogConfig {
  LogLevel level = LogLevel::Info;
  LogFormat format = LogFormat::Text;
};

struct MetricsConfig {
  std::string listen = "127.0.0.1:9464";  // empty: no metrics endpoint
};

// AuthUser is one [[auth.user]]: the sender addresses a login may use, in
// MAIL FROM and in the From: header (so it cannot get another domain signed).
struct AuthUser {
  std::string origin;  // "file:line", for messages
  std::string name;
  std::vector<auth::FromPattern> senders;
};

struct AuthConfig {
  std::string users_file;  // "user:crypt-hash" lines; empty: no AUTH
  // Listen addresses (as in [server] listen) where AUTH is allowed without
  // TLS: loopback only, where no password crosses a network.
  std::vector<std::string> plaintext_listen;
  Duration failure_delay = std::chrono::seconds(1);  // before each 535
  std::size_t max_failures = 5;                      // per client IP and per user, in the window
  Duration failure_window = std::chrono::minutes(15);
  std::vector<AuthUser> users;
  // find_user returns the [[auth.user]] named name, or nullptr.
  const AuthUser* find_user(std::string_view name) const;
};

struct Config {
  std::string path;  // the file it came from
  std::string hash;  // SHA-256 of the file's bytes, for the reload metric
  ServerConfig server;
  UpstreamConfig upstream;
  DkimConfig dkim;
  ArcConfig arc;
  SpfConfig spf;
  AuthConfig auth;
  DnsConfig dns;
  LogConfig log;
  MetricsConfig metrics;
};

// load_config reads, parses and validates path; throws ConfigError.
std::shared_ptr<const Config> load_config(const std::string& path);
// parse_config does the same for text that claims to come from path.
std::shared_ptr<const Config> parse_config(const std::string& text, const std::string& path);
// describe_config prints the effective configuration as TOML (no secrets).
std::string describe_config(const Config& config);

// ConfigKey is one key of stampd.toml as the reader declares it.
struct ConfigKey {
  std::string section;  // "server", "dkim.key", ...; "" for the sections themselves
  std::string name;
  std::string about;  // one line
  // default_value is the default as TOML ("\"50MiB\"", "[]"); none for a
  // required key or a table. "" and [] mean "not set".
  std::optional<std::string> default_value;
  bool required = false;
};

// config_keys lists every key parse_config reads, each section's after the
// key that opens it ([[spf.override]] actions share [spf.actions]'s keys).
std::vector<ConfigKey> config_keys();

}  // namespace stampd::proxy
