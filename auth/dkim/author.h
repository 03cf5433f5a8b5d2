// dkim_author.h: the author address, i.e. the one address in the one From
// field (RFC 5322 §3.6.2), which selects the signing rule. Pure parsing; no
// IDNA, no decoding of display names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/header_block.h"
#include "auth/mail_address.h"
#include "net/result.h"

namespace stampd::auth {

// parse_mailbox_list returns the addr-specs of a From-style field value
// (mailbox-list or groups, RFC 5322 §3.4): display names, comments and
// routes dropped, quoted local parts kept as written. BadInput for unbalanced
// quotes, comments or angle brackets.
net::Result<std::vector<std::string>> parse_mailbox_list(std::string_view value);

// author_address returns the From address. BadInput (with a reason fit for a
// log line) when there is no From field, more than one, or a From field that
// does not hold exactly one address.
net::Result<MailAddress> author_address(const HeaderBlock& block);

}  // namespace stampd::auth
