// arc_verifier.h: validates a message's ARC chain (RFC 8617 §5.2) as the
// message streams: the header block once, then body chunks, then the keys.
// Pure apart from the key lookup the caller supplies: no DNS, no clock, no log.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/arc/arc_chain.h"
#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/verifier.h"

namespace stampd::auth {

struct ArcVerifyOptions {
  VerifyOptions signatures;  // the time, the smallest RSA key, clock skew
  int max_sets = kDefaultMaxArcSets;
};

// ArcVerdict is the chain's validation state (the arc= result and the cv=
// of the next seal), why, and the instance a new set would take.
struct ArcVerdict {
  ChainValidation result = ChainValidation::None;
  std::string reason;
  int highest = 0;             // highest instance found (0: no chain)
  bool latest_failed = false;  // the newest seal says cv=fail: add no set (§5.1.1)
  // temporary: a key could not be fetched now (DNS SERVFAIL, timeout), so
  // the fail may not be final; a sealer should not stamp cv=fail on it.
  bool temporary = false;
  // next_instance is the i= of a set added now; nullopt: none may be added.
  std::optional<int> next_instance() const;
};

// ArcVerifier validates one message: header, body chunks, wanted_keys, finish.
class ArcVerifier {
 public:
  explicit ArcVerifier(ArcVerifyOptions options = {}) : options_(options) {}

  // header takes the parsed header block, before the body.
  void header(HeaderBlock block);
  // body feeds the next body chunk (CRLF text, dot-unstuffed).
  void body(std::string_view chunk);
  // wanted_keys lists the (d=, s=) keys finish will ask the lookup for,
  // each once: the newest message signature's and every seal's. Empty when
  // the chain is absent or already failed on its structure.
  std::vector<std::pair<std::string, std::string>> wanted_keys() const;
  // finish validates the chain (§5.2 steps 5 and 7: the newest
  // ARC-Message-Signature, then every ARC-Seal from the newest down). Call once.
  ArcVerdict finish(const KeyLookupFunction& lookup);

  const HeaderBlock& block() const noexcept { return block_; }
  const ArcChain& chain() const noexcept { return chain_; }

 private:
  ArcVerifyOptions options_;
  HeaderBlock block_;
  ArcChain chain_;
  std::optional<BodyHasher> hasher_;
};

// verify_arc_message validates the chain of a whole message (CRLF text).
ArcVerdict verify_arc_message(std::string_view message, const KeyLookupFunction& lookup,
                              const ArcVerifyOptions& options = {});

// arc_seal_hash_input is what the seal of instance covers (§5.1.1): for
// each set 1..instance, its ARC-Authentication-Results,
// ARC-Message-Signature and ARC-Seal, relaxed, in that order; the last seal
// is given as seal_without_b (its b= value empty) and has no CRLF.
std::string arc_seal_hash_input(const HeaderBlock& block,
                                const std::vector<ArcChain::Set>& earlier_sets,
                                std::string_view results, std::string_view message_signature,
                                std::string_view seal_without_b);

}  // namespace stampd::auth
