#include "auth/dkim/keyring.h"

#include <algorithm>
#include <ctime>

#include "auth/dkim/keys.h"

namespace stampd::auth {
namespace {

std::string where(const std::string& origin) {
  return origin.empty() ? std::string() : origin + ": ";
}

std::string replace_percent(std::string_view text, std::string_view domain) {
  std::string out;
  for (const char c : text) {
    if (c == '%') {
      out.append(domain);
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string utc_time(std::int64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

net::Status SigningKeys::link_replacements(SigningKeys& ring) {
  for (Key& key : ring.keys_) {
    const KeySpec& spec = key.spec;
    if (spec.replaces.empty()) continue;
    const std::string what = where(spec.origin) + "key \"" + spec.name + "\" replaces ";
    Key* old = nullptr;
    for (Key& k : ring.keys_) {
      if (k.spec.name == spec.replaces) old = &k;
    }
    if (old == nullptr)
      return net::make_error(net::Errc::NotFound, what + "unknown key \"" + spec.replaces + "\"");
    if (old == &key) return net::make_error(net::Errc::BadInput, what + "itself");
    if (old->spec.domain != spec.domain) {
      return net::make_error(net::Errc::BadInput,
                             what + "\"" + old->spec.name + "\" of domain " + old->spec.domain +
                                 "; a key can only replace one of its own domain");
    }
    if (old->replaced_by != nullptr) {
      return net::make_error(net::Errc::BadInput, what + "\"" + old->spec.name + "\", which \"" +
                                                      old->replaced_by->spec.name +
                                                      "\" already replaces");
    }
    key.replaces = old;
    old->replaced_by = &key;
  }
  // Each key has at most one successor, so a chain is a loop exactly when
  // following replaces comes back round.
  for (const Key& key : ring.keys_) {
    std::size_t steps = 0;
    for (const Key* k = key.replaces; k != nullptr; k = k->replaces) {
      if (k == &key || ++steps > ring.keys_.size()) {
        return net::make_error(net::Errc::BadInput,
                               where(key.spec.origin) + "key \"" + key.spec.name +
                                   "\" is in a loop of keys replacing each other");
      }
    }
  }
  return net::Ok{};
}

net::Result<std::shared_ptr<const SigningKeys>> SigningKeys::build(std::vector<KeySpec> keys,
                                                                   std::vector<SigningRule> rules,
                                                                   const KeyringOptions& options) {
  std::shared_ptr<SigningKeys> ring(new SigningKeys());
  for (KeySpec& spec : keys) {
    if (spec.name.empty())
      return net::make_error(net::Errc::BadInput, where(spec.origin) + "key without a name");
    if (ring->find_key(spec.name) != nullptr) {
      return net::make_error(net::Errc::BadInput,
                             where(spec.origin) + "key name \"" + spec.name + "\" used twice");
    }
    Key key;
    auto loaded =
        spec.private_key_path.empty()
            ? load_private_key_pem(spec.private_key_pem)
            : load_private_key_file(spec.private_key_path, options.allow_group_readable_keys);
    if (loaded) {
      key.warning = key_warning(*loaded);
      if (key.warning) *key.warning = "key \"" + spec.name + "\": " + *key.warning;
      key.signing_key = SigningKey{spec.domain, spec.selector,
                                   std::make_shared<const PrivateKey>(std::move(loaded).value())};
    } else {
      net::Error e = std::move(loaded).error();
      // A key to be generated is not an error in the config; until `stampd
      // run` has made it, rules that need it cannot sign.
      const bool to_generate = spec.generate && e.code == net::Errc::NotFound;
      if (to_generate) e.detail = spec.private_key_path + ": not generated yet (generate = true)";
      e.detail = where(spec.origin) + "key \"" + spec.name + "\": " + e.detail;
      if (!options.keep_broken_keys && !to_generate) return e;
      key.error = std::move(e);
    }
    key.spec = std::move(spec);
    ring->keys_.push_back(std::move(key));
  }
  // keys_ does not change from here on: the Key pointers stay valid.
  if (auto linked = link_replacements(*ring); !linked) return std::move(linked).error();
  ring->record_matches_ = std::make_unique<std::atomic<bool>[]>(ring->keys_.size());
  for (const SigningRule& rule : rules) {
    if (rule.keys.empty()) {
      return net::make_error(net::Errc::BadInput,
                             where(rule.origin) + "rule \"" + rule.from.text() + "\" names no key");
    }
    for (const std::string& name : rule.keys) {
      if (name != "%" && ring->find_key(name) == nullptr) {
        return net::make_error(net::Errc::NotFound, where(rule.origin) + "rule \"" +
                                                        rule.from.text() +
                                                        "\" names unknown key \"" + name + "\"");
      }
    }
    if (!rule.arc_seal.empty()) {
      const Key* seal = ring->find_key(rule.arc_seal);
      if (seal == nullptr) {
        return net::make_error(net::Errc::NotFound,
                               where(rule.origin) + "rule \"" + rule.from.text() +
                                   "\" seals with unknown key \"" + rule.arc_seal + "\"");
      }
      while (seal->replaced_by != nullptr) seal = seal->replaced_by;
      for (const Key* k = seal; k != nullptr; k = k->replaces) {
        if (k->signing_key && k->signing_key->key->type() != KeyType::Rsa) {
          return net::make_error(net::Errc::BadInput,
                                 where(rule.origin) + "rule \"" + rule.from.text() +
                                     "\" seals with key \"" + k->spec.name +
                                     "\", which is not RSA (ARC signs with rsa-sha256 only)");
        }
      }
    }
  }
  ring->rules_ = std::move(rules);
  return std::shared_ptr<const SigningKeys>(std::move(ring));
}

const SigningKeys::Key* SigningKeys::find_key(std::string_view name) const {
  for (const Key& k : keys_) {
    if (k.spec.name == name) return &k;
  }
  return nullptr;
}

std::optional<SigningKeys::Selection> SigningKeys::select(const MailAddress& from,
                                                          std::int64_t now) const {
  const SigningRule* rule = match_rule(rules_, from);
  if (rule == nullptr) return std::nullopt;
  Selection sel;
  sel.rule = rule;
  if (rule->identity) sel.identity = replace_percent(*rule->identity, from.domain);
  for (const std::string& name : rule->keys) {
    const std::string resolved = name == "%" ? from.domain : name;
    const Key* key = find_key(resolved);
    if (key == nullptr) {
      sel.error = net::make_error(net::Errc::NotFound,
                                  where(rule->origin) + "no key named \"" + resolved + "\"");
      break;
    }
    auto signing = signing_key(*key, now);
    if (!signing) {
      sel.error = std::move(signing).error();
      break;
    }
    // A rule naming an old key and its successor signs once with the one
    // that signs now.
    if (std::find(sel.keys.begin(), sel.keys.end(), *signing) == sel.keys.end())
      sel.keys.push_back(*signing);
  }
  if (!sel.error && !rule->arc_seal.empty()) {
    if (const Key* seal = find_key(rule->arc_seal)) {
      auto sealing = signing_key(*seal, now);
      if (sealing) {
        sel.arc_key = *sealing;
      } else {
        sel.error = std::move(sealing).error();
      }
    }
  }
  return sel;
}

std::string SigningKeys::why_not(const Key& key, std::int64_t now) const {
  if (key.error) return key.error->detail;
  const std::string name = "key \"" + key.spec.name + "\"";
  if (key.retired(now)) return name + " retired at " + utc_time(*key.spec.retire_after);
  if (key.gated() && !record_matches(key)) {
    return name + " waits for its DNS record (" + key.spec.selector + "._domainkey." +
           key.spec.domain + ") to publish its public key";
  }
  return {};
}

net::Result<const SigningKeys::Key*> SigningKeys::signing_key(const Key& named,
                                                              std::int64_t now) const {
  const Key* newest = &named;
  while (newest->replaced_by != nullptr) newest = newest->replaced_by;
  std::string reasons;
  for (const Key* k = newest; k != nullptr; k = k->replaces) {
    const std::string why = why_not(*k, now);
    if (why.empty()) return k;
    // A lone broken key keeps its own error (its code and text).
    if (k->error && newest == k && k->replaces == nullptr) return *k->error;
    reasons += (reasons.empty() ? "" : "; ") + why;
  }
  return net::make_error(net::Errc::NotFound, "no key may sign: " + reasons);
}

void SigningKeys::set_record_matches(const Key& key, bool matches) const {
  record_matches_[static_cast<std::size_t>(&key - keys_.data())].store(matches,
                                                                       std::memory_order_relaxed);
}

bool SigningKeys::record_matches(const Key& key) const {
  return record_matches_[static_cast<std::size_t>(&key - keys_.data())].load(
      std::memory_order_relaxed);
}

std::vector<std::string> SigningKeys::warnings() const {
  std::vector<std::string> out;
  for (const Key& k : keys_) {
    if (k.warning) out.push_back(*k.warning);
  }
  return out;
}

}  // namespace stampd::auth
