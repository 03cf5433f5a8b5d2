// dkim_tag_list.h: the tag=value list syntax shared by DKIM-Signature fields
// and key records (RFC 6376 §3.2). Pure string work.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "net/result.h"

namespace stampd::auth {

// Tag is one tag-spec. value has the FWS at both ends removed (inner FWS
// kept); value_begin/value_end delimit the raw value in the parsed text,
// surrounding whitespace included, which is the span a verifier empties for
// b= (RFC 6376 §3.7).
struct Tag {
  std::string name;
  std::string value;
  std::size_t value_begin = 0;
  std::size_t value_end = 0;
};

// EmptyTagSpecs says what an empty tag-spec (";;") is.
enum class EmptyTagSpecs {
  Skip,   // skipped, as deployed DKIM records and signatures contain them
  Error,  // an error (the grammar's word; ARC fields, RFC 8617 §4.1)
};

// parse_tag_list parses text as a tag-list. Tag names are case-sensitive
// (§3.2). Errors (BadInput): a tag-spec without '=', an invalid tag name, a
// control byte in a value, a duplicate tag, an empty tag-spec when empty is
// Error. A trailing ';' is always allowed (the grammar's [";"]).
net::Result<std::vector<Tag>> parse_tag_list(std::string_view text,
                                             EmptyTagSpecs empty = EmptyTagSpecs::Skip);

// find_tag returns the tag named name, or nullptr.
const Tag* find_tag(const std::vector<Tag>& tags, std::string_view name);

// trim_fws removes the SP, HTAB, CR and LF at both ends of value.
std::string_view trim_fws(std::string_view value);

// remove_fws deletes every SP, HTAB, CR and LF (for base64 values, §2.6).
std::string remove_fws(std::string_view value);

}  // namespace stampd::auth
