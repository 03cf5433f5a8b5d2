// dkim_header_hash.h: the header-hash input of RFC 6376 §3.7 (the h= fields,
// canonicalized, then the DKIM-Signature field with an empty b=, without its
// final CRLF) and its SHA-256. Shared by signer and verifier. Pure.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "auth/dkim/canonicalization.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/sha256.h"

namespace stampd::auth {

// header_hash_input returns the exact bytes that are hashed. names is the
// h= list; signature_field is the DKIM-Signature field with the b= value
// emptied and no trailing CRLF.
std::string header_hash_input(const HeaderBlock& block, std::span<const std::string> names,
                              Canonicalization c, std::string_view signature_field);

// header_hash is SHA-256 of header_hash_input.
Sha256Digest header_hash(const HeaderBlock& block, std::span<const std::string> names,
                         Canonicalization c, std::string_view signature_field);

}  // namespace stampd::auth
