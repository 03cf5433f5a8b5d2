// dkim_body_hasher.h: the body hash (bh=, RFC 6376 §3.7) computed while the
// body streams in, one hasher per body canonicalization. Pure: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "auth/dkim/body_canonicalizer.h"
#include "auth/dkim/sha256.h"

namespace stampd::auth {

// BodyHasher canonicalizes and SHA-256-hashes a body fed in chunks.
//
// The caller splits header from body (dkim_message_splitter.h does it for a
// stream) and feeds only body bytes, CRLF-normalized and dot-unstuffed, in
// chunks of any size. length_limit is the verifier's l= (RFC 6376 §3.5): only
// that many canonical octets are hashed. Signers never use it.
class BodyHasher {
 public:
  explicit BodyHasher(Canonicalization c, std::optional<std::uint64_t> length_limit = std::nullopt);

  // update feeds the next chunk of the body.
  void update(std::string_view chunk);
  // finish ends the body and returns the hash; call once.
  Sha256Digest finish();

  Canonicalization canonicalization() const noexcept { return canon_.canonicalization(); }
  // canonical_length is the number of canonical octets so far (all of them,
  // not only those under the limit); final after finish.
  std::uint64_t canonical_length() const noexcept { return sink_.total; }

 private:
  struct HashSink final : BodySink {
    void write(const char* data, std::size_t size) override;
    Sha256 sha;
    std::optional<std::uint64_t> limit;
    std::uint64_t total = 0;
  };
  BodyCanonicalizer canon_;
  HashSink sink_;
};

// BodyHashSet holds one BodyHasher per distinct body canonicalization, so
// that several signatures (RSA + Ed25519, or two domains) share one pass over
// the body: add() the canonicalizations the chosen keys need, update() with
// each chunk, finish() at end of data, then digest() per signature.
class BodyHashSet {
 public:
  // add makes sure a hasher for c exists; call before the first update.
  void add(Canonicalization c);
  bool empty() const noexcept { return !simple_ && !relaxed_; }
  void update(std::string_view chunk);
  void finish();
  // digest is the finished hash for c; nullopt if c was not added or finish
  // was not called.
  std::optional<Sha256Digest> digest(Canonicalization c) const;

 private:
  std::optional<BodyHasher> simple_;
  std::optional<BodyHasher> relaxed_;
  std::optional<Sha256Digest> simple_digest_;
  std::optional<Sha256Digest> relaxed_digest_;
};

// body_hash hashes a whole body in one call.
Sha256Digest body_hash(Canonicalization c, std::string_view body);

}  // namespace stampd::auth
