#include "auth/spf/evaluator.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <utility>

#include "auth/dns_name.h"
#include "auth/spf/macro.h"
#include "auth/spf/record.h"

namespace stampd::auth {
namespace {

namespace asio = boost::asio;
using net::DnsAnswer;
using net::DnsStatus;
using net::RrType;
using Clock = std::chrono::steady_clock;

// Evaluation is the state shared by every include/redirect level of one
// check_host() call: the limits count across all of them (RFC 7208 §4.6.4).
struct Evaluation {
  Evaluation(net::Resolver& r, SpfOptions o) : resolver(r), options(std::move(o)) {}

  net::Resolver& resolver;
  SpfOptions options;
  SpfMacroValues values;  // .domain is replaced per level
  int dns_terms = 0;
  int void_lookups = 0;
  int dns_queries = 0;
  Clock::time_point deadline;
  std::map<std::string, std::string> validated;  // %{p} per <domain>
  std::string top_record;                        // the record of the checked domain
  std::vector<SpfTraceEntry> trace;

  void record(SpfStep step, int depth, const std::string& domain, std::string subject,
              std::string outcome) {
    if (!options.record_trace) return;
    trace.push_back({step, depth, domain, std::move(subject), std::move(outcome)});
  }
};

// Outcome is check_host() for one domain, with what the top level needs to
// build the explanation: exp= belongs to the record that produced "fail"
// (RFC 7208 §6.2: include never passes its exp= up; redirect replaces it).
struct Outcome {
  SpfVerdict verdict = SpfVerdict::None;
  std::string problem;
  std::optional<std::string> exp;
  std::string exp_domain;
  std::string decided_by;
  std::string decided_in;
};

Outcome error_outcome(SpfVerdict verdict, std::string problem, std::string term = {},
                      std::string domain = {}) {
  Outcome o;
  o.verdict = verdict;
  o.problem = std::move(problem);
  o.decided_by = std::move(term);
  o.decided_in = std::move(domain);
  return o;
}

// TermResult is the evaluation of one mechanism (RFC 7208 §5).
struct TermResult {
  enum class Kind { Match, NoMatch, Error } kind = Kind::NoMatch;
  SpfVerdict error = SpfVerdict::PermError;  // when kind == Error
  std::string problem;
  std::string note;  // shown in the trace next to the term

  static TermResult match(std::string note = {}) { return {Kind::Match, {}, {}, std::move(note)}; }
  static TermResult no_match(std::string note = {}) {
    return {Kind::NoMatch, {}, {}, std::move(note)};
  }
  static TermResult fail(SpfVerdict v, std::string problem) {
    return {Kind::Error, v, std::move(problem), {}};
  }
};

bool is_dns_error(DnsStatus s) noexcept {
  return s == DnsStatus::Timeout || s == DnsStatus::ServFail;
}

std::string describe(const DnsAnswer& a, RrType type) {
  std::string out = net::to_string(a.status);
  // Only set when the resolver validates (a trust anchor is configured).
  if (a.secure) out += " (DNSSEC secure)";
  if (!a.ok()) {
    if (!a.detail.empty()) out += " (" + a.detail + ")";
    return out;
  }
  std::vector<std::string> items;
  switch (type) {
    case RrType::Txt:
      for (const auto& t : a.txt) items.push_back("\"" + t + "\"");
      break;
    case RrType::A:
    case RrType::Aaaa:
      for (const auto& ip : a.addresses) items.push_back(ip.to_string());
      break;
    case RrType::Mx:
      for (const auto& mx : a.mx)
        items.push_back(std::to_string(mx.preference) + " " + mx.exchange);
      break;
    case RrType::Ptr:
    case RrType::Cname:
      items = a.names;
      break;
  }
  out += ":";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i == 0 ? " " : ", ") + items[i];
  return out;
}

RrType address_type(const Evaluation& ev) {
  return ev.values.ip.is_v4() ? RrType::A : RrType::Aaaa;
}

asio::awaitable<DnsAnswer> lookup(Evaluation& ev, int depth, std::string domain, std::string name,
                                  RrType type) {
  DnsAnswer answer;
  if (Clock::now() >= ev.deadline) {
    // RFC 7208 §4.6.4: an evaluation that runs too long is a temperror.
    answer.status = DnsStatus::Timeout;
    answer.detail = "SPF evaluation time limit exceeded";
  } else {
    ++ev.dns_queries;
    answer = co_await ev.resolver.query(name, type);
  }
  if (ev.options.record_trace) {
    ev.record(SpfStep::Query, depth, domain, std::string(net::to_string(type)) + " " + name,
              describe(answer, type));
  }
  co_return answer;
}

// validated_domain computes %{p} for <domain> (RFC 7208 §7.3 "p"): a PTR
// name of the client whose forward lookup gives the client address back,
// preferring <domain> itself, then a subdomain of it; "unknown" otherwise.
// DNS errors also give "unknown" (the macro is advisory).
asio::awaitable<std::string> validated_domain(Evaluation& ev, int depth, std::string domain) {
  if (auto it = ev.validated.find(domain); it != ev.validated.end()) co_return it->second;
  std::string chosen = "unknown";
  const DnsAnswer ptr = co_await lookup(ev, depth, domain, reverse_name(ev.values.ip), RrType::Ptr);
  if (ptr.ok()) {
    std::vector<std::string> validated;
    const std::size_t n =
        std::min(ptr.names.size(), static_cast<std::size_t>(std::max(0, ev.options.max_ptr_names)));
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& name = ptr.names[i];
      if (!is_queryable_name(name)) continue;
      const DnsAnswer a = co_await lookup(ev, depth, domain, name, address_type(ev));
      if (a.ok() &&
          std::find(a.addresses.begin(), a.addresses.end(), ev.values.ip) != a.addresses.end()) {
        validated.push_back(name);
      }
    }
    auto pick = [&](auto pred) -> const std::string* {
      for (const auto& v : validated) {
        if (pred(v)) return &v;
      }
      return nullptr;
    };
    const std::string* best =
        pick([&](const std::string& v) { return equals_ignore_case(v, domain); });
    if (!best) best = pick([&](const std::string& v) { return is_same_or_subdomain(v, domain); });
    if (!best && !validated.empty()) best = &validated.front();
    if (best) chosen = *best;
  }
  ev.validated.emplace(domain, chosen);
  co_return chosen;
}

