#include "auth/dkim/keys.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "auth/dkim/openssl.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

constexpr std::size_t kMaxKeyFileBytes = 1024 * 1024;

// Passphrase callback that refuses: a key needing one cannot be used by a
// daemon, and OpenSSL must not prompt on a terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

std::shared_ptr<EVP_PKEY> share(EVP_PKEY* p) { return std::shared_ptr<EVP_PKEY>(p, EVP_PKEY_free); }

std::optional<KeyType> type_of(const EVP_PKEY* pkey) {
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
      return KeyType::Rsa;
    case EVP_PKEY_ED25519:
      return KeyType::Ed25519;
    default:
      return std::nullopt;
  }
}

std::string describe_type(const EVP_PKEY* pkey) {
  const char* name = EVP_PKEY_get0_type_name(pkey);
  return name != nullptr ? name : "unknown";
}

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

net::Error size_error(int bits) {
  return make_error(Errc::Unsupported,
                    "RSA key has " + std::to_string(bits) +
                        " bits; DKIM keys must have 1024 to 4096 bits (RFC 8301 §3.2)");
}

}  // namespace

const char* key_type_name(KeyType type) noexcept {
  return type == KeyType::Rsa ? "rsa" : "ed25519";
}

const char* algorithm_name(KeyType type) noexcept {
  return type == KeyType::Rsa ? "rsa-sha256" : "ed25519-sha256";
}

std::optional<KeyType> key_type_for_algorithm(std::string_view algorithm) noexcept {
  if (algorithm == "rsa-sha256") return KeyType::Rsa;
  if (algorithm == "ed25519-sha256") return KeyType::Ed25519;
  return std::nullopt;
}

// ---- PublicKey ----

net::Result<PublicKey> PublicKey::from_p_value(KeyType type, std::string_view der) {
  ERR_clear_error();
  if (type == KeyType::Ed25519) {
    // RFC 8463 §4.2: p= is the bare 32-byte public key, not an SPKI.
    if (der.size() != 32) {
      return make_error(Errc::BadInput,
                        "ed25519 p= must be 32 bytes, got " + std::to_string(der.size()));
    }
    EVP_PKEY* p = EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(der.data()), der.size());
    if (p == nullptr) return make_error(Errc::Crypto, "ed25519 key: " + openssl::take_error());
    return PublicKey(share(p), KeyType::Ed25519, 256);
  }
  const auto* data = reinterpret_cast<const unsigned char*>(der.data());
  const auto size = static_cast<long>(der.size());
  const unsigned char* cursor = data;
  EVP_PKEY* p = d2i_PUBKEY(nullptr, &cursor, size);
  if (p == nullptr) {
    // RFC 6376 §3.6.1 is read by some as PKCS#1 RSAPublicKey; accept both.
    ERR_clear_error();
    cursor = data;
    p = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &cursor, size);
  }
  if (p == nullptr)
    return make_error(Errc::BadInput, "p= is not a DER RSA public key: " + openssl::take_error());
  auto owned = share(p);
  if (type_of(p) != KeyType::Rsa) {
    return make_error(Errc::BadInput, "k=rsa but p= holds a " + describe_type(p) + " key");
  }
  return PublicKey(std::move(owned), KeyType::Rsa, EVP_PKEY_get_bits(p));
}

net::Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  ERR_clear_error();
  openssl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* p = PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr);
  if (p == nullptr)
    return make_error(Errc::BadInput, "not a PEM public key: " + openssl::take_error());
  auto owned = share(p);
  const auto type = type_of(p);
  if (!type)
    return make_error(Errc::Unsupported,
                      describe_type(p) + " keys are not DKIM keys (rsa, ed25519)");
  return PublicKey(std::move(owned), *type, *type == KeyType::Rsa ? EVP_PKEY_get_bits(p) : 256);
}

std::string PublicKey::p_value() const {
  if (type_ == KeyType::Ed25519) {
    std::string raw(32, '\0');
    std::size_t len = raw.size();
    EVP_PKEY_get_raw_public_key(pkey_.get(), reinterpret_cast<unsigned char*>(raw.data()), &len);
    raw.resize(len);
    return raw;
  }
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey_.get(), &der);
  if (len <= 0) return {};
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string PublicKey::to_pem() const {
  openssl::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), pkey_.get());
  return openssl::bio_text(bio.get());
}

bool PublicKey::verify_digest(const Sha256Digest& header_hash, std::string_view signature) const {
  ERR_clear_error();
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  bool ok = false;
  if (type_ == KeyType::Ed25519) {
    openssl::MdCtxPtr ctx(EVP_MD_CTX_new());
    ok = ctx &&
         EVP_DigestVerifyInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, pkey_.get(),
                                 nullptr) == 1 &&
         EVP_DigestVerify(ctx.get(), sig, signature.size(), header_hash.data(),
                          header_hash.size()) == 1;
  } else {
    openssl::PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey_.get(), nullptr));
    ok = ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1 &&
         EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) == 1 &&
         EVP_PKEY_verify(ctx.get(), sig, signature.size(), header_hash.data(),
                         header_hash.size()) == 1;
  }
  ERR_clear_error();  // a bad signature queues errors; they are not ours to keep
  return ok;
}

bool PublicKey::same_key(const PublicKey& other) const {
  return EVP_PKEY_eq(pkey_.get(), other.pkey_.get()) == 1;
}

// ---- PrivateKey ----

