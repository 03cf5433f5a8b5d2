// dkim_base64.h: base64 as DKIM uses it (RFC 6376 §2.6: base64 with FWS
// allowed anywhere inside, for b=, bh= and p=). Pure string work.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stampd::auth {

// base64_encode encodes bytes with padding and no line breaks.
std::string base64_encode(std::string_view bytes);

// base64_decode decodes text, skipping whitespace (SP, HTAB, CR, LF) anywhere;
// nullopt on any other non-alphabet byte, bad padding or a truncated group.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace stampd::auth
