// arc_sealer.h: makes the ARC set a sealer adds (RFC 8617 §5.1):
// ARC-Authentication-Results, ARC-Message-Signature and ARC-Seal. Pure: the
// chain's verdict, the time and the key are given; nothing is logged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/arc/arc_verifier.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/sha256.h"
#include "auth/dkim/signer.h"
#include "net/result.h"

namespace stampd::auth {

// arc_results makes the payload of our ARC-Authentication-Results after
// "i=N; ": the authserv-id, our arc= verdict, then the results of every
// Authentication-Results field of block whose authserv-id is ours (RFC 8601:
// our ADMD's verdicts, which the MTA in front of us must have stripped from
// mail arriving from outside), merged in order, each "none" and each arc=
// of theirs left out (ours replaces it). Each result ends up on its own line.
std::string arc_results(const HeaderBlock& block, std::string_view authserv_id,
                        ChainValidation arc);

struct ArcSealOptions {
  std::int64_t timestamp = 0;  // t= of the signature and the seal
  // headers chooses the ARC-Message-Signature's h= (ARC fields never in it).
  HeaderPolicy headers;
  // explicit_headers, when non-empty, is h= exactly (for published vectors).
  std::vector<std::string> explicit_headers;
};

// ArcSet is the three fields, each "Name: value" folded and CRLF-terminated,
// in the order they go on top of the message (seal first).
struct ArcSet {
  std::string seal;
  std::string message_signature;
  std::string results;
};

// seal_message makes set number verdict.next_instance() for a message whose
// header is block (as it leaves: the ARC sets already in it and whatever
// was added before sealing) and whose relaxed body hash is body_hash.
// results is the AAR payload (arc_results). The seal covers the earlier
// sets when verdict.result is pass; on fail only the new set (§5.1.2).
// Errors: BadInput when no set may be added (the newest seal says cv=fail,
// or instance 50 is taken), Crypto when signing fails.
net::Result<ArcSet> seal_message(const HeaderBlock& block, const Sha256Digest& body_hash,
                                 const ArcVerdict& verdict, std::string_view results,
                                 const SigningKey& key, const ArcSealOptions& options);

}  // namespace stampd::auth
