#include "cmd/rotation_status.h"

#include <algorithm>

namespace stampd::cmd {

namespace {

using Key = auth::SigningKeys::Key;

std::string quoted(const Key& key) { return "\"" + key.spec.name + "\""; }

// newer_than says whether candidate takes over (directly or later) from key.
bool newer_than(const Key& candidate, const Key& key) {
  for (const Key* k = key.replaced_by; k != nullptr; k = k->replaced_by) {
    if (k == &candidate) return true;
  }
  return false;
}

std::string removal_advice(const Key& key, std::chrono::seconds keep) {
  const long long days = keep.count() / 86400;
  if (key.spec.retire_after) {
    return "its record may be removed after " +
           auth::utc_time(*key.spec.retire_after + keep.count());
  }
  return "set retire_after on it to stop it signing for good (it signs again if the newer "
         "record stops matching); its record may be removed " +
         std::to_string(days) + " days after its last signature";
}

}  // namespace

std::optional<std::string> rotation_status(const auth::SigningKeys& keys, const Key& key,
                                           std::int64_t now,
                                           std::chrono::seconds signature_lifetime) {
  if (key.replaces == nullptr && key.replaced_by == nullptr) return std::nullopt;
  const std::chrono::seconds keep = std::max(kRecordKeep, signature_lifetime);
  const auto signer = keys.signing_key(key, now);
  std::string line = "rotation: ";
  if (!signer) return line + "no key of its chain may sign: " + signer.error().detail;
  const Key& now_signing = **signer;
  if (&now_signing == &key) {
    line += "signs now";
    if (key.replaces) line += " in place of " + quoted(*key.replaces);
    if (key.replaced_by) {
      line += "; " + quoted(*key.replaced_by) + " takes over once its record is published";
    }
    if (key.spec.retire_after) line += "; retires at " + auth::utc_time(*key.spec.retire_after);
    return line;
  }
  if (newer_than(now_signing, key) || key.retired(now)) {
    return line + "no longer signs (" + quoted(now_signing) + " signs in its place); " +
           removal_advice(key, keep);
  }
  return line + "does not sign yet: " + quoted(now_signing) +
         " signs until this key's record publishes its public key";
}

}  // namespace stampd::cmd
