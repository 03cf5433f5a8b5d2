#include "tests/support/dkim_signing.h"

#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/message_splitter.h"

namespace stampd::test {

net::Result<std::string> sign_message(std::string_view message,
                                      std::span<const auth::SigningKey> keys,
                                      const auth::SignOptions& options) {
  const auth::SplitMessage parts = auth::split_message(message);
  auto block = auth::HeaderBlock::parse(std::string(parts.header));
  if (!block) return std::move(block).error();
  const auth::Sha256Digest bh = auth::body_hash(options.canonicalization.body, parts.body);
  std::string fields;
  for (const auth::SigningKey& key : keys) {
    auto field = auth::sign_header_block(*block, bh, key, options);
    if (!field) return std::move(field).error();
    fields += *field;
  }
  return fields + std::string(message);
}

}  // namespace stampd::test
