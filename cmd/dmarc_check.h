// dmarc_check.h: dns-check's DMARC part for one From domain: the _dmarc
// record a receiver would find (RFC 7489 §6.6.3), whether our DKIM d= and the
// egress addresses' SPF align with it, and a historic ADSP record. Asks the
// DNS; auth/dmarc/ does the parsing.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <vector>

#include "net/resolver.h"

namespace stampd::cmd {

// CheckLine is one line of dns-check's report; a line that is not ok makes
// the command exit 1, unless it is unanswered: the DNS timed out or failed
// (SERVFAIL, REFUSED), so nothing could be judged and nothing may be
// reported missing; those lines say "UNKNOWN:" and, when no line found a
// problem, make the exit status 3. Warnings are ok lines that say "warn:".
struct CheckLine {
  bool ok = false;
  std::string text;
  bool unanswered = false;
};

// lookup_failed says whether answer is a temporary failure (timeout,
// SERVFAIL) rather than an answer; NXDOMAIN and no data are answers.
bool lookup_failed(const net::DnsAnswer& answer);

// unanswered_line is label's line for a check that a failed lookup (what:
// which one and why) kept from being made.
CheckLine unanswered_line(const std::string& label, const std::string& what);

// unanswered_line is label's line for a check that the failed lookup of
// name kept from being made.
CheckLine unanswered_line(const std::string& label, const std::string& name,
                          const net::DnsAnswer& answer);

// DmarcSigner is a key that signs mail From the domain.
struct DmarcSigner {
  std::string key_name;
  std::string domain;  // its d=
};

// DmarcInputs is what dns-check knows about one From domain.
struct DmarcInputs {
  std::string from_domain;
  std::vector<DmarcSigner> signers;  // empty: no rule signs mail from it
  // spf_passes: every egress address passes SPF for a MAIL FROM in
  // from_domain; nullopt when [spf] egress_ips is empty.
  std::optional<bool> spf_passes;
  // spf_unanswered: the DNS did not answer the SPF check, so spf_passes
  // says nothing.
  bool spf_unanswered = false;
};

// check_dmarc returns the DMARC and ADSP lines for one From domain.
boost::asio::awaitable<std::vector<CheckLine>> check_dmarc(net::Resolver& resolver,
                                                           DmarcInputs inputs);

}  // namespace stampd::cmd
