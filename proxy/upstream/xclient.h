// xclient.h: the XCLIENT command (Postfix XCLIENT_README) that names the
// original client to an upstream Postfix, so its policies, logs and
// Received header see the sender rather than stampd. Pure string work: when
// it is sent and what follows it (a new 220, EHLO again) is smtp_upstream's.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "smtp/session.h"

namespace stampd::proxy {

// XclientIdentity is what XCLIENT can say about the client, each value as
// it goes on the wire (xtext); an empty value is left out.
struct XclientIdentity {
  std::string addr;  // "192.0.2.7" or "IPV6:2001:db8::7"
  std::string port;
  std::string name;  // the client's host name; "[UNAVAILABLE]" when unknown
  std::string helo;
  std::string proto;  // SMTP or ESMTP
  std::string login;  // the SASL login of a client that authenticated to us
};

// xclient_identity describes the session's client: the one a trusted
// Postfix named with XFORWARD if it did, else the peer itself.
XclientIdentity xclient_identity(const smtp::Session& session);

// xclient_line renders "XCLIENT ADDR=... NAME=..." with the attributes the
// upstream offered (as listed after XCLIENT in its EHLO reply); empty when
// none of them is known.
std::string xclient_line(const XclientIdentity& identity, const std::vector<std::string>& offered);

// xtext encodes a value per RFC 3461 §4 ("+" and "=" and octets outside
// "!".."~" as +XX), as XCLIENT values are.
std::string xtext(std::string_view value);
// xtext_decode reverses it ("+XX" to the octet; a malformed "+" stays).
std::string xtext_decode(std::string_view value);

}  // namespace stampd::proxy
