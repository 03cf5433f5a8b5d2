// message_sealer.h: adds an ARC set to one message as it streams (the
// proxy's path): the header block once, the body chunks, then the incoming
// chain's keys and the seal. No sockets, no log, no clock: the caller
// fetches the keys and passes the time.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/arc/arc_sealer.h"
#include "auth/arc/arc_verifier.h"

namespace stampd::auth {

class MessageSealer {
 public:
  explicit MessageSealer(ArcVerifyOptions options) : verifier_(options) {}

  // header takes the incoming header block (as received), before the body.
  void header(HeaderBlock block) { verifier_.header(std::move(block)); }
  // body feeds the next body chunk (CRLF text, dot-unstuffed).
  void body(std::string_view chunk) { verifier_.body(chunk); }
  // wanted_keys lists the (d=, s=) keys verify needs, each once.
  std::vector<std::pair<std::string, std::string>> wanted_keys() const {
    return verifier_.wanted_keys();
  }
  // verify validates the incoming chain with keys from lookup; call once,
  // after the body.
  const ArcVerdict& verify(const KeyLookupFunction& lookup);
  // seal makes the set over the message as it leaves: fields_on_top (the
  // fields added in front of it before sealing, each ending CRLF) above the
  // incoming header, and the body whose relaxed hash is body_hash (the
  // signer's, from its one pass over the body). The AAR carries our arc=
  // verdict and the results of the Authentication-Results fields that name
  // authserv_id.
  net::Result<ArcSet> seal(std::string_view fields_on_top, const Sha256Digest& body_hash,
                           std::string_view authserv_id, const SigningKey& key,
                           const ArcSealOptions& options);

  const ArcVerdict& verdict() const noexcept { return verdict_; }

 private:
  ArcVerifier verifier_;
  ArcVerdict verdict_;
};

}  // namespace stampd::auth
