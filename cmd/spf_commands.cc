#include "cmd/spf_commands.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>

#include "auth/dkim/key_record.h"
#include "auth/dkim/published_key.h"
#include "auth/dkim/verifier.h"
#include "auth/mail_address.h"
#include "auth/spf/egress.h"
#include "auth/spf/evaluator.h"
#include "auth/spf/suggest.h"
#include "cmd/dmarc_check.h"
#include "cmd/rotation_status.h"
#include "cmd/run_to_completion.h"
#include "net/unbound_resolver.h"
#include "proxy/config.h"
#include "proxy/runtime.h"

namespace stampd::cmd {

namespace asio = boost::asio;

namespace {

net::UnboundOptions dns_options(const proxy::Config* config) {
  net::UnboundOptions options;
  if (config) {
    options.forwarders = config->dns.resolvers;
    options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config->dns.timeout);
    options.trust_anchor_file = config->dns.trust_anchor_file;
  }
  return options;
}

// run_with_resolver runs work(resolver) to completion on a private event loop.
template <class T, class Work>
std::optional<T> run_with_resolver(const proxy::Config* config, Work work, std::string& error) {
  asio::io_context io;
  auto resolver = net::UnboundResolver::create(io.get_executor(), dns_options(config));
  if (!resolver) {
    error = "DNS: " + resolver.error().message();
    return std::nullopt;
  }
  return run_to_completion<T>(io, work(**resolver), error);
}

asio::awaitable<auth::SpfResult> spf_check(net::Resolver& resolver, net::IpAddress ip,
                                           std::string mail_from, std::string helo) {
  auth::SpfOptions options;
  options.record_trace = true;
  auto result =
      co_await auth::check_mail_from(resolver, ip, std::move(mail_from), std::move(helo), options);
  co_return result;
}

}  // namespace

