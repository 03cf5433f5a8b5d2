// Fuzzes the DMARC record parser, the receiver's choice among TXT records
// and the organizational domain (records and names come from anyone's DNS).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dmarc/org_domain.h"
#include "auth/dmarc/record.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto record = stampd::auth::parse_dmarc_record(text);
  if (record.ok()) {
    // What parses is usable: a percentage, mailto: report addresses.
    if (record->percent < 0 || record->percent > 100) std::abort();
    for (const auto& uri : record->aggregate_uris) {
      if (uri.size() < 7 || (uri[0] != 'm' && uri[0] != 'M')) std::abort();
    }
    // A parsed record is one a receiver would pick.
    if (!stampd::auth::is_dmarc_candidate(text)) std::abort();
  }
  // The same text split at ';' into several TXT records.
  std::vector<std::string> records;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    records.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  const auto selection = stampd::auth::select_dmarc_record(records);
  if (selection.candidates + static_cast<int>(selection.others.size()) !=
      static_cast<int>(records.size()))
    std::abort();
  // The organizational domain is a tail of the (lower-cased) name.
  const auto org = stampd::auth::organizational_domain(text);
  if (org.size() > text.size()) std::abort();
  (void)stampd::auth::aligned(text, org, stampd::auth::AlignMode::Relaxed);
  return 0;
}