// expand_target turns a domain-spec into the name to query (RFC 7208 §4.8:
// an empty spec means the current domain; §7.3: truncated to 253).
asio::awaitable<net::Result<std::string>> expand_target(Evaluation& ev, int depth,
                                                        std::string domain, std::string spec) {
  if (spec.empty()) co_return std::string(strip_trailing_dot(domain));
  SpfMacroValues values = ev.values;
  values.domain = domain;
  if (uses_macro_letter(spec, 'p'))
    values.validated_domain = co_await validated_domain(ev, depth, domain);
  auto expanded = expand_macro_string(spec, values, MacroScope::DomainSpec);
  if (!expanded.ok()) co_return std::move(expanded).error();
  co_return truncate_domain_name(expanded.value());
}

// count_against counts one more of what limit bounds; past it, permerror (§4.6.4).
std::optional<TermResult> count_against(int& count, int limit, const char* what) {
  if (++count <= limit) return std::nullopt;
  return TermResult::fail(SpfVerdict::PermError,
                          "more than " + std::to_string(limit) + " " + what + " (RFC 7208 §4.6.4)");
}

// count_dns_term enforces the limit of 10 DNS-querying terms.
std::optional<TermResult> count_dns_term(Evaluation& ev) {
  return count_against(ev.dns_terms, ev.options.max_dns_terms, "DNS-querying terms");
}

// count_void enforces the limit of 2 void lookups.
std::optional<TermResult> count_void(Evaluation& ev) {
  return count_against(ev.void_lookups, ev.options.max_void_lookups, "void DNS lookups");
}

bool any_in_network(const DnsAnswer& a, const boost::asio::ip::address& ip, int cidr4, int cidr6) {
  for (const auto& addr : a.addresses) {
    if (in_network(ip, addr, ip.is_v4() ? cidr4 : cidr6)) return true;
  }
  return false;
}

asio::awaitable<Outcome> evaluate_domain(Evaluation& ev, std::string domain, int depth);