int cmd_spf(const SpfArgs& args) {
  const auto ip = net::parse_ip(args.ip);
  if (!ip) {
    std::cerr << "stampd spf: --ip must be an IPv4 or IPv6 address\n";
    return 2;
  }
  if (args.mail_from.empty() && args.helo.empty()) {
    std::cerr << "stampd spf: give --mail-from ADDR (or --helo NAME for the null sender)\n";
    return 2;
  }
  std::shared_ptr<const proxy::Config> config;
  if (!args.config_path.empty()) {
    try {
      config = proxy::load_config(args.config_path);
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
  }
  const std::string helo = args.helo.empty() ? "unknown" : args.helo;
  std::string error;
  auto result = run_with_resolver<auth::SpfResult>(
      config.get(),
      [&](net::Resolver& resolver) {
        return spf_check(resolver, net::unmap(*ip), args.mail_from, helo);
      },
      error);
  if (!result) {
    std::cerr << "stampd spf: " << error << "\n";
    return 2;
  }
  std::cout << "result: " << auth::to_string(result->verdict) << "\n"
            << "summary: " << auth::summarize(*result) << "\n"
            << "identity: " << result->sender << " (domain " << result->domain << ")\n";
  if (!result->record.empty()) std::cout << "record: " << result->record << "\n";
  if (!result->explanation.empty()) std::cout << "explanation: " << result->explanation << "\n";
  if (!result->problem.empty()) std::cout << "problem: " << result->problem << "\n";
  if (!result->decided_by.empty()) {
    std::cout << "decided by: " << result->decided_by << " in " << result->decided_in << "\n";
  }
  std::cout << "lookups: " << result->dns_terms << " DNS-querying terms (limit 10), "
            << result->void_lookups << " void lookups (limit 2), " << result->dns_queries
            << " queries\n"
            << "trace:\n"
            << auth::format_trace(result->trace);
  return result->verdict == auth::SpfVerdict::Pass ? 0 : 1;
}

namespace {

struct DnsCheckReport {
  std::vector<CheckLine> keys;
  std::vector<CheckLine> domains;
};

// signers_for lists the keys that sign mail From postmaster@domain (as the
// proxy's rules select them); a domain no rule covers is taken to be signed
// by the keys whose d= it is (a catch-all rule with those keys, say).
std::vector<DmarcSigner> signers_for(const auth::SigningKeys& keys, const std::string& domain) {
  std::vector<DmarcSigner> out;
  const auth::MailAddress from{"postmaster", domain};
  if (auto selection = keys.select(from, std::time(nullptr))) {
    for (const auto* key : selection->keys) out.push_back({key->spec.name, key->spec.domain});
  }
  if (out.empty()) {
    for (const auto& key : keys.keys()) {
      if (auth::ascii_lower(key.spec.domain) == domain)
        out.push_back({key.spec.name, key.spec.domain});
    }
  }
  return out;
}

// check_spf says whether every egress address passes SPF for a MAIL FROM in
// domain, and the record to publish if not.
asio::awaitable<CheckLine> check_spf(net::Resolver& resolver, std::vector<net::IpAddress> egress,
                                     std::string domain) {
  CheckLine check;
  const std::string label = "SPF " + domain + ": ";
  if (egress.empty()) {
    check.ok = true;
    check.text = label + "skipped: set [spf] egress_ips to the addresses your upstream sends from";
    co_return check;
  }
  auth::SpfOptions options;
  options.record_trace = false;
  auto egress_report =
      co_await auth::check_egress(resolver, egress, "postmaster@" + domain, domain, options);
  for (const auto& entry : egress_report.entries) {
    // temperror: the DNS did not answer; neither a verdict nor a record to suggest.
    if (entry.result.verdict == auth::SpfVerdict::TempError) {
      co_return unanswered_line(
          label, "SPF for " + entry.ip.to_string() + " is " + auth::summarize(entry.result));
    }
  }
  const auto unauthorized = egress_report.unauthorized();
  if (unauthorized.empty()) {
    check.ok = true;
    check.text = label + "ok: every egress address passes";
    co_return check;
  }
  std::ostringstream text;
  text << label << "FAIL: ";
  const char* separator = "";
  for (const auto& entry : egress_report.entries) {
    if (entry.result.verdict == auth::SpfVerdict::Pass) continue;
    text << separator << entry.ip.to_string() << " gets " << auth::summarize(entry.result);
    separator = "; ";
  }
  const auto suggestion = auth::suggest_spf_record(egress_report);
  text << "\n    publish: " << domain << ". IN TXT " << auth::txt_zone_data(suggestion.record);
  if (!suggestion.note.empty()) text << "\n    (" << suggestion.note << ")";
  check.text = text.str();
  co_return check;
}

// judge_key says what the TXT records at the key's name (answer) mean for key.
CheckLine judge_key(const auth::SigningKeys::Key& key, const std::string& label,
                    const net::DnsAnswer& answer) {
  const auto& our_key = key.signing_key->key->public_key();
  const std::string publish =
      "; publish:\n    " +
      auth::zone_file_line(key.spec.selector, key.spec.domain, auth::make_key_record(our_key));
  const auto published = auth::check_published_key(answer.txt, our_key);
  CheckLine check;
  switch (published.state) {
    case auth::PublishedKeyState::Matches:
      check.ok = true;
      check.text = label + "ok: the published key matches" +
                   (published.testing ? " (t=y: testing mode)" : "") +
                   (answer.secure ? " (DNSSEC secure)" : "");
      break;
    case auth::PublishedKeyState::Missing:
      check.text = label + "FAIL: no TXT record published" + publish;
      break;
    case auth::PublishedKeyState::Several:
      check.text = label + "FAIL: several TXT records: " + published.detail;
      for (const auto& txt : answer.txt) check.text += "\n    found: \"" + txt + "\"";
      break;
    case auth::PublishedKeyState::Truncated:
      check.text = label + "FAIL: the published key is truncated: " + published.detail + publish;
      break;
    case auth::PublishedKeyState::Malformed:
      check.text = label + "FAIL: the published record is malformed: " + published.detail;
      break;
    case auth::PublishedKeyState::Revoked:
      check.text = label + "FAIL: the published key is revoked (empty p=); signatures with it fail";
      break;
    case auth::PublishedKeyState::OtherKey:
      check.text = label + "FAIL: the published key is not the public half of " +
                   key.spec.private_key_path + publish;
      break;
  }
  return check;
}

// check_key checks the record published for one configured key. key
// belongs to the runtime the caller holds.
asio::awaitable<CheckLine> check_key(net::Resolver& resolver, const auth::SigningKeys::Key& key) {
  const std::string name = auth::key_record_name(key.spec.selector, key.spec.domain);
  const std::string label = "DKIM " + key.spec.name + " (" + name + "): ";
  if (!key.signing_key) {
    co_return CheckLine{false, label + "FAIL: the private key cannot be used: " +
                                   (key.error ? key.error->detail : "?")};
  }
  auto answer = co_await resolver.query(name, net::RrType::Txt);
  // A timeout or SERVFAIL says nothing about what is published.
  if (lookup_failed(answer)) co_return unanswered_line(label, name, answer);
  co_return judge_key(key, label, answer);
}

// signing_domains lists the d= of every key and every exact domain of a rule.
std::set<std::string> signing_domains(const auth::SigningKeys& keys) {
  std::set<std::string> domains;
  for (const auto& key : keys.keys()) domains.insert(auth::ascii_lower(key.spec.domain));
  for (const auto& rule : keys.rules()) {
    const auto& text = rule.from.text();
    const auto at = text.rfind('@');
    if (at != std::string::npos && text.find('*', at) == std::string::npos) {
      domains.insert(auth::ascii_lower(text.substr(at + 1)));
    }
  }
  return domains;
}

asio::awaitable<DnsCheckReport> dns_check(net::Resolver& resolver,
                                          std::shared_ptr<const proxy::Runtime> runtime) {
  DnsCheckReport report;
  const auto& config = *runtime->config;
  const auth::SigningKeys& keys = *runtime->signing_keys;
  for (const auto& key : keys.keys()) {
    auto line = co_await check_key(resolver, key);
    // As the daemon's key watch would: a replacing key signs once its record matches.
    if (key.signing_key) keys.set_record_matches(key, line.ok);
    report.keys.push_back(std::move(line));
  }
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  const auto lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(config.dkim.signature_lifetime);
  for (std::size_t i = 0; i < keys.keys().size(); ++i) {
    if (auto status = rotation_status(keys, keys.keys()[i], now, lifetime))
      report.keys[i].text += "\n    " + *status;
  }
  for (const auto& domain : signing_domains(*runtime->signing_keys)) {
    auto spf = co_await check_spf(resolver, config.spf.egress_ips, domain);
    DmarcInputs inputs;
    inputs.from_domain = domain;
    inputs.signers = signers_for(*runtime->signing_keys, domain);
    if (!config.spf.egress_ips.empty()) inputs.spf_passes = spf.ok;
    inputs.spf_unanswered = spf.unanswered;
    report.domains.push_back(std::move(spf));
    auto dmarc = co_await check_dmarc(resolver, std::move(inputs));
    for (auto& line : dmarc) report.domains.push_back(std::move(line));
  }
  co_return report;
}

}  // namespace

int cmd_dns_check(const std::string& config_path) {
  std::shared_ptr<const proxy::Runtime> runtime;
  try {
    runtime = proxy::build_runtime(proxy::load_config(config_path), proxy::KeyPolicy::Lenient);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  std::string error;
  auto report = run_with_resolver<DnsCheckReport>(
      runtime->config.get(), [&](net::Resolver& resolver) { return dns_check(resolver, runtime); },
      error);
  if (!report) {
    std::cerr << "stampd dns-check: " << error << "\n";
    return 1;
  }
  if (report->keys.empty()) std::cout << "DKIM: no keys configured\n";
  auto lines = std::move(report->keys);
  lines.insert(lines.end(), report->domains.begin(), report->domains.end());
  int problems = 0;
  int unanswered = 0;
  for (const auto& c : lines) {
    std::cout << c.text << "\n";
    if (!c.ok) ++(c.unanswered ? unanswered : problems);
  }
  // A problem found is worth fixing whatever the DNS did not answer; with
  // none, a lookup that failed leaves the outcome unknown, not good.
  if (problems > 0) {
    std::cout << "dns-check: problems found\n";
    return 1;
  }
  if (unanswered > 0) {
    std::cout << "dns-check: " << unanswered
              << " check(s) could not be made: the DNS timed out or failed (SERVFAIL); "
                 "nothing found wrong in the rest; try again later\n";
    return 3;
  }
  std::cout << "dns-check: everything matches\n";
  return 0;
}

}  // namespace stampd::cmd
