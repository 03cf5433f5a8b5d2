// dkim_header_block.h: a message's header section as a list of raw fields,
// the way DKIM needs it (RFC 6376 §5.4.2: every instance, bottom-up order
// matters, folding kept byte for byte). Pure string work.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/result.h"

namespace stampd::auth {

// HeaderField is one field: its name as written (WSP before the colon
// trimmed) and its raw bytes, continuation lines and final CRLF included.
struct HeaderField {
  std::string_view name;
  std::string_view raw;
};

// HeaderBlock owns the header text and indexes its fields, top to bottom.
//
// parse rules: fields end at CRLF; a line starting with SP or HTAB continues
// the previous field (RFC 5322 §2.2.3). A blank line ends the block (anything
// after it is ignored, so a whole message may be passed). A malformed line is
// an error, not skipped, because a field the signer silently ignored would
// still reach the receiver: BadInput with the 1-based line number for a line
// without a colon, a name that is empty or has bytes outside %x21-7E
// (RFC 5322 §2.2), or a continuation line before the first field. A final
// line without CRLF is accepted as if it had one (the SMTP transport always
// adds it).
class HeaderBlock {
 public:
  HeaderBlock() = default;
  static net::Result<HeaderBlock> parse(std::string text);

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  HeaderField field(std::size_t index) const;
  const std::string& text() const noexcept { return text_; }

  // find_all lists the indexes of fields named name (case-insensitive), top
  // to bottom.
  std::vector<std::size_t> find_all(std::string_view name) const;
  // count is the number of fields named name (case-insensitive).
  std::size_t count(std::string_view name) const;
  // find_last is the bottom-most field named name.
  std::optional<std::size_t> find_last(std::string_view name) const;

 private:
  struct Span {
    std::size_t begin;
    std::size_t name_size;
    std::size_t size;
  };
  std::string text_;
  std::vector<Span> fields_;
};

// select_fields applies an h= list (RFC 6376 §5.4.2): each name takes the
// bottom-most instance not yet taken; a name with no instance left yields
// nullopt and contributes nothing to the hash (that is what makes
// oversigning work).
std::vector<std::optional<std::size_t>> select_fields(const HeaderBlock& block,
                                                      std::span<const std::string> names);

// header_name_equal compares field names ASCII case-insensitively.
bool header_name_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace stampd::auth
