// Fuzzes the SPF record parser and the macro checker and expander (records
// come from anyone's DNS): what the checker accepts, the expander expands.
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "auth/spf/macro.h"
#include "auth/spf/record.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)stampd::auth::parse_spf_record(text);
  static const stampd::auth::SpfMacroValues values = [] {
    stampd::auth::SpfMacroValues v;
    v.sender = "strong-bad@email.example.com";
    v.local_part = "strong-bad";
    v.sender_domain = v.domain = "email.example.com";
    v.ip = boost::asio::ip::make_address("2001:db8::cb01");
    v.helo = "mx.example.org";
    return v;
  }();
  using stampd::auth::MacroScope;
  for (auto scope : {MacroScope::DomainSpec, MacroScope::Explanation}) {
    const bool valid = stampd::auth::check_macro_string(text, scope).ok();
    const bool expanded = stampd::auth::expand_macro_string(text, values, scope).ok();
    if (valid && !expanded) std::abort();
  }
  return 0;
}
