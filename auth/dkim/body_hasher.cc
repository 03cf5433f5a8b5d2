#include "auth/dkim/body_hasher.h"

#include <algorithm>

namespace stampd::auth {

void BodyHasher::HashSink::write(const char* data, std::size_t size) {
  std::size_t take = size;
  if (limit) {
    const std::uint64_t room = total < *limit ? *limit - total : 0;
    take = static_cast<std::size_t>(std::min<std::uint64_t>(room, size));
  }
  sha.update(reinterpret_cast<const unsigned char*>(data), take);
  total += size;
}

BodyHasher::BodyHasher(Canonicalization c, std::optional<std::uint64_t> length_limit) : canon_(c) {
  sink_.limit = length_limit;
}

void BodyHasher::update(std::string_view chunk) { canon_.update(chunk, sink_); }

Sha256Digest BodyHasher::finish() {
  canon_.finish(sink_);
  return sink_.sha.finish();
}

void BodyHashSet::add(Canonicalization c) {
  auto& slot = c == Canonicalization::Simple ? simple_ : relaxed_;
  if (!slot) slot.emplace(c);
}

void BodyHashSet::update(std::string_view chunk) {
  if (simple_) simple_->update(chunk);
  if (relaxed_) relaxed_->update(chunk);
}

void BodyHashSet::finish() {
  if (simple_ && !simple_digest_) simple_digest_ = simple_->finish();
  if (relaxed_ && !relaxed_digest_) relaxed_digest_ = relaxed_->finish();
}

std::optional<Sha256Digest> BodyHashSet::digest(Canonicalization c) const {
  return c == Canonicalization::Simple ? simple_digest_ : relaxed_digest_;
}

Sha256Digest body_hash(Canonicalization c, std::string_view body) {
  BodyHasher h(c);
  h.update(body);
  return h.finish();
}

}  // namespace stampd::auth