// RFC 7208 §5.2: include matches on pass, not on fail/softfail/neutral;
// temperror propagates; permerror and none become permerror.
asio::awaitable<TermResult> evaluate_include(Evaluation& ev, std::string target, int depth) {
  if (!is_spf_domain(target)) {
    co_return TermResult::fail(SpfVerdict::PermError,
                               "include target \"" + target + "\" is not a domain");
  }
  const Outcome inner = co_await evaluate_domain(ev, target, depth + 1);
  switch (inner.verdict) {
    case SpfVerdict::Pass:
      co_return TermResult::match("included pass");
    case SpfVerdict::Fail:
    case SpfVerdict::SoftFail:
    case SpfVerdict::Neutral:
      co_return TermResult::no_match(std::string("included ") + to_string(inner.verdict));
    case SpfVerdict::TempError:
      co_return TermResult::fail(SpfVerdict::TempError, inner.problem);
    case SpfVerdict::None:
      co_return TermResult::fail(SpfVerdict::PermError,
                                 "included domain " + target + " has no SPF record");
    case SpfVerdict::PermError:
      co_return TermResult::fail(SpfVerdict::PermError, inner.problem);
  }
  co_return TermResult::fail(SpfVerdict::PermError, "unreachable");
}

// RFC 7208 §5.4: mx looks up MX, then the addresses of at most 10 exchanges.
asio::awaitable<TermResult> evaluate_mx(Evaluation& ev, int depth, std::string domain,
                                        std::string target, int cidr4, int cidr6) {
  const DnsAnswer mx = co_await lookup(ev, depth, domain, target, RrType::Mx);
  if (is_dns_error(mx.status))
    co_return TermResult::fail(SpfVerdict::TempError,
                               "MX lookup for " + target + ": " + describe(mx, RrType::Mx));
  if (!mx.ok()) {
    if (auto limit = count_void(ev)) co_return *limit;
    co_return TermResult::no_match("no MX records");
  }
  if (mx.mx.size() > static_cast<std::size_t>(ev.options.max_mx_names)) {
    // RFC 7208 §4.6.4: more than 10 MX names is a permerror.
    co_return TermResult::fail(
        SpfVerdict::PermError,
        target + " has " + std::to_string(mx.mx.size()) + " MX records; at most " +
            std::to_string(ev.options.max_mx_names) + " may be looked up (RFC 7208 §4.6.4)");
  }
  std::vector<net::MxRecord> exchanges = mx.mx;
  std::stable_sort(exchanges.begin(), exchanges.end(),
                   [](const auto& a, const auto& b) { return a.preference < b.preference; });
  for (const auto& exchange : exchanges) {
    // A null MX (RFC 7505: exchange ".") names no host.
    if (strip_trailing_dot(exchange.exchange).empty() || !is_queryable_name(exchange.exchange))
      continue;
    const DnsAnswer a = co_await lookup(ev, depth, domain, exchange.exchange, address_type(ev));
    if (is_dns_error(a.status)) {
      co_return TermResult::fail(
          SpfVerdict::TempError,
          "address lookup for MX " + exchange.exchange + ": " + describe(a, address_type(ev)));
    }
    if (a.ok() && any_in_network(a, ev.values.ip, cidr4, cidr6))
      co_return TermResult::match("via " + exchange.exchange);
  }
  co_return TermResult::no_match();
}

// RFC 7208 §5.5: ptr matches when a validated PTR name of the client is the
// target or a subdomain of it. DNS errors make it not match.
asio::awaitable<TermResult> evaluate_ptr(Evaluation& ev, int depth, std::string domain,
                                         std::string target) {
  const DnsAnswer ptr = co_await lookup(ev, depth, domain, reverse_name(ev.values.ip), RrType::Ptr);
  if (is_dns_error(ptr.status)) co_return TermResult::no_match("PTR lookup failed");
  if (!ptr.ok()) {
    if (auto limit = count_void(ev)) co_return *limit;
    co_return TermResult::no_match("no PTR records");
  }
  // Only the first 10 names count; the rest MUST be ignored (§4.6.4).
  const std::size_t n =
      std::min(ptr.names.size(), static_cast<std::size_t>(std::max(0, ev.options.max_ptr_names)));
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& name = ptr.names[i];
    // Names outside the target cannot match, so they need no validation.
    if (!is_same_or_subdomain(name, target) || !is_queryable_name(name)) continue;
    const DnsAnswer a = co_await lookup(ev, depth, domain, name, address_type(ev));
    if (!a.ok()) continue;  // §5.5: a DNS error skips this name
    if (std::find(a.addresses.begin(), a.addresses.end(), ev.values.ip) != a.addresses.end()) {
      co_return TermResult::match("validated " + name);
    }
  }
  co_return TermResult::no_match();
}

