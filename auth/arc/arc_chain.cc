#include "auth/arc/arc_chain.h"

#include <algorithm>
#include <charconv>

#include "auth/dkim/base64.h"
#include "auth/dkim/tag_list.h"
#include "auth/dns_name.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

net::Error bad(const std::string& what) { return make_error(Errc::BadInput, what); }

std::string_view field_value(std::string_view raw_field) {
  const auto colon = raw_field.find(':');
  return colon == std::string_view::npos ? std::string_view{} : raw_field.substr(colon + 1);
}

enum class ArcField { Results, Signature, Seal };

std::optional<ArcField> arc_field_kind(std::string_view name) {
  if (header_name_equal(name, "ARC-Authentication-Results")) return ArcField::Results;
  if (header_name_equal(name, "ARC-Message-Signature")) return ArcField::Signature;
  if (header_name_equal(name, "ARC-Seal")) return ArcField::Seal;
  return std::nullopt;
}

const char* field_name(ArcField kind) {
  switch (kind) {
    case ArcField::Results:
      return "ARC-Authentication-Results";
    case ArcField::Signature:
      return "ARC-Message-Signature";
    case ArcField::Seal:
      return "ARC-Seal";
  }
  return "ARC field";
}

// raw_instance reads i= of any ARC field as leniently as possible, only to
// number a new set after a broken chain (the highest valid i= wins).
std::optional<int> raw_instance(ArcField kind, std::string_view raw_field) {
  if (kind == ArcField::Results) {
    auto n = parse_aar_instance(raw_field);
    return n ? std::optional<int>(*n) : std::nullopt;
  }
  auto tags = parse_tag_list(field_value(raw_field), EmptyTagSpecs::Error);
  if (!tags) return std::nullopt;
  const Tag* i = find_tag(*tags, "i");
  return i ? parse_arc_instance(i->value) : std::nullopt;
}

ArcChain failed(ArcChain chain, std::string reason) {
  chain.state = ChainValidation::Fail;
  chain.reason = std::move(reason);
  chain.sets.clear();
  chain.seals.clear();
  chain.newest.reset();
  return chain;
}

}  // namespace

const char* to_string(ChainValidation cv) noexcept {
  switch (cv) {
    case ChainValidation::None:
      return "none";
    case ChainValidation::Pass:
      return "pass";
    case ChainValidation::Fail:
      return "fail";
  }
  return "fail";
}

bool is_arc_field(std::string_view name) noexcept { return arc_field_kind(name).has_value(); }

net::Result<int> parse_aar_instance(std::string_view raw_field) {
  std::string_view v = trim_fws(field_value(raw_field));
  if (!v.starts_with("i")) return bad("does not start with i=");
  v = trim_fws(v.substr(1));
  if (!v.starts_with("=")) return bad("does not start with i=");
  const auto semicolon = v.find(';');
  if (semicolon == std::string_view::npos) return bad("no ';' after i=");
  const auto instance = parse_arc_instance(trim_fws(v.substr(1, semicolon - 1)));
  if (!instance) return bad("i= is not an ARC instance (1 to 50)");
  return *instance;
}

net::Result<ArcSeal> parse_arc_seal(std::string_view raw_field) {
  const auto colon = raw_field.find(':');
  if (colon == std::string_view::npos) return bad("not a header field");
  auto parsed = parse_tag_list(raw_field.substr(colon + 1), EmptyTagSpecs::Error);
  if (!parsed) return std::move(parsed).error();
  const std::vector<Tag>& tags = *parsed;
  for (const char* name : {"i", "a", "b", "cv", "d", "s"}) {
    if (find_tag(tags, name) == nullptr)
      return bad(std::string("missing required tag ") + name + "=");
  }
  // §4.1.3: the seal's scope is fixed; an h= means a confused or hostile sealer.
  if (find_tag(tags, "h") != nullptr) return bad("h= is not allowed in ARC-Seal");

  ArcSeal seal;
  const auto instance = parse_arc_instance(find_tag(tags, "i")->value);
  if (!instance) return bad("i= is not an ARC instance (1 to 50)");
  seal.instance = *instance;
  seal.algorithm = find_tag(tags, "a")->value;
  const auto type = key_type_for_algorithm(seal.algorithm);
  if (!type) return make_error(Errc::Unsupported, "unsupported algorithm a=" + seal.algorithm);
  seal.key_type = *type;
  const Tag* b = find_tag(tags, "b");
  const auto b_bytes = base64_decode(b->value);
  if (!b_bytes || b_bytes->empty()) return bad("b= is not valid base64");
  seal.signature = *b_bytes;
  const std::string& cv = find_tag(tags, "cv")->value;
  if (cv == "none") {
    seal.cv = ChainValidation::None;
  } else if (cv == "pass") {
    seal.cv = ChainValidation::Pass;
  } else if (cv == "fail") {
    seal.cv = ChainValidation::Fail;
  } else {
    return bad("cv=" + cv + " is not none, pass or fail");
  }
  seal.domain = find_tag(tags, "d")->value;
  seal.selector = find_tag(tags, "s")->value;
  if (!is_dkim_name(seal.domain)) return bad("d= is not a domain name");
  if (!is_dkim_name(seal.selector)) return bad("s= is not a selector");
  if (const Tag* t = find_tag(tags, "t")) {
    std::int64_t v = 0;
    const std::string& s = t->value;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || s.size() > 12 || ec != std::errc() || ptr != s.data() + s.size())
      return bad("t= is not a valid time");
    seal.timestamp = v;
  }
  const std::size_t vb = colon + 1 + b->value_begin;
  const std::size_t ve = colon + 1 + b->value_end;
  seal.field_without_b.append(raw_field.substr(0, vb));
  seal.field_without_b.append(raw_field.substr(ve));
  return seal;
}

