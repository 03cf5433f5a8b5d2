#include "auth/dmarc/record.h"

#include <cctype>

#include "auth/dkim/tag_list.h"
#include "auth/dns_name.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (true) {
    const auto end = s.find(sep, pos);
    out.push_back(trim(s.substr(pos, end == std::string_view::npos ? s.npos : end - pos)));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return out;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c)) == 0) return false;
  }
  return true;
}

std::optional<DmarcPolicy> parse_policy(std::string_view value) {
  const auto v = lower(value);
  if (v == "none") return DmarcPolicy::None;
  if (v == "quarantine") return DmarcPolicy::Quarantine;
  if (v == "reject") return DmarcPolicy::Reject;
  return std::nullopt;
}

// check_report_uri accepts "mailto:local@domain" with an optional "!size"
// limit (RFC 7489 §6.2, §6.4 dmarc-uri). Receivers are only required to send
// to mailto: (§6.2), so another scheme is refused here: reports would not
// arrive. Returns the reason when it is not acceptable.
std::optional<std::string> check_report_uri(std::string_view uri) {
  if (uri.empty()) return "an empty URI";
  std::string_view address = uri;
  if (const auto bang = uri.rfind('!'); bang != std::string_view::npos) {
    std::string_view size = uri.substr(bang + 1);
    if (!size.empty() && std::string_view("kmgtKMGT").find(size.back()) != std::string_view::npos)
      size.remove_suffix(1);
    if (!all_digits(size)) return "\"" + std::string(uri) + "\" has a bad size limit after '!'";
    address = uri.substr(0, bang);
  }
  const auto colon = address.find(':');
  if (colon == std::string_view::npos)
    return "\"" + std::string(uri) + "\" is not a URI (write mailto:" + std::string(uri) + ")";
  if (lower(address.substr(0, colon)) != "mailto")
    return "\"" + std::string(uri) + "\" is not a mailto: URI (receivers send reports by mail)";
  address.remove_prefix(colon + 1);
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0)
    return "\"" + std::string(uri) + "\" has no local@domain address";
  const auto domain = address.substr(at + 1);
  if (!is_queryable_name(domain) || domain.find('.') == std::string_view::npos)
    return "\"" + std::string(uri) + "\" has a bad domain";
  for (char c : address) {
    if (c <= ' ' || c == ',' || c == ';' || static_cast<unsigned char>(c) >= 0x7f)
      return "\"" + std::string(uri) + "\" contains a character URIs must percent-encode";
  }
  return std::nullopt;
}

net::Result<std::vector<std::string>> parse_uri_list(std::string_view tag, std::string_view value) {
  std::vector<std::string> out;
  for (const auto uri : split(value, ',')) {
    if (auto bad = check_report_uri(uri)) {
      return make_error(Errc::BadInput, "bad " + std::string(tag) + " URI: " + *bad);
    }
    out.emplace_back(uri);
  }
  return out;
}

net::Result<AlignMode> parse_align(std::string_view tag, std::string_view value) {
  const auto v = lower(value);
  if (v == "r") return AlignMode::Relaxed;
  if (v == "s") return AlignMode::Strict;
  return make_error(Errc::BadInput, std::string(tag) + "=" + std::string(value) +
                                        " is not r (relaxed) or s (strict)");
}