asio::awaitable<TermResult> evaluate_mechanism(Evaluation& ev, int depth, std::string domain,
                                               const SpfMechanism& m) {
  const auto& ip = ev.values.ip;
  switch (m.kind) {
    case SpfMechanismKind::All:
      co_return TermResult::match();
    case SpfMechanismKind::Ip4:
    case SpfMechanismKind::Ip6: {
      const int len = m.kind == SpfMechanismKind::Ip4 ? m.cidr4 : m.cidr6;
      co_return in_network(ip, m.network, len) ? TermResult::match() : TermResult::no_match();
    }
    default:
      break;
  }
  if (auto limit = count_dns_term(ev)) co_return *limit;
  auto target = co_await expand_target(ev, depth, domain, m.domain_spec);
  if (!target.ok()) co_return TermResult::fail(SpfVerdict::PermError, target.error().detail);
  const std::string name = std::move(target).value();

  if (m.kind == SpfMechanismKind::Include) co_return co_await evaluate_include(ev, name, depth);
  if (!is_queryable_name(name)) {
    // An expanded name that cannot be queried (empty or over-long label) is
    // treated as non-existent: no match. RFC 7208 leaves this undefined
    // (test suite "invalid-domain-*"); no-match is the preferred result.
    co_return TermResult::no_match("\"" + name + "\" is not a valid DNS name");
  }
  switch (m.kind) {
    case SpfMechanismKind::A: {
      // RFC 7208 §5.3: A for an IPv4 client, AAAA for IPv6.
      const DnsAnswer a = co_await lookup(ev, depth, domain, name, address_type(ev));
      if (is_dns_error(a.status))
        co_return TermResult::fail(SpfVerdict::TempError, "address lookup for " + name + ": " +
                                                              describe(a, address_type(ev)));
      if (!a.ok()) {
        if (auto limit = count_void(ev)) co_return *limit;
        co_return TermResult::no_match();
      }
      co_return any_in_network(a, ip, m.cidr4, m.cidr6) ? TermResult::match()
                                                        : TermResult::no_match();
    }
    case SpfMechanismKind::Mx:
      co_return co_await evaluate_mx(ev, depth, domain, name, m.cidr4, m.cidr6);
    case SpfMechanismKind::Ptr:
      co_return co_await evaluate_ptr(ev, depth, domain, name);
    case SpfMechanismKind::Exists: {
      // RFC 7208 §5.7: always an A query, whatever the client's family.
      const DnsAnswer a = co_await lookup(ev, depth, domain, name, RrType::A);
      if (is_dns_error(a.status))
        co_return TermResult::fail(SpfVerdict::TempError,
                                   "exists lookup for " + name + ": " + describe(a, RrType::A));
      if (!a.ok()) {
        if (auto limit = count_void(ev)) co_return *limit;
        co_return TermResult::no_match();
      }
      co_return TermResult::match();
    }
    default:
      break;
  }
  co_return TermResult::fail(SpfVerdict::PermError, "unhandled mechanism");
}

std::string term_outcome(const TermResult& t, const SpfMechanism& m) {
  std::string out;
  switch (t.kind) {
    case TermResult::Kind::Match:
      out = std::string("match: ") + to_string(verdict_of(m.qualifier));
      break;
    case TermResult::Kind::NoMatch:
      out = "no match";
      break;
    case TermResult::Kind::Error:
      out = std::string(to_string(t.error)) + ": " + t.problem;
      break;
  }
  if (!t.note.empty()) out += " (" + t.note + ")";
  return out;
}

// fetch_record is RFC 7208 §4.4 and §4.5: the TXT records of domain, the
// one that starts with "v=spf1", parsed.
struct Fetched {
  std::optional<SpfRecord> record;
  std::optional<Outcome> outcome;  // set when there is no usable record
};

