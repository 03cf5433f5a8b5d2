#include "auth/arc/message_sealer.h"

namespace stampd::auth {

const ArcVerdict& MessageSealer::verify(const KeyLookupFunction& lookup) {
  verdict_ = verifier_.finish(lookup);
  return verdict_;
}

net::Result<ArcSet> MessageSealer::seal(std::string_view fields_on_top,
                                        const Sha256Digest& body_hash, std::string_view authserv_id,
                                        const SigningKey& key, const ArcSealOptions& options) {
  std::string text(fields_on_top);
  text += verifier_.block().text();
  auto block = HeaderBlock::parse(std::move(text));
  if (!block) return std::move(block).error();
  const std::string results = arc_results(verifier_.block(), authserv_id, verdict_.result);
  return seal_message(*block, body_hash, verdict_, results, key, options);
}

}  // namespace stampd::auth