// apply_tag reads one tag other than v= into rec.
net::Status apply_tag(const Tag& tag, DmarcRecord& rec) {
  const std::string& v = tag.value;
  if (tag.name == "p" || tag.name == "sp") {
    const auto policy = parse_policy(v);
    if (!policy) {
      return make_error(Errc::BadInput,
                        "unknown policy " + tag.name + "=" + v + " (none, quarantine or reject)");
    }
    (tag.name == "p" ? rec.policy : rec.subdomain_policy.emplace()) = *policy;
  } else if (tag.name == "adkim" || tag.name == "aspf") {
    auto mode = parse_align(tag.name, v);
    if (!mode) return mode.error();
    (tag.name == "adkim" ? rec.dkim_alignment : rec.spf_alignment) = *mode;
  } else if (tag.name == "pct") {
    if (!all_digits(v) || v.size() > 3 || std::stoi(v) > 100)
      return make_error(Errc::BadInput, "pct=" + v + " is not an integer from 0 to 100");
    rec.percent = std::stoi(v);
  } else if (tag.name == "rua" || tag.name == "ruf") {
    auto uris = parse_uri_list(tag.name, v);
    if (!uris) return uris.error();
    (tag.name == "rua" ? rec.aggregate_uris : rec.failure_uris) = std::move(uris).value();
  } else if (tag.name == "ri") {
    if (!all_digits(v) || v.size() > 10)
      return make_error(Errc::BadInput, "ri=" + v + " is not a number of seconds");
  } else if (tag.name == "fo") {
    for (const auto option : split(v, ':')) {
      if (option != "0" && option != "1" && option != "d" && option != "s")
        return make_error(Errc::BadInput, "fo=" + v + " is not a list of 0, 1, d and s");
    }
  } else if (tag.name == "rf") {
    for (const auto format : split(v, ':')) {
      if (lower(format) != "afrf")
        rec.notes.push_back("rf=" + v + ": only afrf is defined; receivers ignore the others");
    }
  } else if (tag.name == "np" || tag.name == "psd" || tag.name == "t") {
    // DMARCbis (draft-ietf-dmarc-dmarcbis) tags: known to newer receivers,
    // ignored by RFC 7489 ones; nothing to check here.
  } else {
    rec.notes.push_back("unknown tag " + tag.name + "= is ignored by receivers (RFC 7489 §6.3)");
  }
  return net::Ok{};
}

}  // namespace

const char* to_string(DmarcPolicy policy) noexcept {
  switch (policy) {
    case DmarcPolicy::None:
      return "none";
    case DmarcPolicy::Quarantine:
      return "quarantine";
    case DmarcPolicy::Reject:
      return "reject";
  }
  return "?";
}

net::Result<DmarcRecord> parse_dmarc_record(std::string_view txt) {
  auto tags = parse_tag_list(txt);
  if (!tags) return make_error(Errc::BadInput, "not a tag list: " + tags.error().detail);
  // §6.4: v=DMARC1 first; §6.6.3 step 2: anything else is discarded.
  if (tags->empty() || tags->front().name != "v") {
    return make_error(Errc::BadInput,
                      "v=DMARC1 is not the first tag, so receivers discard the record");
  }
  if (tags->front().value != "DMARC1") {
    return make_error(Errc::BadInput,
                      "v=" + tags->front().value + " is not v=DMARC1 (exactly, upper case)");
  }
  if (!is_dmarc_candidate(txt)) {
    // An empty tag-spec before it (";v=DMARC1") still hides it from receivers.
    return make_error(Errc::BadInput,
                      "the record does not start with v=DMARC1, so receivers discard it");
  }
  DmarcRecord rec;
  for (std::size_t i = 1; i < tags->size(); ++i) {
    if ((*tags)[i].name == "v") return make_error(Errc::BadInput, "v= appears twice");
    auto applied = apply_tag((*tags)[i], rec);
    if (!applied) return applied.error();
  }
  if (find_tag(*tags, "p") == nullptr) {
    // §6.6.3 step 6: a receiver treats a record without p= but with a valid
    // rua= as p=none, and ignores it otherwise. Either way it is a mistake.
    return make_error(Errc::BadInput, rec.aggregate_uris.empty()
                                          ? "no p= tag, so receivers ignore the record"
                                          : "no p= tag (receivers read it as p=none)");
  }
  return rec;
}

bool is_dmarc_candidate(std::string_view txt) noexcept {
  txt = trim(txt);
  if (txt.empty() || txt.front() != 'v') return false;
  txt = trim(txt.substr(1));
  if (txt.empty() || txt.front() != '=') return false;
  txt = trim(txt.substr(1));
  if (txt.substr(0, 6) != "DMARC1") return false;
  txt.remove_prefix(6);
  return txt.empty() || txt.front() == ';' || txt.front() == ' ' || txt.front() == '\t';
}

DmarcSelection select_dmarc_record(const std::vector<std::string>& txt) {
  DmarcSelection out;
  for (const auto& value : txt) {
    if (is_dmarc_candidate(value)) {
      ++out.candidates;
      out.record = value;
    } else {
      out.others.push_back(value);
    }
  }
  if (out.candidates == 1) {
    out.kind = DmarcSelection::Kind::One;
  } else if (out.candidates > 1) {
    out.kind = DmarcSelection::Kind::Several;
    out.record.clear();
  }
  return out;
}

std::string suggested_dmarc_record(std::string_view domain) {
  return "v=DMARC1; p=none; rua=mailto:dmarc-reports@" + lower(strip_trailing_dot(domain));
}

}  // namespace stampd::auth