asio::awaitable<Fetched> fetch_record(Evaluation& ev, std::string domain, int depth) {
  const DnsAnswer txt = co_await lookup(ev, depth, domain, domain, RrType::Txt);
  if (is_dns_error(txt.status)) {
    co_return Fetched{std::nullopt, error_outcome(SpfVerdict::TempError,
                                                  "DNS error fetching the SPF record of " + domain +
                                                      ": " + describe(txt, RrType::Txt))};
  }
  std::vector<const std::string*> candidates;
  for (const auto& t : txt.txt) {
    if (is_spf_version(t)) candidates.push_back(&t);
  }
  if (candidates.empty()) {
    co_return Fetched{std::nullopt, error_outcome(SpfVerdict::None, "no SPF record at " + domain)};
  }
  if (candidates.size() > 1) {
    co_return Fetched{std::nullopt,
                      error_outcome(SpfVerdict::PermError,
                                    domain + " publishes " + std::to_string(candidates.size()) +
                                        " SPF records (RFC 7208 §4.5 allows one)")};
  }
  ev.record(SpfStep::Record, depth, domain, *candidates.front(), {});
  if (depth == 0) ev.top_record = *candidates.front();
  auto parsed = parse_spf_record(*candidates.front());
  if (!parsed.ok()) {
    co_return Fetched{std::nullopt, error_outcome(SpfVerdict::PermError,
                                                  "syntax error in the SPF record of " + domain +
                                                      ": " + parsed.error().detail)};
  }
  co_return Fetched{std::move(parsed).value(), std::nullopt};
}

asio::awaitable<Outcome> evaluate_record(Evaluation& ev, std::string domain, int depth) {
  Fetched fetched = co_await fetch_record(ev, domain, depth);
  if (fetched.outcome) co_return std::move(*fetched.outcome);
  const SpfRecord& record = *fetched.record;

  for (const auto& m : record.mechanisms) {
    const TermResult t = co_await evaluate_mechanism(ev, depth, domain, m);
    ev.record(SpfStep::Term, depth, domain, m.text, term_outcome(t, m));
    if (t.kind == TermResult::Kind::Error)
      co_return error_outcome(t.error, t.problem, m.text, domain);
    if (t.kind == TermResult::Kind::Match) {
      Outcome o;
      o.verdict = verdict_of(m.qualifier);
      o.exp = record.exp;
      o.exp_domain = domain;
      o.decided_by = m.text;
      o.decided_in = domain;
      co_return o;
    }
  }

  if (record.redirect) {
    // RFC 7208 §6.1: redirect= applies only when no mechanism matched; it
    // counts as a DNS-querying term, and its "none" becomes permerror.
    const std::string term = "redirect=" + *record.redirect;
    if (auto limit = count_dns_term(ev))
      co_return error_outcome(limit->error, limit->problem, term, domain);
    auto target = co_await expand_target(ev, depth, domain, *record.redirect);
    if (!target.ok())
      co_return error_outcome(SpfVerdict::PermError, target.error().detail, term, domain);
    const std::string name = std::move(target).value();
    if (!is_spf_domain(name)) {
      ev.record(SpfStep::Term, depth, domain, term, "permerror: not a domain");
      co_return error_outcome(SpfVerdict::PermError,
                              "redirect target \"" + name + "\" is not a domain", term, domain);
    }
    ev.record(SpfStep::Term, depth, domain, term, "follow " + name);
    Outcome inner = co_await evaluate_domain(ev, name, depth + 1);
    if (inner.verdict == SpfVerdict::None) {
      co_return error_outcome(SpfVerdict::PermError,
                              "redirect target " + name + " has no SPF record", term, domain);
    }
    co_return inner;
  }

  // RFC 7208 §4.7: no match and no redirect gives neutral.
  Outcome o;
  o.verdict = SpfVerdict::Neutral;
  o.decided_by = "(no match; default)";
  o.decided_in = domain;
  co_return o;
}

asio::awaitable<Outcome> evaluate_domain(Evaluation& ev, std::string domain, int depth) {
  Outcome o = co_await evaluate_record(ev, domain, depth);
  ev.record(SpfStep::Result, depth, domain, to_string(o.verdict), o.problem);
  co_return o;
}

