// dkim_keyring.h: the loaded signing keys and the signing rules, built once
// (at start-up or reload) and then shared read-only by all sessions through a
// shared_ptr<const SigningKeys>; a reload builds a new one and swaps the
// pointer. Loading reads key files; selection is pure.
#pragma once

#include <atomic>
#include <cstdint>
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
  // replaces names the key this one takes over from ([[dkim.key]] replaces):
  // such a key is gated on DNS. Until its record is seen to publish its
  // public half (KeyWatch), the key it replaces signs in its place.
  std::string replaces;
  // retire_after (seconds since the epoch): from then on the key no longer
  // signs. nullopt: never.
  std::optional<std::int64_t> retire_after;
};

struct KeyringOptions {
  // allow_group_readable_keys accepts key files readable by group/others.
  bool allow_group_readable_keys = false;
  // keep_broken_keys builds the keyring even when a key cannot be loaded;
  // the key carries its error and a rule needing it fails at signing time
  // (fail-closed or send-unsigned, per rule). Off: any bad key is an error.
  bool keep_broken_keys = false;
};

// utc_time formats seconds since the epoch as RFC 3339 UTC ("...T...Z").
std::string utc_time(std::int64_t seconds);

class SigningKeys {
 public:
  // Key is one configured key after loading: usable (signing_key) or broken
  // (error), with a warning for weak keys.
  struct Key {
    KeySpec spec;
    std::optional<SigningKey> signing_key;
    std::optional<net::Error> error;
    std::optional<std::string> warning;
    const Key* replaces = nullptr;     // the key this one takes over from
    const Key* replaced_by = nullptr;  // the key that takes over from this one

    bool gated() const noexcept { return replaces != nullptr; }
    bool retired(std::int64_t now) const noexcept {
      return spec.retire_after && now >= *spec.retire_after;
    }
  };

  // Selection is what a rule match gives: the keys to sign with, or the error
  // that prevents signing, and the rule's on_error.
  struct Selection {
    const SigningRule* rule = nullptr;
    std::vector<const Key*> keys;
    std::optional<net::Error> error;      // a key missing or broken
    std::optional<std::string> identity;  // i= with "%" replaced
    const Key* arc_key = nullptr;         // the key that seals (rule's arc_seal), if any
  };

  // build loads every key and checks the rules: key names unique, each rule
  // naming at least one key and only known keys ("%" is resolved per
  // message), an arc_seal key known and, once loaded, RSA. Errors name the origin ("file:line") of
  // the bad entry.
  static net::Result<std::shared_ptr<const SigningKeys>> build(std::vector<KeySpec> keys,
                                                               std::vector<SigningRule> rules,
                                                               const KeyringOptions& options = {});

  // select applies the rules to the From address at time now (seconds since
  // the epoch); nullopt when no rule matches (the message is relayed
  // unsigned). A key a rule names stands for its whole replacement chain:
  // the newest key of the chain that may sign now signs (loaded, not
  // retired, and when gated, its record matches).
  std::optional<Selection> select(const MailAddress& from, std::int64_t now) const;
  // signing_key gives the key of named's chain that signs at now, or the
  // error saying why none can (each key of the chain, newest first).
  net::Result<const Key*> signing_key(const Key& named, std::int64_t now) const;
  // set_record_matches records whether a gated key's DNS record publishes
  // its public half (the daemon's KeyWatch; explain and dns-check look
  // once). The only state that changes after build: atomic, so sessions
  // read it while the watch writes it.
  void set_record_matches(const Key& key, bool matches) const;
  bool record_matches(const Key& key) const;
  const Key* find_key(std::string_view name) const;
  const std::vector<Key>& keys() const noexcept { return keys_; }
  const std::vector<SigningRule>& rules() const noexcept { return rules_; }
  // warnings lists one line per weak key, for the start-up log.
  std::vector<std::string> warnings() const;

 private:
  SigningKeys() = default;
  static net::Status link_replacements(SigningKeys& ring);
  std::string why_not(const Key& key, std::int64_t now) const;

  std::vector<Key> keys_;
  std::vector<SigningRule> rules_;
  std::unique_ptr<std::atomic<bool>[]> record_matches_;  // by index in keys_
};

}  // namespace stampd::auth
