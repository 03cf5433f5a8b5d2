#include "cmd/keys_command.h"

#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

#include "auth/dkim/keygen.h"
#include "auth/dkim/keyring.h"
#include "auth/dns_name.h"
#include "cmd/key_generation.h"
#include "proxy/config.h"

namespace stampd::cmd {

namespace {

constexpr const char* kCommand = "stampd keys rotate: ";
// A test fixes "today" with this (seconds since the epoch).
constexpr const char* kNowVariable = "STAMPD_TEST_NOW";

using Key = auth::SigningKeys::Key;

long long now_seconds() {
  if (const char* fixed = std::getenv(kNowVariable)) return std::atoll(fixed);
  return static_cast<long long>(std::time(nullptr));
}

// valid_selector: a name the signer accepts as s= and a host-name-like label.
bool valid_selector(const std::string& s) {
  return auth::is_dkim_name(s) && auth::is_queryable_name(s) && s.front() != '-';
}

// algorithm_of is the algorithm of the next key: as the current one (an RSA
// key under 2048 bits becomes 2048, one over becomes 3072).
std::optional<auth::KeyAlgorithm> algorithm_of(const Key& key) {
  if (!key.signing_key) return std::nullopt;
  const auth::PrivateKey& k = *key.signing_key->key;
  if (k.type() == auth::KeyType::Ed25519) return auth::KeyAlgorithm::Ed25519;
  return k.bits() > 2048 ? auth::KeyAlgorithm::Rsa3072 : auth::KeyAlgorithm::Rsa2048;
}

// heads lists the newest key of each replacement chain of domain.
std::vector<const Key*> heads(const auth::SigningKeys& keys, const std::string& domain) {
  std::vector<const Key*> out;
  for (const Key& k : keys.keys()) {
    if (auth::ascii_lower(k.spec.domain) == domain && k.replaced_by == nullptr) out.push_back(&k);
  }
  return out;
}

bool selector_taken(const auth::SigningKeys& keys, const std::string& domain,
                    const std::string& selector) {
  for (const Key& k : keys.keys()) {
    if (auth::ascii_lower(k.spec.domain) == domain &&
        auth::ascii_lower(k.spec.selector) == auth::ascii_lower(selector))
      return true;
  }
  return false;
}

// next_selector expands the template and, when a key of the domain has that
// selector already (a second rotation the same month), adds b, c, ...
std::optional<std::string> next_selector(const auth::SigningKeys& keys, const std::string& domain,
                                         const std::string& base) {
  if (!selector_taken(keys, domain, base)) return base;
  for (char c = 'b'; c <= 'z'; ++c) {
    if (!selector_taken(keys, domain, base + c)) return base + c;
  }
  return std::nullopt;
}

const Key* choose(const auth::SigningKeys& keys, const RotateArgs& args) {
  const std::string domain = auth::ascii_lower(args.domain);
  const auto candidates = heads(keys, domain);
  if (!args.key.empty()) {
    for (const Key* k : candidates) {
      if (k->spec.name == args.key) return k;
    }
    std::cerr << kCommand << "no current key named \"" << args.key << "\" for " << domain
              << " (a key already replaced cannot be rotated again)\n";
    return nullptr;
  }
  if (candidates.size() == 1) return candidates.front();
  if (candidates.empty()) {
    std::cerr << kCommand << "no [[dkim.key]] of domain " << domain << " in " << args.config
              << "; make the first one with `stampd genkey`\n";
  } else {
    std::cerr << kCommand << domain << " has " << candidates.size()
              << " current keys; choose one with --key:";
    for (const Key* k : candidates) std::cerr << " " << k->spec.name;
    std::cerr << "\n";
  }
  return nullptr;
}

void print_instructions(const RotateArgs& args, const Key& old, const auth::KeySpec& spec,
                        const GeneratedKey& made) {
  std::cout << "wrote " << made.private_key_path << " (mode 0600) and " << made.record_path
            << "\n\n"
            << "1. Publish this TXT record in the DNS zone of " << spec.domain
            << " (keep the record of \"" << old.spec.name << "\", s=" << old.spec.selector
            << "):\n\n"
            << made.zone_line << "\n\n"
            << "2. Add this key to " << args.config
            << " (stampd edits no config file) and reload (SIGHUP):\n\n"
            << "[[dkim.key]]\n"
            << "name = \"" << spec.name << "\"\n"
            << "domain = \"" << spec.domain << "\"\n"
            << "selector = \"" << spec.selector << "\"\n"
            << "private_key = \"" << spec.private_key_path << "\"\n"
            << "replaces = \"" << old.spec.name << "\"\n\n"
            << "The rules go on naming \"" << old.spec.name << "\". \"" << old.spec.name
            << "\" signs until stampd sees the new record publish the new key (at start, on "
               "SIGHUP and every [dkim] dns_check_interval); then \""
            << spec.name << "\" signs in its place (logged as event=dkim-key-gate).\n\n"
            << "3. `stampd dns-check -c " << args.config
            << "` shows both records and says when the old one may be removed.\n";
}

}  // namespace

std::string expand_selector(const std::string& selector_template, long long now) {
  const auto t = static_cast<std::time_t>(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char yyyy[8];
  char mm[4];
  char dd[4];
  std::strftime(yyyy, sizeof yyyy, "%Y", &tm);
  std::strftime(mm, sizeof mm, "%m", &tm);
  std::strftime(dd, sizeof dd, "%d", &tm);
  std::string out;
  for (std::size_t i = 0; i < selector_template.size();) {
    const std::string_view rest(selector_template.data() + i, selector_template.size() - i);
    if (rest.starts_with("{yyyy}")) {
      out += yyyy;
      i += 6;
    } else if (rest.starts_with("{mm}")) {
      out += mm;
      i += 4;
    } else if (rest.starts_with("{dd}")) {
      out += dd;
      i += 4;
    } else {
      out += selector_template[i++];
    }
  }
  return out;
}

int cmd_keys_rotate(const RotateArgs& args) {
  std::shared_ptr<const proxy::Config> config;
  try {
    config = proxy::load_config(args.config);
  } catch (const std::exception& e) {
    std::cerr << kCommand << e.what() << "\n";
    return 1;
  }
  auth::KeyringOptions options;
  options.allow_group_readable_keys = config->dkim.allow_group_readable_keys;
  options.keep_broken_keys = true;
  auto keys = auth::SigningKeys::build(config->dkim.keys, config->dkim.rules, options);
  if (!keys) {
    std::cerr << kCommand << keys.error().detail << "\n";
    return 1;
  }
  const Key* old = choose(**keys, args);
  if (old == nullptr) return 1;
  std::optional<auth::KeyAlgorithm> algorithm =
      args.algorithm.empty() ? algorithm_of(*old) : auth::parse_key_algorithm(args.algorithm);
  if (!algorithm) {
    std::cerr << kCommand
              << (args.algorithm.empty() ? "key \"" + old->spec.name + "\" cannot be read (" +
                                               old->error->detail + "); name the algorithm"
                                         : "--algorithm must be rsa-2048, rsa-3072 or ed25519")
              << "\n";
    return 2;
  }
  const std::string base = expand_selector(args.selector_template, now_seconds());
  if (!valid_selector(base)) {
    std::cerr << kCommand << "the selector \"" << base << "\" (from \"" << args.selector_template
              << "\") is not a DNS label: letters, digits and hyphens\n";
    return 2;
  }
  const auto selector = next_selector(**keys, auth::ascii_lower(args.domain), base);
  if (!selector) {
    std::cerr << kCommand << "every selector from " << base << " to " << base << "z is taken\n";
    return 1;
  }
  auth::KeySpec spec;
  spec.domain = old->spec.domain;
  spec.selector = *selector;
  spec.name = spec.domain + "-" + spec.selector;
  spec.origin = "stampd keys rotate";
  const std::filesystem::path dir =
      old->spec.private_key_path.empty()
          ? std::filesystem::path(args.config).parent_path() / "keys" / spec.domain
          : std::filesystem::path(old->spec.private_key_path).parent_path();
  spec.private_key_path = (dir / (spec.selector + ".private")).string();
  std::optional<GeneratedKey> made;
  try {
    made = make_key_file(spec, *algorithm, config->server.user);
  } catch (const std::exception& e) {
    std::cerr << kCommand << e.what() << "\n";
    return 1;
  }
  if (!made) {
    std::cerr << kCommand << spec.private_key_path
              << " exists already (from an earlier rotation?): add it to the config, or remove "
                 "it and run this again\n";
    return 1;
  }
  print_instructions(args, *old, spec, *made);
  return 0;
}

}  // namespace stampd::cmd
