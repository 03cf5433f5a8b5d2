#include "proxy/users_file.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "proxy/config.h"

namespace stampd::proxy {
namespace {

constexpr const char* kNotAHash =
    "not a crypt hash libcrypt knows (expected $y$, $6$ or $2b$ as mkpasswd writes)";

// crypt_string runs libcrypt's reentrant crypt; "" when the hash is unusable.
std::string crypt_string(std::string_view password, const std::string& setting) {
  // crypt_data is 32 KiB: on the heap, one per call, so threads never share it.
  auto data = std::make_unique<crypt_data>();
  std::string phrase(password);
  const char* out = crypt_rn(phrase.c_str(), setting.c_str(), data.get(), sizeof(crypt_data));
  std::string result = (out == nullptr || out[0] == '*') ? std::string() : std::string(out);
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  OPENSSL_cleanse(phrase.data(), phrase.size());
  return result;
}

std::string hash_problem(const std::string& hash) {
  // Without a "$id$" prefix libcrypt would take it for DES: a password typed
  // in plain, more likely.
  if (!hash.starts_with("$")) return kNotAHash;
  switch (crypt_checksalt(hash.c_str())) {
    case CRYPT_SALT_OK:
      return "";
    case CRYPT_SALT_METHOD_LEGACY:
    case CRYPT_SALT_TOO_CHEAP:
      return "weak hash method; make a new one with 'stampd passwd' (yescrypt)";
    default:
      return kNotAHash;
  }
}

bool valid_user_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return true;
}

// bad_user throws "path:line: user 'name': reason".
[[noreturn]] void bad_user(const std::string& where, const std::string& user,
                           const std::string& reason) {
  throw ConfigError(where + "user '" + user + "'" + reason);
}

}  // namespace

std::shared_ptr<const UserDb> UserDb::parse(std::string_view text, const std::string& path) {
  auto db = std::make_shared<UserDb>();
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto where = path + ":" + std::to_string(line_no) + ": ";
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) throw ConfigError(where + "expected user:hash");
    const std::string user(line.substr(0, colon));
    const std::string hash(line.substr(colon + 1));
    if (!valid_user_name(user))
      throw ConfigError(where + "bad user name (no spaces or control characters)");
    if (const auto problem = hash_problem(hash); !problem.empty())
      bad_user(where, user, ": " + problem);
    if (!db->hashes_.emplace(user, hash).second) bad_user(where, user, " appears twice");
  }
  db->dummy_hash_ = hash_password("stampd-no-such-user");
  return db;
}

std::shared_ptr<const UserDb> UserDb::load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw ConfigError(path + ": cannot read the users file");
  if (!S_ISREG(st.st_mode)) throw ConfigError(path + ": not a regular file");
  // Hashes can be cracked offline; like a private key, others must not read them.
  if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw ConfigError(path + ": mode " + mode +
                      " lets every user read the password hashes; chmod 0640 or 0600");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the users file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse(buffer.str(), path);
}

bool UserDb::verify(std::string_view user, std::string_view password) const {
  const auto it = hashes_.find(std::string(user));
  const std::string& hash = it == hashes_.end() ? dummy_hash_ : it->second;
  const std::string computed = crypt_string(password, hash);
  // Constant-time: how much of the hash matched must not show in the time.
  const bool same = !computed.empty() && computed.size() == hash.size() &&
                    CRYPTO_memcmp(computed.data(), hash.data(), hash.size()) == 0;
  return same && it != hashes_.end();
}

std::string hash_password(std::string_view password, const std::string& method,
                          unsigned long cost) {
  // cost 0: libcrypt's default for the method; random bytes from the OS.
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn(method.c_str(), cost, nullptr, 0, setting, sizeof setting) == nullptr)
    return {};
  return crypt_string(password, setting);
}

}  // namespace stampd::proxy
