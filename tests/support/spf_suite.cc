#include "tests/support/spf_suite.h"

#include <boost/asio/ip/address.hpp>
#include <stdexcept>

#include "auth/spf/evaluator.h"
#include "auth/spf/verdict.h"
#include "tests/support/fake_resolver.h"
#include "tests/support/run_coroutine.h"

namespace stampd::test {
namespace {

std::string scalar_or_join(const YAML::Node& n) {
  if (!n) return {};
  if (n.IsSequence()) {
    std::string out;
    for (const auto& i : n) out += (out.empty() ? "" : ", ") + i.as<std::string>();
    return out;
  }
  return n.as<std::string>();
}

}  // namespace

std::vector<SpfSuiteCase> load_spf_suite(const std::string& path) {
  std::vector<SpfSuiteCase> out;
  for (const YAML::Node& scenario : YAML::LoadAllFromFile(path)) {
    if (!scenario.IsMap()) continue;
    const std::string description = scenario["description"].as<std::string>("");
    const YAML::Node zonedata = scenario["zonedata"];
    for (const auto& kv : scenario["tests"]) {
      const YAML::Node& t = kv.second;
      SpfSuiteCase c;
      c.scenario = description;
      c.id = kv.first.as<std::string>();
      c.spec = scalar_or_join(t["spec"]);
      c.helo = t["helo"].as<std::string>("");
      c.host = t["host"].as<std::string>();
      c.mailfrom = t["mailfrom"].as<std::string>("");
      if (t["result"].IsSequence()) {
        for (const auto& r : t["result"]) c.results.push_back(r.as<std::string>());
      } else {
        c.results.push_back(t["result"].as<std::string>());
      }
      if (t["explanation"]) c.explanation = t["explanation"].as<std::string>();
      c.zonedata = zonedata;
      out.push_back(std::move(c));
    }
  }
  return out;
}

SpfSuiteOutcome run_spf_suite_case(const SpfSuiteCase& c) {
  FakeResolver resolver;
  resolver.set_asynchronous(true);  // suspend on every query, like a real resolver
  if (auto s = resolver.load_spf_zonedata(c.zonedata); !s.ok()) {
    throw std::runtime_error(c.id + ": " + s.error().message());
  }
  auth::SpfOptions options;
  options.default_explanation = "DEFAULT";
  options.timestamp = 1700000000;
  const auto ip = boost::asio::ip::make_address(c.host);
  SpfSuiteOutcome out;
  out.result = run_coroutine<auth::SpfResult>(
      [&](auto&) { return auth::check_mail_from(resolver, ip, c.mailfrom, c.helo, options); });
  for (const auto& r : c.results) {
    const auto want = auth::parse_spf_verdict(r);
    if (want && *want == out.result.verdict) out.result_ok = true;
  }
  if (c.explanation) out.explanation_ok = *c.explanation == out.result.explanation;
  return out;
}

std::string SpfSuiteOutcome::describe(const SpfSuiteCase& c) const {
  std::string want;
  for (const auto& r : c.results) want += (want.empty() ? "" : "|") + r;
  std::string out = c.id + " (" + c.scenario + ", RFC §" + c.spec + "): want " + want + ", got " +
                    auth::summarize(result);
  if (c.explanation && !explanation_ok) {
    out += "\n  explanation want \"" + *c.explanation + "\" got \"" + result.explanation + "\"";
  }
  out += "\n" + auth::format_trace(result.trace);
  return out;
}

}  // namespace stampd::test
