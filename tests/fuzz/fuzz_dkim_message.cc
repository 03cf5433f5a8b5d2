// Fuzzes the DKIM verifier end to end on a whole message (header parsing,
// DKIM-Signature tag lists, canonicalization, body hashing), with the
// RFC 8463 Ed25519 test key; and the key record parser on the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/dkim/key_record.h"
#include "auth/dkim/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view message(reinterpret_cast<const char*>(data), size);
  static const auto key = stampd::auth::parse_key_record(
      "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  if (!key.ok()) std::abort();
  for (const auto& r : stampd::auth::verify_message_with_key(message, *key, {1528637909})) {
    if (r.reason.empty()) std::abort();
  }
  (void)stampd::auth::parse_key_record(message);
  return 0;
}
