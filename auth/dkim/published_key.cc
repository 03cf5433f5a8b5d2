#include "auth/dkim/published_key.h"

#include "auth/dkim/base64.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/tag_list.h"

namespace stampd::auth {
namespace {

PublishedKeyCheck verdict(PublishedKeyState state, std::string detail) {
  PublishedKeyCheck out;
  out.state = state;
  out.detail = std::move(detail);
  return out;
}

// published_p returns the p= text of a record whose tag list parses, FWS
// removed, or nullopt.
std::optional<std::string> published_p(const std::string& txt) {
  auto tags = parse_tag_list(txt);
  if (!tags) return std::nullopt;
  const Tag* p = find_tag(*tags, "p");
  if (p == nullptr) return std::nullopt;
  return remove_fws(p->value);
}

// is_base64_text reports whether every byte is in the base64 alphabet: a
// cut key still is, a key with a stray quote or typo is not.
bool is_base64_text(const std::string& text) {
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=';
    if (!ok) return false;
  }
  return true;
}

// unparsable_record tells a truncated p= from any other malformed record. A
// registrar or DNS panel that limits a TXT value to 255 characters (one
// character-string) cuts an RSA-2048 key record, whose p= alone is 392.
PublishedKeyCheck unparsable_record(const std::string& txt, const std::string& why,
                                    const PublicKey& ours) {
  const auto p = published_p(txt);
  const std::string our_p = base64_encode(ours.p_value());
  if (p && !p->empty() && p->size() < our_p.size() && is_base64_text(*p)) {
    std::string detail = "p= holds " + std::to_string(p->size()) +
                         " base64 characters where our key has " + std::to_string(our_p.size()) +
                         " and does not parse (" + why + ")";
    if (our_p.compare(0, p->size(), *p) == 0) detail += "; it is the start of our key";
    detail += "; the whole record is " + std::to_string(txt.size()) +
              " characters: a registrar or DNS panel that cuts TXT values at 255 does this, "
              "publish it as several quoted strings";
    return verdict(PublishedKeyState::Truncated, std::move(detail));
  }
  return verdict(PublishedKeyState::Malformed, why);
}

}  // namespace

PublishedKeyCheck check_published_key(const std::vector<std::string>& txt, const PublicKey& ours) {
  if (txt.empty()) return verdict(PublishedKeyState::Missing, "no TXT record");
  if (txt.size() > 1) {
    // RFC 6376 §3.6.2.2 lets a verifier pick any one of several records;
    // many take the first or fail, so signatures fail at random.
    return verdict(PublishedKeyState::Several,
                   std::to_string(txt.size()) +
                       " TXT records at one selector: verifiers pick one (or fail), keep exactly "
                       "one key record there");
  }
  auto record = parse_key_record(txt.front());
  if (!record) return unparsable_record(txt.front(), record.error().detail, ours);
  if (record->revoked()) return verdict(PublishedKeyState::Revoked, "empty p=");
  const PublicKey& theirs = *record->key;
  if (theirs.same_key(ours)) {
    PublishedKeyCheck out = verdict(PublishedKeyState::Matches, "");
    out.testing = record->testing;
    return out;
  }
  if (theirs.type() == ours.type() && theirs.bits() < ours.bits()) {
    return verdict(PublishedKeyState::Truncated,
                   "the published key has " + std::to_string(theirs.bits()) + " bits, ours " +
                       std::to_string(ours.bits()) +
                       ": cut short by the DNS host, or an older, weaker key");
  }
  return verdict(PublishedKeyState::OtherKey, "another key");
}

const char* to_string(PublishedKeyState s) noexcept {
  using S = PublishedKeyState;
  switch (s) {
    case S::Matches:
      return "matches";
    case S::Missing:
      return "missing";
    case S::Several:
      return "several";
    case S::Truncated:
      return "truncated";
    case S::Malformed:
      return "malformed";
    case S::Revoked:
      return "revoked";
    case S::OtherKey:
      return "other-key";
  }
  return "unknown";  // not a state: keeps -Wreturn-type quiet
}

}  // namespace stampd::auth