ArcChain collect_arc_chain(const HeaderBlock& block, int max_sets) {
  ArcChain chain;
  struct Found {
    ArcField kind;
    std::size_t index;
  };
  std::vector<Found> found;
  const std::size_t max_fields = 3 * static_cast<std::size_t>(std::max(max_sets, 1));
  for (std::size_t i = 0; i < block.size(); ++i) {
    if (auto kind = arc_field_kind(block.field(i).name)) found.push_back({*kind, i});
  }
  if (found.empty()) return chain;
  // The highest i= is read even from a chain too long to examine: a set
  // added on top of it must still number after it.
  for (const Found& f : found) {
    if (auto n = raw_instance(f.kind, block.field(f.index).raw)) {
      chain.highest = std::max(chain.highest, *n);
    }
  }
  if (found.size() > max_fields) {
    // §5.1.1 holds for a long chain too: a newest seal saying cv=fail means no set.
    for (const Found& f : found) {
      if (f.kind != ArcField::Seal ||
          raw_instance(f.kind, block.field(f.index).raw) != chain.highest)
        continue;
      auto tags = parse_tag_list(field_value(block.field(f.index).raw), EmptyTagSpecs::Error);
      const Tag* cv = tags ? find_tag(*tags, "cv") : nullptr;
      if (cv != nullptr && cv->value == "fail") chain.latest_failed = true;
    }
    return failed(std::move(chain), "more than " + std::to_string(max_fields) +
                                        " ARC header fields (at most " + std::to_string(max_sets) +
                                        " sets are examined)");
  }

  // Slot every field by instance; a field whose i= cannot be read fails the
  // chain (§5.2 step 3), as does a second field of one kind and instance.
  const int limit = std::min(max_sets, kMaxArcInstance);
  std::vector<std::optional<std::size_t>> slots(3 * static_cast<std::size_t>(limit));
  std::vector<std::optional<ArcSeal>> seals(static_cast<std::size_t>(limit));
  std::optional<ParsedSignature> newest;
  std::string error;
  int n = 0;
  for (const Found& f : found) {
    const std::string_view raw = block.field(f.index).raw;
    int instance = 0;
    if (f.kind == ArcField::Results) {
      auto i = parse_aar_instance(raw);
      if (!i) {
        error = std::string(field_name(f.kind)) + ": " + i.error().detail;
        break;
      }
      instance = *i;
    } else if (f.kind == ArcField::Signature) {
      const auto parsed = raw_instance(f.kind, raw);
      if (!parsed) {
        error = std::string(field_name(f.kind)) + ": missing or invalid i=";
        break;
      }
      instance = *parsed;
    } else {
      auto seal = parse_arc_seal(raw);
      if (!seal) {
        error = std::string(field_name(f.kind)) + ": " + seal.error().detail;
        break;
      }
      instance = seal->instance;
      if (instance <= limit) seals[static_cast<std::size_t>(instance - 1)] = std::move(*seal);
    }
    if (instance > limit) {
      error = "instance " + std::to_string(instance) + " is above the " + std::to_string(limit) +
              " sets examined";
      break;
    }
    auto& slot =
        slots[static_cast<std::size_t>(instance - 1) * 3 + static_cast<std::size_t>(f.kind)];
    if (slot) {
      error =
          std::string("two ") + field_name(f.kind) + " fields with i=" + std::to_string(instance);
      break;
    }
    slot = f.index;
    n = std::max(n, instance);
  }
  if (!error.empty()) return failed(std::move(chain), error);

  // §5.2 step 2: a chain its newest sealer declared failed stays failed.
  const auto& latest_seal = seals[static_cast<std::size_t>(n - 1)];
  if (latest_seal && latest_seal->cv == ChainValidation::Fail) {
    chain.latest_failed = true;
    return failed(std::move(chain), "ARC-Seal i=" + std::to_string(n) + " says cv=fail");
  }
  for (int i = 1; i <= n; ++i) {
    const std::size_t base = static_cast<std::size_t>(i - 1) * 3;
    for (ArcField kind : {ArcField::Results, ArcField::Signature, ArcField::Seal}) {
      if (!slots[base + static_cast<std::size_t>(kind)]) {
        return failed(std::move(chain),
                      std::string("no ") + field_name(kind) + " with i=" + std::to_string(i));
      }
    }
    const ArcSeal& seal = *seals[static_cast<std::size_t>(i - 1)];
    const ChainValidation want = i == 1 ? ChainValidation::None : ChainValidation::Pass;
    if (seal.cv != want) {
      return failed(std::move(chain), "ARC-Seal i=" + std::to_string(i) + " has cv=" +
                                          to_string(seal.cv) + ", expected cv=" + to_string(want));
    }
    chain.sets.push_back({*slots[base], *slots[base + 1], *slots[base + 2]});
    chain.seals.push_back(seal);
  }
  auto ams =
      parse_signature(block.field(chain.sets.back().signature).raw, SignatureField::ArcMessage);
  if (!ams) {
    return failed(std::move(chain),
                  "ARC-Message-Signature i=" + std::to_string(n) + ": " + ams.error().detail);
  }
  chain.newest = std::move(*ams);
  chain.state = ChainValidation::Pass;
  return chain;
}

}  // namespace stampd::auth
