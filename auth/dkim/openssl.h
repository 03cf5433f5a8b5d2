// dkim_openssl.h: owning handles for the OpenSSL objects the DKIM key code
// uses, and OpenSSL's error queue as text. Internal to auth/dkim_*.cc.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

namespace stampd::auth::openssl {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const noexcept { BIO_free_all(p); }
};

using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

// take_error empties OpenSSL's thread-local error queue and returns its most
// specific reason, or fallback when the queue was empty.
std::string take_error(const std::string& fallback = "OpenSSL reported no detail");

// bio_text returns what was written to a memory BIO.
std::string bio_text(BIO* bio);

}  // namespace stampd::auth::openssl
