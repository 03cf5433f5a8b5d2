// dkim_signing.h: signing a whole message with given keys, for tests that
// need a signed message to verify or to compare h= lists. Not how stampd
// signs: the proxy and `stampd sign` choose keys by rule through
// auth::MessageSigner (auth/dkim/message_signer.h).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "auth/dkim/signer.h"
#include "net/result.h"

namespace stampd::test {

// sign_message signs message (CRLF text) with each key and returns it with
// the DKIM-Signature fields on top, in key order. BadInput for a malformed
// header section.
net::Result<std::string> sign_message(std::string_view message,
                                      std::span<const auth::SigningKey> keys,
                                      const auth::SignOptions& options);

}  // namespace stampd::test