// RFC 7208 §6.2: the explanation for "fail": the TXT record named by exp=,
// macro-expanded; any trouble falls back to the default explanation.
asio::awaitable<std::string> explanation(Evaluation& ev, const Outcome& o, std::string top_domain) {
  SpfMacroValues values = ev.values;
  values.domain = top_domain;
  std::string fallback = ev.options.default_explanation;
  if (auto d = expand_macro_string(ev.options.default_explanation, values, MacroScope::Explanation);
      d.ok()) {
    fallback = std::move(d).value();
  }
  if (!o.exp) co_return fallback;

  auto name = co_await expand_target(ev, 0, o.exp_domain, *o.exp);
  if (!name.ok() || !is_queryable_name(name.value())) {
    ev.record(SpfStep::Note, 0, o.exp_domain, "exp=" + *o.exp,
              "unusable target; default explanation");
    co_return fallback;
  }
  // Not counted against the lookup limits: exp= is fetched once, after the
  // result is known (RFC 7208 §4.6.4, test suite "exp-void").
  const DnsAnswer txt = co_await lookup(ev, 0, o.exp_domain, name.value(), RrType::Txt);
  if (!txt.ok() || txt.txt.size() != 1) {
    ev.record(SpfStep::Note, 0, o.exp_domain, "exp=" + *o.exp,
              "needs exactly one TXT record; default explanation");
    co_return fallback;
  }
  values.domain = o.exp_domain;
  if (uses_macro_letter(txt.txt.front(), 'p'))
    values.validated_domain = co_await validated_domain(ev, 0, o.exp_domain);
  auto text = expand_macro_string(txt.txt.front(), values, MacroScope::Explanation);
  if (!text.ok()) {
    ev.record(SpfStep::Note, 0, o.exp_domain, "exp=" + *o.exp,
              "invalid explanation (" + text.error().detail + "); default explanation");
    co_return fallback;
  }
  co_return std::move(text).value();
}

// split_sender splits <sender> into local-part and domain; an empty
// local-part becomes "postmaster" (RFC 7208 §4.3).
void set_sender(SpfMacroValues& values, std::string_view sender) {
  const auto at = sender.rfind('@');
  std::string local =
      at == std::string_view::npos ? std::string() : std::string(sender.substr(0, at));
  std::string domain = std::string(at == std::string_view::npos ? sender : sender.substr(at + 1));
  if (local.empty()) local = "postmaster";
  values.sender = local + "@" + domain;
  values.local_part = std::move(local);
  values.sender_domain = std::string(strip_trailing_dot(domain));
}

}  // namespace

asio::awaitable<SpfResult> check_host(net::Resolver& resolver, boost::asio::ip::address ip,
                                      std::string domain, std::string sender, std::string helo,
                                      SpfOptions options) {
  Evaluation ev(resolver, std::move(options));
  ev.deadline = Clock::now() + ev.options.time_limit;
  ev.values.ip = normalize_client_ip(ip);
  set_sender(ev.values, sender);
  ev.values.helo = std::move(helo);
  ev.values.receiver = ev.options.receiver;
  ev.values.timestamp =
      ev.options.timestamp.value_or(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());

  SpfResult result;
  result.domain = std::string(strip_trailing_dot(domain));
  result.sender = ev.values.sender;

  Outcome o;
  if (!is_spf_domain(result.domain)) {
    // RFC 7208 §4.3: a malformed or single-label domain gives "none" at once.
    o = error_outcome(SpfVerdict::None, "\"" + result.domain + "\" is not a valid domain name");
  } else {
    o = co_await evaluate_domain(ev, result.domain, 0);
  }
  if (o.verdict == SpfVerdict::Fail && ev.options.fetch_explanation) {
    result.explanation = co_await explanation(ev, o, result.domain);
  }
  result.verdict = o.verdict;
  result.problem = std::move(o.problem);
  result.decided_by = std::move(o.decided_by);
  result.decided_in = std::move(o.decided_in);
  result.record = std::move(ev.top_record);
  result.dns_terms = ev.dns_terms;
  result.void_lookups = ev.void_lookups;
  result.dns_queries = ev.dns_queries;
  result.trace = std::move(ev.trace);
  co_return result;
}

asio::awaitable<SpfResult> check_mail_from(net::Resolver& resolver, boost::asio::ip::address ip,
                                           std::string mail_from, std::string helo,
                                           SpfOptions options) {
  if (mail_from.empty()) {
    // RFC 7208 §2.4: for the null reverse-path, check "postmaster@" + HELO.
    co_return co_await check_helo(resolver, ip, std::move(helo), std::move(options));
  }
  const auto at = mail_from.rfind('@');
  std::string domain = at == std::string::npos ? mail_from : mail_from.substr(at + 1);
  co_return co_await check_host(resolver, ip, std::move(domain), std::move(mail_from),
                                std::move(helo), std::move(options));
}

asio::awaitable<SpfResult> check_helo(net::Resolver& resolver, boost::asio::ip::address ip,
                                      std::string helo, SpfOptions options) {
  std::string sender = "postmaster@" + helo;
  std::string domain = helo;
  co_return co_await check_host(resolver, ip, std::move(domain), std::move(sender), std::move(helo),
                                std::move(options));
}

}  // namespace stampd::auth
