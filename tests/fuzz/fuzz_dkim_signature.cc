// Fuzzes the DKIM-Signature field parser and the key record parser, the
// two tag-lists stampd reads from other people's mail and DNS. Properties:
// a parsed signature has the §6.1.1 required values (d=, s=, h= with from,
// a 32-byte bh=, i= within d=) and field_without_b is no longer than the
// field; a parsed key record that is not revoked writes back a record that
// parses to the same key.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/dkim/header_block.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/signature.h"
#include "auth/dkim/tag_list.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void signature(std::string_view value) {
  const std::string field = "DKIM-Signature:" + std::string(value) + "\r\n";
  const auto sig = stampd::auth::parse_signature(field);
  if (!sig.ok()) return;
  check(!sig->domain.empty() && !sig->selector.empty());
  check(sig->body_hash.size() == 32);
  check(!sig->headers.empty());
  bool has_from = false;
  for (const auto& h : sig->headers) has_from |= stampd::auth::header_name_equal(h, "from");
  check(has_from);
  check(stampd::auth::identity_within(sig->identity, sig->domain));
  check(sig->field_without_b.size() <= field.size());
}

void key_record(std::string_view text) {
  const auto record = stampd::auth::parse_key_record(text);
  if (!record.ok() || record->revoked()) return;
  const auto again = stampd::auth::parse_key_record(stampd::auth::make_key_record(*record->key));
  check(again.ok() && !again->revoked());
  check(again->type == record->type && again->key->same_key(*record->key));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)stampd::auth::parse_tag_list(text);
  signature(text);
  key_record(text);
  return 0;
}
