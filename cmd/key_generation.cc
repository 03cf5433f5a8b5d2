#include "cmd/key_generation.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>

#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"

namespace stampd::cmd {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const auth::KeySpec& spec, const std::string& why) {
  throw proxy::ConfigError(spec.origin + ": [dkim.key] \"" + spec.name + "\": cannot generate " +
                           spec.private_key_path + ": " + why);
}

// owner_ids looks up the user the files must belong to; nullopt means leave them.
std::optional<std::pair<uid_t, gid_t>> owner_ids(const std::string& owner) {
  if (owner.empty() || ::geteuid() != 0) return std::nullopt;
  const passwd* pw = ::getpwnam(owner.c_str());
  if (pw == nullptr) return std::nullopt;  // drop_privileges reports an unknown user
  return std::make_pair(pw->pw_uid, pw->pw_gid);
}

void give(const std::string& path, const std::optional<std::pair<uid_t, gid_t>>& ids,
          const auth::KeySpec& spec) {
  if (ids && ::chown(path.c_str(), ids->first, ids->second) != 0) {
    fail(spec, "chown " + path + ": " + std::strerror(errno));
  }
}

void make_directories(const fs::path& dir, const std::optional<std::pair<uid_t, gid_t>>& ids,
                      const auth::KeySpec& spec) {
  if (dir.empty() || fs::exists(dir)) return;
  make_directories(dir.parent_path(), ids, spec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    fail(spec, "mkdir " + dir.string() + ": " + std::strerror(errno));
  }
  give(dir.string(), ids, spec);
}

void write_record(const std::string& path, const std::string& text, const auth::KeySpec& spec) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) fail(spec, "cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    fail(spec, "rename to " + path + ": " + std::strerror(errno));
  }
}

}  // namespace

std::string record_path_for(const std::string& private_key_path) {
  fs::path p(private_key_path);
  return p.replace_extension(".txt").string();
}

std::optional<GeneratedKey> make_key_file(const auth::KeySpec& spec, auth::KeyAlgorithm algorithm,
                                          const std::string& owner) {
  const auto ids = owner_ids(owner);
  make_directories(fs::path(spec.private_key_path).parent_path(), ids, spec);
  auto key = auth::generate_private_key(algorithm);
  if (!key) fail(spec, key.error().message());
  const std::string tmp = spec.private_key_path + ".new." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover of a crashed start of this very pid number
  if (auto written = auth::write_private_key_file(tmp, *key); !written) {
    fail(spec, written.error().message());
  }
  give(tmp, ids, spec);
  // link() refuses to replace: a key that appeared meanwhile is kept.
  const int linked = ::link(tmp.c_str(), spec.private_key_path.c_str());
  const int link_errno = errno;
  ::unlink(tmp.c_str());
  if (linked != 0) {
    if (link_errno == EEXIST) return std::nullopt;
    fail(spec, std::string("link: ") + std::strerror(link_errno));
  }
  GeneratedKey g;
  g.name = spec.name;
  g.private_key_path = spec.private_key_path;
  g.record_path = record_path_for(spec.private_key_path);
  g.zone_line =
      auth::zone_file_line(spec.selector, spec.domain, auth::make_key_record(key->public_key()));
  write_record(g.record_path, g.zone_line + "\n", spec);
  give(g.record_path, ids, spec);
  return g;
}

std::vector<GeneratedKey> generate_missing_keys(const proxy::Config& config,
                                                const std::string& owner,
                                                const std::set<std::string>& in_use) {
  std::vector<GeneratedKey> made;
  for (const auto& spec : config.dkim.keys) {
    if (!spec.generate || spec.private_key_path.empty()) continue;
    std::error_code ec;
    if (fs::exists(fs::symlink_status(spec.private_key_path, ec))) continue;
    if (in_use.count(spec.private_key_path) != 0) {
      throw proxy::ConfigError(spec.origin + ": [dkim.key] \"" + spec.name +
                               "\": " + spec.private_key_path +
                               " is missing (No such file or directory); it is the key in use, "
                               "published in the DNS, so no new key is generated in its place: "
                               "put the file back, or name a new file and selector");
    }
    if (auto g = make_key_file(spec, *spec.generate, owner)) made.push_back(std::move(*g));
  }
  return made;
}

}  // namespace stampd::cmd
