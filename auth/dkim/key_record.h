// dkim_key_record.h: the DNS TXT key record at selector._domainkey.domain
// (RFC 6376 §3.6.1, RFC 8463 §4): parsing it for the verifier, writing it
// (and its zone-file line) for key generation and dns-check. Pure.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/keys.h"
#include "net/result.h"

namespace stampd::auth {

// KeyRecord is a parsed key record. key is nullopt when p= is empty: the
// key has been revoked (§3.6.1).
struct KeyRecord {
  KeyType type = KeyType::Rsa;
  std::optional<PublicKey> key;
  bool testing = false;                      // t=y: the domain is testing DKIM
  bool strict = false;                       // t=s: i= must be in exactly d=, not a subdomain
  std::vector<std::string> hash_algorithms;  // h=; empty means any

  bool revoked() const noexcept { return !key.has_value(); }
};

// parse_key_record parses a TXT record value (strings already joined).
// Errors: BadInput for a malformed record (bad tag list, v= not first or not
// DKIM1, missing p=, bad base64 or key bytes, h= without sha256, s= without
// email or *), Unsupported for an unknown k=.
net::Result<KeyRecord> parse_key_record(std::string_view txt);

// make_key_record writes "v=DKIM1; k=rsa; p=<base64>" for key (p= is the
// SPKI DER for rsa, the raw 32-byte key for ed25519, RFC 8463 §4.2).
std::string make_key_record(const PublicKey& key);

// split_txt_strings cuts a record into character-strings of at most
// max_size bytes (a TXT character-string holds 255 bytes, RFC 1035 §3.3).
std::vector<std::string> split_txt_strings(std::string_view record, std::size_t max_size = 255);

// zone_file_line writes `selector._domainkey.domain. IN TXT ( "..." "..." )`.
std::string zone_file_line(std::string_view selector, std::string_view domain,
                           std::string_view record);

// parse_public_key_text reads an offline verification key given by a user:
// a PEM public key, a PEM private key (its public half is used), a bare
// record "v=DKIM1; k=...; p=...", or a zone-file line / quoted strings as
// zone_file_line writes them (the quoted strings are joined).
net::Result<KeyRecord> parse_public_key_text(std::string_view text);

// load_public_key_file reads a file in any form parse_public_key_text takes
// (e.g. the S.txt that genkey writes, or a PEM), for `stampd verify
// --key-file`. Errors are prefixed with the path.
net::Result<KeyRecord> load_public_key_file(const std::string& path);

}  // namespace stampd::auth
