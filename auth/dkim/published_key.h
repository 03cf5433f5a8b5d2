// published_key.h: dns-check's verdict on the TXT records found at a key's
// selector._domainkey name, compared with the key we sign with. Names what
// goes wrong in the field: several records at one selector, a record a
// registrar truncated, a shorter key, another key, a revoked key. Pure.
#pragma once

#include <string>
#include <vector>

#include "auth/dkim/keys.h"

namespace stampd::auth {

enum class PublishedKeyState {
  Matches,    // exactly one record, and it is our public key
  Missing,    // no TXT record at the name
  Several,    // more than one TXT record at the name
  Truncated,  // p= cut short: does not parse, or parses to a shorter key
  Malformed,  // not a key record we can read
  Revoked,    // empty p=
  OtherKey,   // a valid key, not ours
};

// to_string names a state for metrics and logs: "matches", "missing",
// "several", "truncated", "malformed", "revoked", "other-key".
const char* to_string(PublishedKeyState state) noexcept;

// PublishedKeyCheck is the verdict and, unless it matches, the reason.
struct PublishedKeyCheck {
  PublishedKeyState state = PublishedKeyState::Missing;
  std::string detail;
  bool testing = false;  // t=y in a matching record
};

// check_published_key compares txt, the TXT values at the selector (each one
// record with its character-strings already joined, as the resolver returns
// them), with ours.
PublishedKeyCheck check_published_key(const std::vector<std::string>& txt, const PublicKey& ours);

}  // namespace stampd::auth
