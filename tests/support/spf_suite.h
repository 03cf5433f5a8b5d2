// spf_suite.h: reads the openspf.org SPF test suites (tests/data/spf/*.yml,
// a YAML stream of scenarios) and runs one case through check_mail_from()
// on a FakeResolver loaded with the scenario's zonedata.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "auth/spf/result.h"

namespace stampd::test {

// SpfSuiteCase is one test of a suite scenario.
struct SpfSuiteCase {
  std::string scenario;  // the scenario's description
  std::string id;        // e.g. "mx-limit"
  std::string spec;      // RFC section(s) cited by the test
  std::string helo;
  std::string host;                        // client IP literal
  std::string mailfrom;                    // "" = null sender
  std::vector<std::string> results;        // any of them is accepted; first preferred
  std::optional<std::string> explanation;  // expected explanation, when given
  YAML::Node zonedata;                     // shared by the scenario's cases
};

// load_spf_suite reads every case of a suite file, in file order; throws
// YAML::Exception or std::runtime_error on a malformed file.
std::vector<SpfSuiteCase> load_spf_suite(const std::string& path);

// SpfSuiteOutcome is what running one case gave.
struct SpfSuiteOutcome {
  auth::SpfResult result;
  bool result_ok = false;      // result is one of the accepted ones
  bool explanation_ok = true;  // matches, or none expected
  bool passed() const { return result_ok && explanation_ok; }
  std::string describe(const SpfSuiteCase& c) const;  // a failure message with the trace
};

// run_spf_suite_case evaluates c with the default explanation set to the
// literal "DEFAULT", as the suites expect.
SpfSuiteOutcome run_spf_suite_case(const SpfSuiteCase& c);

}  // namespace stampd::test
