// dkim_keyring.h: the loaded signing keys and the signing rules, built once
// (at start-up or reload) and then shared read-only by all sessions through a
// shared_ptr<const SigningKeys>; a reload builds a new one and swaps the
// pointer. Loading reads key files; selection is pure.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/keygen.h"
#include "auth/dkim/signer.h"
#include "auth/dkim/signing_rules.h"
#include "auth/mail_address.h"
#include "net/result.h"

namespace stampd::auth {

// KeySpec names a key as configured ([[dkim.key]] or an OpenDKIM KeyTable
// line): a name that rules refer to, d=, s=, and where the private key is.
struct KeySpec {
  std::string name;
  std::string domain;
  std::string selector;
  std::string private_key_path;  // PEM file (absolute, or relative to the process)
  std::string private_key_pem;   // the PEM itself, used when no path is given
  std::string origin;            // where it was configured ("file:line"), for messages
  // generate is the algorithm of the key `stampd run` makes when the file
  // does not exist yet ([[dkim.key]] generate = true); without it a missing
  // file is an error.
  std::optional<KeyAlgorithm> generate;
};

struct KeyringOptions {
  // allow_group_readable_keys accepts key files readable by group/others.
  bool allow_group_readable_keys = false;
  // keep_broken_keys builds the keyring even when a key cannot be loaded;
  // the key carries its error and a rule needing it fails at signing time
  // (fail-closed or send-unsigned, per rule). Off: any bad key is an error.
  bool keep_broken_keys = false;
};

class SigningKeys {
 public:
  // Key is one configured key after loading: usable (signing_key) or broken
  // (error), with a warning for weak keys.
  struct Key {
    KeySpec spec;
    std::optional<SigningKey> signing_key;
    std::optional<net::Error> error;
    std::optional<std::string> warning;
  };

  // Selection is what a rule match gives: the keys to sign with, or the error
  // that prevents signing, and the rule's on_error.
  struct Selection {
    const SigningRule* rule = nullptr;
    std::vector<const Key*> keys;
    std::optional<net::Error> error;      // a key missing or broken
    std::optional<std::string> identity;  // i= with "%" replaced
  };

  // build loads every key and checks the rules: key names unique, each rule
  // naming at least one key and only known keys ("%" is resolved per
  // message). Errors name the origin ("file:line") of the bad entry.
  static net::Result<std::shared_ptr<const SigningKeys>> build(std::vector<KeySpec> keys,
                                                               std::vector<SigningRule> rules,
                                                               const KeyringOptions& options = {});

  // select applies the rules to the From address; nullopt when no rule
  // matches (the message is relayed unsigned).
  std::optional<Selection> select(const MailAddress& from) const;
  const Key* find_key(std::string_view name) const;
  const std::vector<Key>& keys() const noexcept { return keys_; }
  const std::vector<SigningRule>& rules() const noexcept { return rules_; }
  // warnings lists one line per weak key, for the start-up log.
  std::vector<std::string> warnings() const;

 private:
  SigningKeys() = default;
  std::vector<Key> keys_;
  std::vector<SigningRule> rules_;
};

}  // namespace stampd::auth
