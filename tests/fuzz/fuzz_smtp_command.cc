// Fuzzes the SMTP command parser: an accepted MAIL or RCPT never carries a
// CR, LF or over-long path on to the upstream.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "smtp/command.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const auto c = stampd::smtp::parse_command(line);
  if (!c.syntax_error &&
      (c.verb == stampd::smtp::Verb::Mail || c.verb == stampd::smtp::Verb::Rcpt)) {
    if (c.argument.find_first_of("\r\n") != std::string::npos) std::abort();
    if (c.argument.size() > stampd::smtp::kMaxPath) std::abort();
  }
  return 0;
}
