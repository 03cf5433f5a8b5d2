// dkim_keygen.h: new DKIM keys (RSA 2048/3072, Ed25519) and writing them to
// a private file, for `stampd genkey`. No network; randomness from OpenSSL.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/dkim/keys.h"
#include "net/result.h"

namespace stampd::auth {

enum class KeyAlgorithm { Rsa2048, Rsa3072, Ed25519 };

// parse_key_algorithm reads "rsa-2048", "rsa-3072" or "ed25519".
std::optional<KeyAlgorithm> parse_key_algorithm(std::string_view text) noexcept;
const char* to_string(KeyAlgorithm algorithm) noexcept;

// generate_private_key makes a fresh key.
net::Result<PrivateKey> generate_private_key(KeyAlgorithm algorithm);
// generate_rsa_key makes an RSA key of any size from 1024 to 4096 bits (tests,
// and operators who need 4096).
net::Result<PrivateKey> generate_rsa_key(int bits);

// write_private_key_file writes key as PKCS#8 PEM to a new file with mode
// 0600. An existing file is an error unless overwrite is set, in which case
// it is replaced and its mode forced to 0600.
net::Status write_private_key_file(const std::string& path, const PrivateKey& key,
                                   bool overwrite = false);

}  // namespace stampd::auth
