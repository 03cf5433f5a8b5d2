#include "auth/arc/message_sealer.h"

namespace stampd::auth {

const ArcVerdict& MessageSealer::verify(const KeyLookupFunction& lookup) {
  verdict_ = verifier_.finish(lookup);
  hashes_.finish();
  return verdict_;
}

net::Result<ArcSet> MessageSealer::seal(std::string_view fields_on_top,
                                        std::string_view authserv_id, const SigningKey& key,
                                        const ArcSealOptions& options) {
  std::string text(fields_on_top);
  text += verifier_.block().text();
  auto block = HeaderBlock::parse(std::move(text));
  if (!block) return std::move(block).error();
  const std::string results = arc_results(verifier_.block(), authserv_id, verdict_.result);
  return seal_message(*block, *hashes_.digest(Canonicalization::Relaxed), verdict_, results, key,
                      options);
}

}  // namespace stampd::auth
