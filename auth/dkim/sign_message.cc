#include "auth/dkim/sign_message.h"

#include "auth/dkim/author.h"
#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/signature.h"

namespace stampd::auth {

net::Result<std::string> sign_message(std::string_view message, std::span<const SigningKey> keys,
                                      const SignOptions& options) {
  const SplitMessage parts = split_message(message);
  auto block = HeaderBlock::parse(std::string(parts.header));
  if (!block) return std::move(block).error();
  BodyHashSet bodies;
  bodies.add(options.canonicalization.body);
  bodies.update(parts.body);
  bodies.finish();
  const Sha256Digest bh = *bodies.digest(options.canonicalization.body);
  std::string fields;
  for (const SigningKey& key : keys) {
    auto field = sign_header_block(*block, bh, key, options);
    if (!field) return std::move(field).error();
    fields += *field;
  }
  return fields + std::string(message);
}

SignOutcome sign_message_by_rules(std::string_view message, const SigningKeys& keyring,
                                  const SignOptions& options) {
  SignOutcome out;
  out.message = std::string(message);
  const SplitMessage parts = split_message(message);
  auto block = HeaderBlock::parse(std::string(parts.header));
  if (!block) {
    out.reason = "not signed: " + block.error().detail;
    return out;
  }
  auto from = author_address(*block);
  if (!from) {
    out.reason = "not signed: " + from.error().detail;
    return out;
  }
  const auto selection = keyring.select(*from);
  if (!selection) {
    out.reason = "not signed: no signing rule matches " + from->local + "@" + from->domain;
    return out;
  }
  auto fail = [&](const std::string& why) {
    const bool closed = selection->rule->on_error == OnError::FailClosed;
    out.kind = closed ? SignOutcome::Kind::Failed : SignOutcome::Kind::Unsigned;
    out.reason = (closed ? "signing failed: " : "not signed (on_error = send-unsigned): ") + why;
    out.message = std::string(message);
    out.key_names.clear();
    return out;
  };
  if (selection->error) return fail(selection->error->detail);

  BodyHashSet bodies;
  bodies.add(options.canonicalization.body);
  bodies.update(parts.body);
  bodies.finish();
  const Sha256Digest bh = *bodies.digest(options.canonicalization.body);
  std::string fields;
  for (const SigningKeys::Key* key : selection->keys) {
    SignOptions o = options;
    o.identity.reset();
    if (selection->identity && identity_within(*selection->identity, key->signing_key->domain)) {
      o.identity = selection->identity;
    }
    auto field = sign_header_block(*block, bh, *key->signing_key, o);
    if (!field) return fail("key \"" + key->spec.name + "\": " + field.error().detail);
    fields += *field;
    out.key_names.push_back(key->spec.name);
  }
  out.kind = SignOutcome::Kind::Signed;
  out.message = fields + std::string(message);
  return out;
}

}  // namespace stampd::auth
