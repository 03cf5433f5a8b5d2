#include "auth/dkim/keygen.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "auth/dkim/openssl.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

net::Error io_error(const std::string& path) {
  const int e = errno;
  return make_error(e == EEXIST   ? Errc::BadInput
                    : e == EACCES ? Errc::PermissionDenied
                                  : Errc::Io,
                    path + ": " + std::strerror(e));
}

}  // namespace

std::optional<KeyAlgorithm> parse_key_algorithm(std::string_view text) noexcept {
  if (text == "rsa-2048") return KeyAlgorithm::Rsa2048;
  if (text == "rsa-3072") return KeyAlgorithm::Rsa3072;
  if (text == "ed25519") return KeyAlgorithm::Ed25519;
  return std::nullopt;
}

const char* to_string(KeyAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case KeyAlgorithm::Rsa2048:
      return "rsa-2048";
    case KeyAlgorithm::Rsa3072:
      return "rsa-3072";
    case KeyAlgorithm::Ed25519:
      return "ed25519";
  }
  return "?";
}

net::Result<PrivateKey> generate_rsa_key(int bits) {
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    return make_error(Errc::Unsupported, "RSA keys must have 1024 to 4096 bits");
  }
  EVP_PKEY* p = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits));
  if (p == nullptr) return make_error(Errc::Crypto, "RSA key generation: " + openssl::take_error());
  return PrivateKey::from_evp(p);
}

net::Result<PrivateKey> generate_private_key(KeyAlgorithm algorithm) {
  switch (algorithm) {
    case KeyAlgorithm::Rsa2048:
      return generate_rsa_key(2048);
    case KeyAlgorithm::Rsa3072:
      return generate_rsa_key(3072);
    case KeyAlgorithm::Ed25519: {
      EVP_PKEY* p = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      if (p == nullptr)
        return make_error(Errc::Crypto, "Ed25519 key generation: " + openssl::take_error());
      return PrivateKey::from_evp(p);
    }
  }
  return make_error(Errc::Unsupported, "unknown key algorithm");
}

net::Status write_private_key_file(const std::string& path, const PrivateKey& key, bool overwrite) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, 0600);
  if (fd < 0) return io_error(path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  // O_CREAT's mode only applies to new files (and is masked by umask).
  if (::fchmod(fd, 0600) != 0) return io_error(path);
  std::string pem = key.to_pem();
  std::size_t done = 0;
  while (done < pem.size()) {
    const ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error(path);
    }
    done += static_cast<std::size_t>(n);
  }
  OPENSSL_cleanse(pem.data(), pem.size());
  if (::fsync(fd) != 0) return io_error(path);
  return net::Ok{};
}

}  // namespace stampd::auth
