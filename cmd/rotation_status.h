// rotation_status says, for a key of a replacement chain ([[dkim.key]]
// replaces), where the rotation stands: which key signs now, and when an
// old key's DNS record may be removed. dns-check prints it under the key.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "auth/dkim/keyring.h"

namespace stampd::cmd {

// kRecordKeep is how long a record stays after the last signature made with
// its key when signatures carry no longer x=: mail can sit in queues for
// days (Postfix's maximal_queue_lifetime is 5 days) and be verified late.
constexpr std::chrono::seconds kRecordKeep = std::chrono::hours(24 * 5);

// rotation_status gives the line for key at now (its record gates already
// set), or nullopt when key is in no chain. signature_lifetime is x= - t=
// (zero: no x=).
std::optional<std::string> rotation_status(const auth::SigningKeys& keys,
                                           const auth::SigningKeys::Key& key, std::int64_t now,
                                           std::chrono::seconds signature_lifetime);

}  // namespace stampd::cmd
