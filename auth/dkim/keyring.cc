#include "auth/dkim/keyring.h"

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

std::optional<SigningKeys::Selection> SigningKeys::select(const MailAddress& from) const {
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
    if (key->error) {
      sel.error = key->error;
      break;
    }
    sel.keys.push_back(key);
  }
  return sel;
}

std::vector<std::string> SigningKeys::warnings() const {
  std::vector<std::string> out;
  for (const Key& k : keys_) {
    if (k.warning) out.push_back(*k.warning);
  }
  return out;
}

}  // namespace stampd::auth
