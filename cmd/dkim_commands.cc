#include "cmd/dkim_commands.h"

#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>

#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"
#include "auth/dkim/message_signer.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/verifier.h"
#include "net/unbound_resolver.h"
#include "proxy/config.h"
#include "proxy/runtime.h"
#include "proxy/stages/dkim_stage.h"

namespace stampd::cmd {

namespace {

std::string read_stdin() {
  std::cin >> std::noskipws;
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

bool write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

}  // namespace

std::string to_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    if (c == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) {
      out += "\r\n";
      continue;
    }
    out += c;
  }
  return out;
}

int cmd_genkey(const GenkeyArgs& args) {
  if (args.domain.empty() || args.selector.empty()) {
    std::cerr << "stampd genkey: --domain and --selector are required\n";
    return 2;
  }
  const auto algorithm = auth::parse_key_algorithm(args.algorithm);
  if (!algorithm) {
    std::cerr << "stampd genkey: --algorithm must be rsa-2048, rsa-3072 or ed25519\n";
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(args.dir, ec);
  if (ec) {
    std::cerr << "stampd genkey: cannot create '" << args.dir << "': " << ec.message() << "\n";
    return 1;
  }
  auto key = auth::generate_private_key(*algorithm);
  if (!key) {
    std::cerr << "stampd genkey: " << key.error().message() << "\n";
    return 1;
  }
  const std::string base = (std::filesystem::path(args.dir) / args.selector).string();
  if (auto written = auth::write_private_key_file(base + ".private", *key); !written) {
    std::cerr << "stampd genkey: " << written.error().message() << "\n";
    return 1;
  }
  const std::string record = auth::make_key_record(key->public_key());
  const std::string zone = auth::zone_file_line(args.selector, args.domain, record);
  if (!write_text_file(base + ".txt", zone + "\n")) {
    std::cerr << "stampd genkey: cannot write '" << base << ".txt'\n";
    return 1;
  }
  std::cout << "wrote " << base << ".private (mode 0600) and " << base << ".txt\n\n"
            << "1. Publish this TXT record in the DNS zone of " << args.domain << ":\n\n"
            << zone << "\n\n"
            << "2. Add the key and a rule to stampd.toml:\n\n"
            << "[[dkim.key]]\n"
            << "name = \"" << args.domain << "-" << args.selector << "\"\n"
            << "domain = \"" << args.domain << "\"\n"
            << "selector = \"" << args.selector << "\"\n"
            << "private_key = \"" << std::filesystem::absolute(base + ".private").string()
            << "\"\n\n"
            << "[[dkim.sign]]\n"
            << "from = \"*@" << args.domain << "\"\n"
            << "keys = [\"" << args.domain << "-" << args.selector << "\"]\n\n"
            << "3. Check it once the record is published: stampd dns-check -c stampd.toml\n";
  return 0;
}

namespace {

// kSignTimestampVariable fixes the t= of `stampd sign` (seconds since the
// epoch) instead of the clock. Not for users: the integration test that
// checks that `stampd sign` and the proxy sign alike gives it the proxy's t=.
constexpr const char* kSignTimestampVariable = "STAMPD_TEST_SIGN_TIMESTAMP";

// sign_timestamp is the t= for `stampd sign`: now, or the fixed time;
// nullopt when the variable is set to something else than seconds.
std::optional<std::int64_t> sign_timestamp() {
  const char* fixed = std::getenv(kSignTimestampVariable);
  if (fixed == nullptr) return static_cast<std::int64_t>(std::time(nullptr));
  const std::string_view text(fixed);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace

int cmd_sign(const std::string& config_path) {
  std::shared_ptr<const proxy::Runtime> runtime;
  try {
    runtime = proxy::build_runtime(proxy::load_config(config_path));
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  const auto timestamp = sign_timestamp();
  if (!timestamp) {
    std::cerr << "stampd sign: " << kSignTimestampVariable << " must be seconds since the epoch\n";
    return 2;
  }
  const std::string message = to_crlf(read_stdin());
  // The same signer as the proxy's DKIM stage, fed the whole message at once.
  auth::MessageSigner signer(
      runtime->signing_keys,
      std::make_shared<const auth::SignerSettings>(proxy::dkim_settings(runtime->config->dkim)));
  const auth::SplitMessage parts = auth::split_message(message);
  signer.header(parts.header, *timestamp);
  signer.body(parts.body);
  const auth::SigningOutcome outcome = signer.finish(*timestamp);
  if (outcome.is_signed()) {
    for (const auto& signature : outcome.signatures) std::cout << signature.field;
    std::cout << message;
    return 0;
  }
  if (outcome.fail_closed()) {
    std::cerr << "stampd sign: signing failed (" << outcome.rule->origin
              << " is fail-closed): " << outcome.detail << "\n";
    return 1;
  }
  std::cout << message;
  std::cerr << "stampd sign: not signed: "
            << (outcome.failed() ? "signing failed, rule says send-unsigned: " : "")
            << outcome.detail << "\n";
  return 0;
}

namespace {

int print_results(const std::vector<auth::SignatureResult>& results) {
  if (results.empty()) {
    std::cout << "none: the message has no DKIM-Signature\n";
    return 1;
  }
  bool all_pass = true;
  for (const auto& r : results) {
    std::cout << auth::to_string(r.status) << " d=" << r.domain << " s=" << r.selector
              << " a=" << r.algorithm;
    if (!r.identity.empty()) std::cout << " i=" << r.identity;
    if (!r.reason.empty()) std::cout << " (" << r.reason << ")";
    std::cout << "\n";
    all_pass = all_pass && r.status == auth::VerifyStatus::Pass;
  }
  return all_pass ? 0 : 1;
}

boost::asio::awaitable<std::vector<auth::SignatureResult>> verify_with_dns(
    std::string message, net::Resolver& resolver) {
  auth::VerifyOptions options;
  options.now = static_cast<std::int64_t>(std::time(nullptr));
  auto results = co_await auth::verify_message(std::move(message), resolver, options);
  co_return results;
}

}  // namespace

int cmd_verify(const std::string& key_file, const std::string& config_path) {
  const std::string message = to_crlf(read_stdin());
  auth::VerifyOptions options;
  options.now = static_cast<std::int64_t>(std::time(nullptr));
  if (!key_file.empty()) {
    std::ifstream in(key_file, std::ios::binary);
    if (!in) {
      std::cerr << "stampd verify: cannot read '" << key_file << "'\n";
      return 2;
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto record = auth::parse_public_key_text(text);
    if (!record) {
      std::cerr << "stampd verify: " << key_file << ": " << record.error().message() << "\n";
      return 2;
    }
    return print_results(auth::verify_message_with_key(message, *record, options));
  }
  net::UnboundOptions dns;
  if (!config_path.empty()) {
    try {
      auto config = proxy::load_config(config_path);
      dns.forwarders = config->dns.resolvers;
      dns.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config->dns.timeout);
      dns.trust_anchor_file = config->dns.trust_anchor_file;
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
  }
  boost::asio::io_context io;
  auto resolver = net::UnboundResolver::create(io.get_executor(), dns);
  if (!resolver) {
    std::cerr << "stampd verify: DNS: " << resolver.error().message() << "\n";
    return 2;
  }
  std::optional<std::vector<auth::SignatureResult>> results;
  boost::asio::co_spawn(io, verify_with_dns(message, **resolver),
                        [&](const std::exception_ptr& e, std::vector<auth::SignatureResult> r) {
                          if (!e) results = std::move(r);
                          io.stop();  // the resolver's reader would keep run() going
                        });
  io.run();
  if (!results) {
    std::cerr << "stampd verify: verification did not complete\n";
    return 2;
  }
  return print_results(*results);
}

}  // namespace stampd::cmd
