// users_file.h: the accounts that may AUTH, read from a file of
// "user:crypt-hash" lines (the hashes mkpasswd writes: yescrypt,
// sha512-crypt, bcrypt), checked with libcrypt. Loaded at start and on each
// reload (SIGHUP), then immutable and shared; it never logs a password.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace stampd::proxy {

class UserDb {
 public:
  // load reads path: not readable by others (like a private key), one
  // "user:hash" per line, '#' comments and blank lines skipped. Throws
  // ConfigError "path:line: reason" for a bad line.
  static std::shared_ptr<const UserDb> load(const std::string& path);
  // parse reads text that claims to come from path (no permission check).
  static std::shared_ptr<const UserDb> parse(std::string_view text, const std::string& path);

  // verify tells whether user exists and password is theirs. An unknown
  // user costs a hash too, so the time taken does not tell who exists.
  bool verify(std::string_view user, std::string_view password) const;
  bool contains(std::string_view user) const { return hashes_.count(std::string(user)) != 0; }
  std::size_t size() const { return hashes_.size(); }

 private:
  std::unordered_map<std::string, std::string> hashes_;  // user -> crypt hash
  std::string dummy_hash_;                               // for unknown users
};

// hash_password makes a crypt hash of password with a fresh salt; method is
// a libcrypt prefix ("$y$" yescrypt, "$6$" sha512-crypt, "$2b$" bcrypt),
// cost the method's cost parameter (0: libcrypt's default). Empty on failure.
std::string hash_password(std::string_view password, const std::string& method = "$y$",
                          unsigned long cost = 0);

}  // namespace stampd::proxy
