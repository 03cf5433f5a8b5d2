#include "cmd/check_config_command.h"

#include <cstdio>
#include <exception>
#include <iostream>

#include "proxy/config.h"
#include "proxy/runtime.h"

namespace stampd::cmd {

int cmd_check_config(const std::string& path) {
  try {
    auto config = proxy::load_config(path);
    auto runtime = proxy::build_runtime(config, proxy::KeyPolicy::Strict);
    std::cout << proxy::describe_config(*config);
    for (const auto& warning : runtime->signing_keys->warnings()) {
      std::cerr << "warning: " << warning << "\n";
    }
    // Strict lets only keys that `stampd run` will generate be missing.
    for (const auto& missing : proxy::broken_keys(*runtime)) {
      std::cerr << "note: " << missing << "; `stampd run` makes it\n";
    }
    std::cerr << path << ": ok\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace stampd::cmd
