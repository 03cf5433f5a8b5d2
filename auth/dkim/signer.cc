#include "auth/dkim/signer.h"

#include <algorithm>

#include "auth/dkim/base64.h"
#include "auth/dkim/field_folder.h"
#include "auth/dkim/header_hash.h"
#include "auth/dkim/signature.h"
#include "auth/dns_name.h"
#include "auth/mail_address.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

bool contains_name(const std::vector<std::string>& list, std::string_view name) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& s) { return header_name_equal(s, name); });
}

net::Status check_options(const SigningKey& key, const SignOptions& o) {
  if (!key.key) return make_error(Errc::BadInput, "signing key has no private key loaded");
  if (!is_dkim_name(key.domain))
    return make_error(Errc::BadInput, "invalid signing domain \"" + key.domain + "\"");
  if (!is_dkim_name(key.selector))
    return make_error(Errc::BadInput, "invalid selector \"" + key.selector + "\"");
  if (o.timestamp < 0) return make_error(Errc::BadInput, "t= must not be negative");
  if (o.expiration && *o.expiration <= o.timestamp) {
    return make_error(Errc::BadInput, "x= must be later than t= (RFC 6376 §3.5)");
  }
  if (o.identity) {
    if (o.identity->find_first_of("; \t\r\n") != std::string::npos ||
        !identity_within(*o.identity, key.domain)) {
      return make_error(Errc::BadInput, "i=" + *o.identity + " must be an identity in d=" +
                                            key.domain + " or a subdomain");
    }
  }
  if (!o.explicit_headers.empty()) {
    if (!contains_name(o.explicit_headers, "from")) {
      return make_error(Errc::BadInput, "h= must include from (RFC 6376 §5.4)");
    }
    for (const auto& n : o.explicit_headers) {
      if (n.empty() || n.find_first_of(":; \t\r\n") != std::string::npos) {
        return make_error(Errc::BadInput, "invalid header name in h=: \"" + n + "\"");
      }
    }
  }
  return net::Ok{};
}

}  // namespace

std::vector<std::string> default_signed_headers() {
  return {"From",
          "Reply-To",
          "Subject",
          "Date",
          "To",
          "Cc",
          "Resent-Date",
          "Resent-From",
          "Resent-To",
          "Resent-Cc",
          "Resent-Sender",
          "Resent-Message-ID",
          "In-Reply-To",
          "References",
          "Message-ID",
          "MIME-Version",
          "Content-Type",
          "Content-Transfer-Encoding",
          "Content-ID",
          "Content-Description",
          "Content-Disposition",
          "Content-Language",
          "List-Id",
          "List-Help",
          "List-Unsubscribe",
          "List-Unsubscribe-Post",
          "List-Subscribe",
          "List-Post",
          "List-Owner",
          "List-Archive",
          "Sender"};
}

std::vector<std::string> default_oversigned_headers() {
  return {"From",
          "Reply-To",
          "Subject",
          "Date",
          "To",
          "Cc",
          "Message-ID",
          "In-Reply-To",
          "References",
          "Sender",
          "MIME-Version",
          "Content-Type",
          "Content-Transfer-Encoding",
          "List-Unsubscribe",
          "List-Unsubscribe-Post"};
}

std::vector<std::string> select_signed_headers(const HeaderBlock& block,
                                               const HeaderPolicy& policy) {
  std::vector<std::string> out;
  std::vector<std::string> seen;  // names already handled, to ignore duplicates in the list
  auto sign_name = [&](std::string_view name) {
    if (contains_name(seen, name)) return;
    seen.emplace_back(name);
    const std::size_t n = block.count(name);
    for (std::size_t i = 0; i < n; ++i) out.push_back(ascii_lower(name));
  };
  for (const auto& name : policy.sign) sign_name(name);
  sign_name("from");

  std::vector<std::string> over_seen;
  auto oversign_name = [&](std::string_view name) {
    if (contains_name(over_seen, name)) return;
    over_seen.emplace_back(name);
    const bool present = block.count(name) != 0;
    if (header_name_equal(name, "from") || present || policy.oversign_absent)
      out.push_back(ascii_lower(name));
  };
  oversign_name("from");
  for (const auto& name : policy.oversign) oversign_name(name);
  return out;
}

net::Result<std::string> sign_header_block(const HeaderBlock& headers,
                                           const Sha256Digest& body_hash, const SigningKey& key,
                                           const SignOptions& options) {
  if (auto ok = check_options(key, options); !ok) return std::move(ok).error();
  const std::vector<std::string> names = options.explicit_headers.empty()
                                             ? select_signed_headers(headers, options.headers)
                                             : options.explicit_headers;

  FieldFolder f("DKIM-Signature:");
  f.word("v=1;");
  f.word(std::string("a=") + algorithm_name(key.key->type()) + ";");
  f.word("c=" + to_string(options.canonicalization) + ";");
  f.word("d=" + key.domain + ";");
  if (options.identity) f.word("i=" + *options.identity + ";");
  if (options.query_method) f.word("q=dns/txt;");
  f.word("s=" + key.selector + ";");
  f.word("t=" + std::to_string(options.timestamp) + ";");
  if (options.expiration) f.word("x=" + std::to_string(*options.expiration) + ";");
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool last = i + 1 == names.size();
    if (options.header_list_style == HeaderListStyle::Spaced) {
      if (i != 0) f.word(":");
      f.word((i == 0 ? "h=" : "") + names[i] + (last ? ";" : ""));
    } else if (i == 0) {
      f.word("h=" + names[i] + (last ? ";" : ":"));
    } else {
      f.glued(names[i] + (last ? ";" : ":"));
    }
  }
  const std::array<unsigned char, 32>& bh = body_hash;
  f.word(
      "bh=" + base64_encode(std::string_view(reinterpret_cast<const char*>(bh.data()), bh.size())) +
      ";");
  // b= starts its own line; the text up to "b=" is what gets signed (§3.7:
  // the b= value, with the whitespace around it, counts as empty).
  f.new_line();
  f.word("b=");
  const Sha256Digest digest =
      header_hash(headers, names, options.canonicalization.header, f.text());
  auto signature = key.key->sign_digest(digest);
  if (!signature) return std::move(signature).error();
  f.spread(base64_encode(*signature));
  f.text() += "\r\n";
  return std::move(f.text());
}

}  // namespace stampd::auth
