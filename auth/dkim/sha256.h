// dkim_sha256.h: the one hash DKIM uses here (RFC 6376 §3.3, RFC 8301: sha256
// only). A thin RAII wrapper over OpenSSL's EVP digest; no other behaviour.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string_view>

namespace stampd::auth {

// Sha256Digest is a finished SHA-256 value (32 bytes).
using Sha256Digest = std::array<unsigned char, 32>;

// Sha256 hashes incrementally; update may be called any number of times before
// finish, which may be called once.
class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept = default;
  Sha256& operator=(Sha256&&) noexcept = default;

  void update(std::string_view bytes);
  void update(const unsigned char* data, std::size_t size);
  Sha256Digest finish();

 private:
  struct Free {
    void operator()(void* ctx) const noexcept;
  };
  std::unique_ptr<void, Free> ctx_;  // EVP_MD_CTX, kept opaque to spare includers <openssl/evp.h>
};

// sha256 hashes bytes in one call.
Sha256Digest sha256(std::string_view bytes);

}  // namespace stampd::auth
