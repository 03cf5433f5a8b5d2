// Fuzzes the PROXY protocol v1/v2 header parser: a parsed header never
// claims more bytes than it was given.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto r = stampd::net::parse_proxy_header(bytes);
  if (r.status == stampd::net::ProxyParse::Status::Done &&
      (r.header.length == 0 || r.header.length > size)) {
    std::abort();
  }
  return 0;
}
