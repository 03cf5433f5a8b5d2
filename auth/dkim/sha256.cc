#include "auth/dkim/sha256.h"

#include <openssl/evp.h>

#include <new>

namespace stampd::auth {
namespace {

// The fetched implementation is cached: EVP_sha256() makes every
// EVP_DigestInit_ex repeat an implicit provider fetch (OpenSSL 3 "Performance").
const EVP_MD* sha256_md() {
  static EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : const_cast<EVP_MD*>(EVP_sha256());
  }();
  return md;
}

}  // namespace

void Sha256::Free::operator()(void* ctx) const noexcept {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx));
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  // Allocation or init failure here means the process is out of memory or
  // OpenSSL is broken; neither is an input error, so it is not a Result.
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_.get()), sha256_md(), nullptr) != 1) {
    throw std::bad_alloc();
  }
}

void Sha256::update(std::string_view bytes) {
  update(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

void Sha256::update(const unsigned char* data, std::size_t size) {
  if (size != 0) EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_.get()), data, size);
}

Sha256Digest Sha256::finish() {
  Sha256Digest out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_.get()), out.data(), &len);
  return out;
}

Sha256Digest sha256(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

}  // namespace stampd::auth
