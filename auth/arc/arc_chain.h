// arc_chain.h: the ARC sets of a message (RFC 8617 §4): the three fields of
// each instance found in a header block, parsed, with the structural checks
// of §5.2 steps 2-4 done before any key is fetched. Pure: no DNS, no crypto.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/header_block.h"
#include "auth/dkim/keys.h"
#include "auth/dkim/signature.h"
#include "net/result.h"

namespace stampd::auth {

// ChainValidation is an ARC chain's state, the cv= of a seal and the arc=
// result (RFC 8617 §4.4).
enum class ChainValidation { None, Pass, Fail };
const char* to_string(ChainValidation cv) noexcept;  // "none" | "pass" | "fail"

// ArcSeal is a parsed ARC-Seal field (RFC 8617 §4.1.3).
struct ArcSeal {
  int instance = 0;
  std::string algorithm;  // a=
  KeyType key_type = KeyType::Rsa;
  std::string signature;  // b=, decoded
  ChainValidation cv = ChainValidation::None;
  std::string domain;    // d=
  std::string selector;  // s=
  std::optional<std::int64_t> timestamp;
  std::string field_without_b;  // the raw field with the b= value removed
};

// parse_arc_seal parses a raw ARC-Seal field. BadInput for bad syntax, a
// missing tag (i a b cv d s), an h= (a seal never covers header fields), an
// unknown cv=; Unsupported for an unknown algorithm.
net::Result<ArcSeal> parse_arc_seal(std::string_view raw_field);

// parse_aar_instance reads the instance of an ARC-Authentication-Results
// field, which must open with "i=N;" (RFC 8617 §4.1.1).
net::Result<int> parse_aar_instance(std::string_view raw_field);

// kDefaultMaxArcSets caps the sets examined per message: each costs a key
// lookup and a signature check, and the seals hash O(n²) fields, so a
// message with a long chain is refused before any of that.
inline constexpr int kDefaultMaxArcSets = 10;

// ArcChain is what collect_arc_chain found.
struct ArcChain {
  // state is None (no ARC field), Fail (reason says why; no crypto needed)
  // or Pass, meaning "well formed so far": the signatures are still to check.
  ChainValidation state = ChainValidation::None;
  std::string reason;
  // highest is the highest valid instance among the ARC fields (0: none),
  // whatever the state: a sealer numbers its set highest + 1.
  int highest = 0;
  // latest_failed: the newest seal says cv=fail (§5.1.1: add no set).
  bool latest_failed = false;

  struct Set {
    std::size_t results = 0;    // index of the ARC-Authentication-Results field
    std::size_t signature = 0;  // of the ARC-Message-Signature
    std::size_t seal = 0;       // of the ARC-Seal
  };
  std::vector<Set> sets;                  // by instance - 1, when state is Pass
  std::vector<ArcSeal> seals;             // by instance - 1, when state is Pass
  std::optional<ParsedSignature> newest;  // AMS of the highest instance, when Pass
};

// collect_arc_chain finds and checks the ARC sets of block: every field of
// instance 1..N exactly once, i= valid, the newest seal not cv=fail, seal 1
// cv=none and the others cv=pass. More than 3 * max_sets ARC fields, or an
// instance above max_sets, is Fail at once.
ArcChain collect_arc_chain(const HeaderBlock& block, int max_sets = kDefaultMaxArcSets);

// is_arc_field tells whether name is one of the three ARC field names.
bool is_arc_field(std::string_view name) noexcept;

}  // namespace stampd::auth
