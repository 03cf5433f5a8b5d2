#include "auth/dkim/openssl.h"

#include <openssl/err.h>

namespace stampd::auth::openssl {

std::string take_error(const std::string& fallback) {
  std::string reason;
  // The first error queued is the root cause; later ones are callers
  // wrapping it ("decoder routines::unsupported" after an ASN.1 error).
  unsigned long code = 0;
  bool first = true;
  while ((code = ERR_get_error()) != 0) {
    if (first) {
      const char* r = ERR_reason_error_string(code);
      reason = r != nullptr ? r : "error " + std::to_string(code);
      first = false;
    }
  }
  return reason.empty() ? fallback : reason;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

}  // namespace stampd::auth::openssl
