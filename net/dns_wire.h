// dns_wire.h: converts between DNS wire format and the values of
// net/resolver.h: record data of the types stampd asks for (RFC 1035 §3.3,
// RFC 3596 §2.2) and query names in presentation format. Pure; no I/O.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "net/resolver.h"
#include "net/result.h"

namespace stampd::net {

// append_rdata decodes one record's RDATA of the given type into the
// matching field of answer: TXT strings joined into one entry, A/AAAA into
// addresses, MX into mx, PTR/CNAME into names (no trailing dot). Names must be
// uncompressed, as libunbound hands them over.
Status append_rdata(DnsAnswer& answer, RrType type, std::span<const std::uint8_t> rdata);

// decode_name reads one uncompressed wire-format name from the front of in
// (advancing it) and returns it dotted, without the root dot; the root
// itself is "".
Result<std::string> decode_name(std::span<const std::uint8_t>& in);

// presentation_name escapes name for a resolver that parses presentation
// format (RFC 1035 §5.1): dots separate labels; any octet other than a
// letter, digit, '-' or '_' is written "\DDD", so names built by SPF macros
// (spaces, '%', ':', '/') reach the wire unchanged.
std::string presentation_name(std::string_view name);

}  // namespace stampd::net
