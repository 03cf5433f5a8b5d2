#include "proxy/cli.h"

#include <cstdio>

namespace stampd::proxy {

int run_cli(int, char**) {
  std::fprintf(stderr, "stampd: not yet\n");
  return 2;
}

}  // namespace stampd::proxy
