// Fuzzes the config loader (TOML syntax, every section's keys, values and
// cross-checks): a file either loads or is refused with a ConfigError that
// names the file, never another exception or a crash; what loads can be
// described (check-config prints it).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proxy/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Bound the input: toml++ nests recursively and a config is small anyway.
  if (size > 16384) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = "fuzz-no-such-dir/stampd.toml";
  try {
    const auto config = stampd::proxy::parse_config(text, path);
    if (stampd::proxy::describe_config(*config).empty()) std::abort();
  } catch (const stampd::proxy::ConfigError& e) {
    if (std::string(e.what()).rfind(path, 0) != 0) std::abort();
  }
  return 0;
}
