// dkim_keys.h: DKIM keys on OpenSSL 3 EVP: loading PEM private keys (RSA
// PKCS#1 or PKCS#8, Ed25519 PKCS#8) from memory or from a file whose mode is
// checked, the RSA size rules of RFC 8301 §3.2, public keys in the two p=
// forms, and the two signature operations over a SHA-256 header hash.
#pragma once

#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/dkim/sha256.h"
#include "net/result.h"

namespace stampd::auth {

enum class KeyType { Rsa, Ed25519 };

// key_type_name is the key record k= value: "rsa" or "ed25519".
const char* key_type_name(KeyType type) noexcept;
// algorithm_name is the a= value: "rsa-sha256" or "ed25519-sha256".
const char* algorithm_name(KeyType type) noexcept;
// key_type_for_algorithm maps an a= value to its key type; nullopt for
// anything else (rsa-sha1 included: RFC 8301 §3.1 forbids it).
std::optional<KeyType> key_type_for_algorithm(std::string_view algorithm) noexcept;

// RSA sizes (RFC 8301 §3.2): signers MUST use at least 1024 bits and SHOULD
// use 2048; verifiers must handle 1024-4096.
inline constexpr int kMinRsaBits = 1024;
inline constexpr int kRecommendedRsaBits = 2048;
inline constexpr int kMaxRsaBits = 4096;

// PublicKey is an immutable, cheaply copied verification key.
class PublicKey {
 public:
  KeyType type() const noexcept { return type_; }
  int bits() const noexcept { return bits_; }

  // from_p_value builds a key from decoded p= bytes: for rsa a DER
  // SubjectPublicKeyInfo (also a bare PKCS#1 RSAPublicKey, which some old
  // records hold), for ed25519 the raw 32-byte key (RFC 8463 §4.2).
  static net::Result<PublicKey> from_p_value(KeyType type, std::string_view der);
  // from_pem reads a "BEGIN PUBLIC KEY" PEM (RSA or Ed25519).
  static net::Result<PublicKey> from_pem(std::string_view pem);

  // p_value is the decoded p= for this key (SPKI DER, or raw Ed25519 key).
  std::string p_value() const;
  // to_pem is the SubjectPublicKeyInfo PEM.
  std::string to_pem() const;
  // verify_digest checks a DKIM signature over header_hash, the SHA-256 of
  // the header-hash input (RFC 6376 §3.7): RSASSA-PKCS1-v1_5 for rsa, Ed25519
  // over the 32 digest bytes for ed25519 (RFC 8463 §3).
  bool verify_digest(const Sha256Digest& header_hash, std::string_view signature) const;
  // same_key tells whether other holds the same public key.
  bool same_key(const PublicKey& other) const;
  EVP_PKEY* evp() const noexcept { return pkey_.get(); }

 private:
  PublicKey(std::shared_ptr<EVP_PKEY> pkey, KeyType type, int bits)
      : pkey_(std::move(pkey)), type_(type), bits_(bits) {}
  friend class PrivateKey;
  std::shared_ptr<EVP_PKEY> pkey_;
  KeyType type_;
  int bits_;
};

// PrivateKey is an immutable signing key; copies share the OpenSSL object,
// which may be used from several threads at once.
class PrivateKey {
 public:
  KeyType type() const noexcept { return type_; }
  int bits() const noexcept { return bits_; }
  // weak is true for RSA keys below 2048 bits: accepted, but the caller
  // should warn (key_warning gives the text).
  bool weak() const noexcept { return type_ == KeyType::Rsa && bits_ < kRecommendedRsaBits; }

  // from_evp takes ownership of a key and applies the type and size rules.
  static net::Result<PrivateKey> from_evp(EVP_PKEY* owned);

  // sign_digest signs header_hash, the SHA-256 of the header-hash input: the
  // b= bytes for rsa-sha256 (PKCS#1 v1.5 with a SHA-256 DigestInfo) or
  // ed25519-sha256 (PureEdDSA over the 32 digest bytes, RFC 8463 §3).
  net::Result<std::string> sign_digest(const Sha256Digest& header_hash) const;
  PublicKey public_key() const;
  // to_pem writes the key as unencrypted PKCS#8 PEM.
  std::string to_pem() const;
  EVP_PKEY* evp() const noexcept { return pkey_.get(); }

 private:
  PrivateKey(std::shared_ptr<EVP_PKEY> pkey, KeyType type, int bits)
      : pkey_(std::move(pkey)), type_(type), bits_(bits) {}
  std::shared_ptr<EVP_PKEY> pkey_;
  KeyType type_;
  int bits_;
  // An RSA signing context set up once per key (padding, digest): each
  // signature works on a copy, 0.1 us where a fresh set-up costs 3-4 us
  // (the algorithm fetch). Only ever read, so the threads can share it.
  std::shared_ptr<EVP_PKEY_CTX> rsa_sign_;
};

// load_private_key_pem parses a PEM private key: "BEGIN RSA PRIVATE KEY"
// (PKCS#1), "BEGIN PRIVATE KEY" (PKCS#8, RSA or Ed25519). Errors say what is
// wrong: no PEM block, a public key, an encrypted key, another key type, an
// RSA size outside 1024-4096.
net::Result<PrivateKey> load_private_key_pem(std::string_view pem);

// load_private_key_file reads and parses a PEM key file. A file readable by
// group or others is refused (PermissionDenied, naming the mode and the fix)
// unless allow_group_readable is set; the key is a secret and should be 0600
// or 0400.
net::Result<PrivateKey> load_private_key_file(const std::string& path,
                                              bool allow_group_readable = false);

// key_warning returns a warning for a usable but weak key (RSA < 2048 bits).
std::optional<std::string> key_warning(const PrivateKey& key);

}  // namespace stampd::auth
