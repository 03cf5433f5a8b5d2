// key_generation.h: makes the DKIM keys that the config asks stampd to
// generate ([[dkim.key]] generate = true) and that do not exist yet, the way
// `stampd genkey` does, so a first start signs without a manual step. Never
// overwrites a key file; no logging (the caller logs what was made).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proxy/config.h"

namespace stampd::cmd {

// GeneratedKey is one key made now: its name, files and the DNS record to publish.
struct GeneratedKey {
  std::string name;
  std::string private_key_path;
  std::string record_path;  // the zone-file line, beside the key ("S.private" -> "S.txt")
  std::string zone_line;    // selector._domainkey.domain. IN TXT ( ... )
};

// generate_missing_keys makes every key with generate = true whose file is
// missing: the directories it needs (mode 0700), the key (mode 0600, written
// to a temporary name and linked into place, so neither a crash nor a second
// process leaves a half-written or replaced key) and the record file. When
// owner is not empty and we are root, the files belong to that user (the one
// stampd switches to, who reads keys again on reload). Throws ConfigError
// with the key's "file:line" on failure.
//
// in_use names the key files the running process signs with (a reload's
// caller passes them): such a file that is missing now is not generated
// again but is a ConfigError, since its public half is what the DNS
// publishes and a new key there would sign mail no receiver can verify.
std::vector<GeneratedKey> generate_missing_keys(const proxy::Config& config,
                                                const std::string& owner,
                                                const std::set<std::string>& in_use = {});

// make_key_file makes one key for spec (d=, s=, private_key) with
// algorithm, as generate_missing_keys does for each: directories 0700, the
// key 0600 linked into place, the record file beside it, owned by owner when
// we are root. nullopt when the key file exists (it is left as it is).
// Throws ConfigError naming spec's origin on failure.
std::optional<GeneratedKey> make_key_file(const auth::KeySpec& spec, auth::KeyAlgorithm algorithm,
                                          const std::string& owner);

// record_path_for names the record file of a key file: "dir/S.private" -> "dir/S.txt".
std::string record_path_for(const std::string& private_key_path);

}  // namespace stampd::cmd