net::Result<PrivateKey> PrivateKey::from_evp(EVP_PKEY* owned) {
  auto pkey = share(owned);
  const auto type = type_of(owned);
  if (!type) {
    return make_error(
        Errc::Unsupported,
        describe_type(owned) + " keys cannot sign DKIM; use RSA or Ed25519 (RFC 6376, RFC 8463)");
  }
  if (*type == KeyType::Ed25519) return PrivateKey(std::move(pkey), KeyType::Ed25519, 256);
  const int bits = EVP_PKEY_get_bits(owned);
  if (bits < kMinRsaBits || bits > kMaxRsaBits) return size_error(bits);
  ERR_clear_error();
  std::shared_ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, owned, nullptr),
                                    EVP_PKEY_CTX_free);
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) {
    return make_error(Errc::Crypto, "rsa sign: " + openssl::take_error());
  }
  PrivateKey key(std::move(pkey), KeyType::Rsa, bits);
  key.rsa_sign_ = std::move(ctx);
  return key;
}

net::Result<std::string> PrivateKey::sign_digest(const Sha256Digest& header_hash) const {
  ERR_clear_error();
  std::string sig;
  std::size_t len = 0;
  if (type_ == KeyType::Ed25519) {
    openssl::MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx ||
        EVP_DigestSignInit_ex(ctx.get(), nullptr, nullptr, nullptr, nullptr, pkey_.get(),
                              nullptr) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, header_hash.data(), header_hash.size()) != 1) {
      return make_error(Errc::Crypto, "ed25519 sign: " + openssl::take_error());
    }
    sig.resize(len);
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       header_hash.data(), header_hash.size()) != 1) {
      return make_error(Errc::Crypto, "ed25519 sign: " + openssl::take_error());
    }
  } else {
    openssl::PkeyCtxPtr ctx(EVP_PKEY_CTX_dup(rsa_sign_.get()));
    if (!ctx ||
        EVP_PKEY_sign(ctx.get(), nullptr, &len, header_hash.data(), header_hash.size()) != 1) {
      return make_error(Errc::Crypto, "rsa sign: " + openssl::take_error());
    }
    sig.resize(len);
    if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                      header_hash.data(), header_hash.size()) != 1) {
      return make_error(Errc::Crypto, "rsa sign: " + openssl::take_error());
    }
  }
  sig.resize(len);
  return sig;
}

PublicKey PrivateKey::public_key() const {
  // The EVP_PKEY holds both halves; the public side only uses the public
  // part, and DER round trip would cost for nothing.
  return PublicKey(pkey_, type_, bits_);
}

std::string PrivateKey::to_pem() const {
  openssl::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return openssl::bio_text(bio.get());
}

// ---- loading ----

net::Result<PrivateKey> load_private_key_pem(std::string_view pem) {
  if (!contains(pem, "-----BEGIN ")) {
    return make_error(Errc::BadInput,
                      "no PEM block found (expected \"-----BEGIN PRIVATE KEY-----\" or "
                      "\"-----BEGIN RSA PRIVATE KEY-----\")");
  }
  if (!contains(pem, "PRIVATE KEY-----")) {
    if (contains(pem, "PUBLIC KEY-----")) {
      return make_error(Errc::BadInput, "this is a public key; signing needs the private key");
    }
    return make_error(Errc::BadInput, "PEM block is not a private key");
  }
  if (contains(pem, "ENCRYPTED")) {
    return make_error(Errc::Unsupported,
                      "encrypted private keys are not supported; store it decrypted with mode 0600 "
                      "(openssl pkey -in KEY -out KEY.new)");
  }
  ERR_clear_error();
  openssl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* p = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (p == nullptr)
    return make_error(Errc::BadInput, "cannot parse PEM private key: " + openssl::take_error());
  return PrivateKey::from_evp(p);
}

net::Result<PrivateKey> load_private_key_file(const std::string& path, bool allow_group_readable) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    const Errc code = e == ENOENT   ? Errc::NotFound
                      : e == EACCES ? Errc::PermissionDenied
                                    : Errc::Io;
    return make_error(code, path + ": " + std::strerror(e));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(Errc::Io, path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error(Errc::BadInput, path + ": not a regular file");
  // The mode is checked on the opened file (fstat), so a rename between the
  // check and the read cannot swap in another file.
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0 && !allow_group_readable) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(Errc::PermissionDenied,
                      path + ": private key is readable by group or others (mode " + mode +
                          "); run \"chmod 600 " + path +
                          "\", or allow group-readable keys explicitly in the configuration");
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxKeyFileBytes) {
    return make_error(Errc::LimitExceeded, path + ": larger than 1 MiB, not a key file");
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(Errc::Io, path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxKeyFileBytes)
      return make_error(Errc::LimitExceeded, path + ": larger than 1 MiB");
  }
  auto key = load_private_key_pem(text);
  OPENSSL_cleanse(text.data(), text.size());
  OPENSSL_cleanse(buf, sizeof buf);
  if (!key) {
    net::Error e = std::move(key).error();
    e.detail = path + ": " + e.detail;
    return e;
  }
  return key;
}

std::optional<std::string> key_warning(const PrivateKey& key) {
  if (!key.weak()) return std::nullopt;
  return "RSA key has " + std::to_string(key.bits()) +
         " bits; RFC 8301 §3.2 asks for at least 2048 and receivers may distrust shorter keys";
}

}  // namespace stampd::auth
