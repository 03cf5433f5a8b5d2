// record.h: the DMARC policy record at _dmarc.<domain> (RFC 7489 §6.3, §6.4):
// parsing it with every error named, choosing the one record a receiver
// would use from a TXT answer (§6.6.3), and the first record to suggest.
// Pure string work: no DNS, no logging.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dmarc/org_domain.h"
#include "net/result.h"

namespace stampd::auth {

// DmarcPolicy is p= (and sp=): what the domain asks receivers to do with
// mail that fails DMARC.
enum class DmarcPolicy { None, Quarantine, Reject };
const char* to_string(DmarcPolicy policy) noexcept;

// DmarcRecord is a parsed record; the defaults are RFC 7489 §6.3's.
struct DmarcRecord {
  DmarcPolicy policy = DmarcPolicy::None;
  std::optional<DmarcPolicy> subdomain_policy;    // sp=; absent means p= applies
  AlignMode dkim_alignment = AlignMode::Relaxed;  // adkim=
  AlignMode spf_alignment = AlignMode::Relaxed;   // aspf=
  int percent = 100;                              // pct=
  std::vector<std::string> aggregate_uris;        // rua=, as written
  std::vector<std::string> failure_uris;          // ruf=, as written
  // notes are things a receiver ignores but an admin should know: unknown
  // tags (§6.3 says to ignore them), p= absent but rua= valid (§6.6.3 6).
  std::vector<std::string> notes;
};

// parse_dmarc_record parses one TXT value (strings already joined). Errors
// (BadInput), each named: not a tag list; v=DMARC1 missing or not first
// (receivers discard such a record, §6.6.3 step 2); p= missing or not
// none/quarantine/reject; sp= likewise; adkim/aspf not r or s; pct not an
// integer 0-100; a rua/ruf URI that is not mailto:ADDRESS[!SIZE]; ri not a
// number; fo not 0/1/d/s.
net::Result<DmarcRecord> parse_dmarc_record(std::string_view txt);

// is_dmarc_candidate reports whether a TXT value starts with v=DMARC1, the
// test receivers apply before anything else (§6.6.3 step 2).
bool is_dmarc_candidate(std::string_view txt) noexcept;

// DmarcSelection is what a receiver makes of the TXT records at one _dmarc
// name: none that start with v=DMARC1 (it then asks the organizational
// domain), exactly one, or several (it applies no policy at all).
struct DmarcSelection {
  enum class Kind { None, One, Several } kind = Kind::None;
  std::string record;               // the one candidate, for Kind::One
  std::vector<std::string> others;  // TXT values at the name that receivers discard
  int candidates = 0;
};

// select_dmarc_record sorts the TXT values found at _dmarc.<domain>.
DmarcSelection select_dmarc_record(const std::vector<std::string>& txt);

// suggested_dmarc_record is the first record to publish: monitoring only,
// with aggregate reports to dmarc-reports@domain.
std::string suggested_dmarc_record(std::string_view domain);

}  // namespace stampd::auth
