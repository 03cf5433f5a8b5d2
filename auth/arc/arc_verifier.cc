#include "auth/arc/arc_verifier.h"

#include <algorithm>

#include "auth/dkim/canonicalization.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/sha256.h"

namespace stampd::auth {
namespace {

// verify_seal checks seal number i (1-based) of chain over block; temporary
// is set when its key could not be fetched now.
std::optional<std::string> verify_seal(const HeaderBlock& block, const ArcChain& chain,
                                       std::size_t i, const KeyLookupFunction& lookup,
                                       const VerifyOptions& options, bool& temporary) {
  const ArcSeal& seal = chain.seals[i - 1];
  const std::string where =
      "ARC-Seal i=" + std::to_string(i) + " (d=" + seal.domain + " s=" + seal.selector + "): ";
  const KeyLookup found = lookup(seal.domain, seal.selector);
  if (!found.record) {
    temporary = found.failure == VerifyStatus::TempError;
    return where + found.reason;
  }
  if (auto unusable = unusable_key(*found.record, seal.key_type, seal.algorithm, options)) {
    return where + unusable->second;
  }
  const std::vector<ArcChain::Set> earlier(chain.sets.begin(),
                                           chain.sets.begin() + static_cast<std::ptrdiff_t>(i - 1));
  const ArcChain::Set& own = chain.sets[i - 1];
  const std::string input =
      arc_seal_hash_input(block, earlier, block.field(own.results).raw,
                          block.field(own.signature).raw, seal.field_without_b);
  if (!found.record->key->verify_digest(sha256(input), seal.signature)) {
    return where + "signature mismatch";
  }
  return std::nullopt;
}

}  // namespace

std::optional<int> ArcVerdict::next_instance() const {
  if (latest_failed || highest >= kMaxArcInstance) return std::nullopt;
  return highest + 1;
}

std::string arc_seal_hash_input(const HeaderBlock& block,
                                const std::vector<ArcChain::Set>& earlier_sets,
                                std::string_view results, std::string_view message_signature,
                                std::string_view seal_without_b) {
  constexpr auto relaxed = Canonicalization::Relaxed;
  std::string out;
  for (const ArcChain::Set& set : earlier_sets) {
    append_canonical_header(relaxed, block.field(set.results).raw, out);
    append_canonical_header(relaxed, block.field(set.signature).raw, out);
    append_canonical_header(relaxed, block.field(set.seal).raw, out);
  }
  append_canonical_header(relaxed, results, out);
  append_canonical_header(relaxed, message_signature, out);
  if (seal_without_b.ends_with("\r\n")) seal_without_b.remove_suffix(2);
  append_canonical_header(relaxed, seal_without_b, out);
  return out;
}

void ArcVerifier::header(HeaderBlock block) {
  block_ = std::move(block);
  chain_ = collect_arc_chain(block_, options_.max_sets);
  if (chain_.state == ChainValidation::Pass) {
    hasher_.emplace(chain_.newest->canonicalization.body, chain_.newest->body_length);
  }
}

void ArcVerifier::body(std::string_view chunk) {
  if (hasher_) hasher_->update(chunk);
}

std::vector<std::pair<std::string, std::string>> ArcVerifier::wanted_keys() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (chain_.state != ChainValidation::Pass) return out;
  auto want = [&out](const std::string& d, const std::string& s) {
    std::pair<std::string, std::string> key{d, s};
    if (std::find(out.begin(), out.end(), key) == out.end()) out.push_back(std::move(key));
  };
  want(chain_.newest->domain, chain_.newest->selector);
  for (auto it = chain_.seals.rbegin(); it != chain_.seals.rend(); ++it)
    want(it->domain, it->selector);
  return out;
}

ArcVerdict ArcVerifier::finish(const KeyLookupFunction& lookup) {
  ArcVerdict verdict;
  verdict.highest = chain_.highest;
  verdict.latest_failed = chain_.latest_failed;
  verdict.result = chain_.state;
  verdict.reason = chain_.reason;
  if (chain_.state != ChainValidation::Pass) return verdict;
  auto fail = [&verdict](std::string reason) {
    verdict.result = ChainValidation::Fail;
    verdict.reason = std::move(reason);
    return verdict;
  };

  // §5.2 step 5: the newest ARC-Message-Signature, as a DKIM signature.
  const ParsedSignature& ams = *chain_.newest;
  BodyDigest body{hasher_->finish(), hasher_->canonical_length()};
  const SignatureResult checked = check_signature(block_, ams, body, lookup, options_.signatures);
  if (checked.status != VerifyStatus::Pass) {
    verdict.temporary = checked.status == VerifyStatus::TempError;
    return fail("ARC-Message-Signature i=" + std::to_string(ams.instance) + " (d=" + ams.domain +
                " s=" + ams.selector + "): " + checked.reason);
  }
  // §5.2 step 7: every seal, newest first.
  for (std::size_t i = chain_.seals.size(); i >= 1; --i) {
    if (auto why = verify_seal(block_, chain_, i, lookup, options_.signatures, verdict.temporary))
      return fail(*why);
  }
  verdict.reason = std::to_string(chain_.seals.size()) + " set(s) verified";
  return verdict;
}

ArcVerdict verify_arc_message(std::string_view message, const KeyLookupFunction& lookup,
                              const ArcVerifyOptions& options) {
  const SplitMessage parts = split_message(message);
  auto block = HeaderBlock::parse(std::string(parts.header));
  if (!block) {
    ArcVerdict verdict;
    verdict.result = ChainValidation::Fail;
    verdict.reason = "malformed header section: " + block.error().detail;
    verdict.latest_failed = true;  // nothing can be sealed on top of it
    return verdict;
  }
  ArcVerifier verifier(options);
  verifier.header(std::move(*block));
  verifier.body(parts.body);
  return verifier.finish(lookup);
}

}  // namespace stampd::auth
