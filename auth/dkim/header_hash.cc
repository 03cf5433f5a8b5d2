#include "auth/dkim/header_hash.h"

namespace stampd::auth {

std::string header_hash_input(const HeaderBlock& block, std::span<const std::string> names,
                              Canonicalization c, std::string_view signature_field) {
  std::string out;
  for (const auto& index : select_fields(block, names)) {
    if (index) append_canonical_header(c, block.field(*index).raw, out);
  }
  // §3.7: the signature field itself goes last, canonicalized the same way,
  // without the CRLF that would end it.
  if (signature_field.size() >= 2 && signature_field.substr(signature_field.size() - 2) == "\r\n") {
    signature_field.remove_suffix(2);
  }
  append_canonical_header(c, signature_field, out);
  return out;
}

Sha256Digest header_hash(const HeaderBlock& block, std::span<const std::string> names,
                         Canonicalization c, std::string_view signature_field) {
  return sha256(header_hash_input(block, names, c, signature_field));
}

}  // namespace stampd::auth
