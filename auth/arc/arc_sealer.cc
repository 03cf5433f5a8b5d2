#include "auth/arc/arc_sealer.h"

#include <algorithm>

#include "auth/dkim/base64.h"
#include "auth/dkim/field_folder.h"
#include "auth/dkim/header_hash.h"
#include "auth/dkim/tag_list.h"
#include "auth/dns_name.h"
#include "auth/mail_address.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

// split_results cuts an Authentication-Results value at the semicolons that
// are not inside a comment or a quoted string (RFC 8601 §2.2).
std::vector<std::string_view> split_results(std::string_view value) {
  std::vector<std::string_view> out;
  int depth = 0;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && depth > 0) {
      --depth;
    } else if (c == '\\' && depth > 0) {
      ++i;
    } else if (c == ';' && depth == 0) {
      out.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(value.substr(std::min(start, value.size())));
  return out;
}

// leading_token is the first word of s: up to white space, '(', '=' or '/'.
std::string_view leading_token(std::string_view s) {
  s = trim_fws(s);
  const auto end = s.find_first_of(" \t\r\n(=/");
  return s.substr(0, end);
}

// header_names drops the ARC fields from a header policy: an
// ARC-Message-Signature never covers ARC-Seal (§4.1.2), and the other ARC
// fields are the seals' business.
HeaderPolicy without_arc_fields(HeaderPolicy policy) {
  for (auto* list : {&policy.sign, &policy.oversign}) {
    std::erase_if(*list, [](const std::string& name) { return is_arc_field(name); });
  }
  return policy;
}

std::string encode(const Sha256Digest& digest) {
  return base64_encode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

// with_signature puts the base64 signature in place of the empty b= line:
// head "\r\n b=;" tail becomes head "\r\n b=<signature>;" tail. The seal
// covers the ARC-Message-Signature as written, fold included (relaxed makes a
// fold a space), so its b= stays on one line as the suite's reference
// sealers wrote it, and our seals match theirs byte for byte; the seal's own
// b= is folded.
std::string with_signature(std::string_view head, const std::string& signature,
                           std::string_view tail, bool fold) {
  FieldFolder b(" b=");
  if (fold) {
    b.spread(base64_encode(signature));
  } else {
    b.text() += base64_encode(signature);
  }
  b.glued(";");
  std::string out(head);
  out += "\r\n";
  out += b.text();
  out += tail;
  out += "\r\n";
  return out;
}

}  // namespace

std::string arc_results(const HeaderBlock& block, std::string_view authserv_id,
                        ChainValidation arc) {
  std::string out(authserv_id);
  out += "; arc=";
  out += to_string(arc);
  for (const std::size_t index : block.find_all("Authentication-Results")) {
    const std::string_view raw = block.field(index).raw;
    const auto colon = raw.find(':');
    const auto parts = split_results(raw.substr(colon + 1));
    if (!equals_ignore_case(leading_token(parts.front()), authserv_id)) continue;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      const std::string_view result = trim_fws(parts[i]);
      const std::string_view method = leading_token(result);
      if (result.empty() || equals_ignore_case(method, "none") ||
          equals_ignore_case(method, "arc")) {
        continue;
      }
      out += ";\r\n ";
      out += result;
    }
  }
  return out;
}

net::Result<ArcSet> seal_message(const HeaderBlock& block, const Sha256Digest& body_hash,
                                 const ArcVerdict& verdict, std::string_view results,
                                 const SigningKey& key, const ArcSealOptions& options) {
  const auto instance = verdict.next_instance();
  if (!instance) {
    return make_error(Errc::BadInput, verdict.latest_failed
                                          ? "the newest ARC-Seal says cv=fail: no set is added"
                                          : "the ARC chain already has 50 sets");
  }
  if (!key.key) return make_error(Errc::BadInput, "the sealing key is not loaded");
  // RFC 8617 §4.1.3 names rsa-sha256 as the algorithm verifiers support.
  if (key.key->type() != KeyType::Rsa)
    return make_error(Errc::BadInput, "ARC seals with RSA keys only (rsa-sha256)");
  if (!is_dkim_name(key.domain) || !is_dkim_name(key.selector))
    return make_error(Errc::BadInput, "invalid sealing domain or selector");
  if (options.timestamp < 0) return make_error(Errc::BadInput, "t= must not be negative");

  std::vector<ArcChain::Set> earlier;
  if (verdict.result == ChainValidation::Pass) {
    ArcChain chain = collect_arc_chain(block, kMaxArcInstance);
    if (chain.state != ChainValidation::Pass ||
        chain.sets.size() != static_cast<std::size_t>(*instance - 1)) {
      return make_error(Errc::BadInput, "the ARC chain to seal over does not match the verdict");
    }
    earlier = std::move(chain.sets);
  }

  const std::string i = std::to_string(*instance);
  const std::string t = std::to_string(options.timestamp);
  const std::string a = std::string("a=") + algorithm_name(key.key->type()) + ";";
  ArcSet set;
  set.results = "ARC-Authentication-Results: i=" + i + "; " + std::string(results) + "\r\n";

  // ARC-Message-Signature: tags a b bh c d h i s t, b= on a line of its own.
  const std::vector<std::string> names =
      options.explicit_headers.empty()
          ? select_signed_headers(block, without_arc_fields(options.headers))
          : options.explicit_headers;
  const std::string ams_head = "ARC-Message-Signature: " + a;
  FieldFolder ams("");
  ams.new_line();
  ams.word("bh=" + encode(body_hash) + ";");
  ams.word("c=relaxed/relaxed;");
  ams.word("d=" + key.domain + ";");
  for (std::size_t n = 0; n < names.size(); ++n) {
    const std::string sep = n + 1 == names.size() ? ";" : ":";
    if (n == 0) {
      ams.word("h=" + names[n] + sep);
    } else {
      ams.glued(names[n] + sep);
    }
  }
  if (names.empty()) ams.word("h=;");
  ams.word("i=" + i + ";");
  ams.word("s=" + key.selector + ";");
  ams.word("t=" + t);
  const std::string ams_empty = ams_head + "\r\n b=;" + ams.text();
  const Sha256Digest ams_hash = header_hash(block, names, Canonicalization::Relaxed, ams_empty);
  auto ams_signature = key.key->sign_digest(ams_hash);
  if (!ams_signature) return std::move(ams_signature).error();
  set.message_signature = with_signature(ams_head, *ams_signature, ams.text(), false);

  // ARC-Seal: tags a b cv d i s t over the sets (§5.1.1).
  const std::string as_head = "ARC-Seal: " + a;
  FieldFolder as("");
  as.new_line();
  as.word(std::string("cv=") + to_string(verdict.result) + ";");
  as.word("d=" + key.domain + ";");
  as.word("i=" + i + ";");
  as.word("s=" + key.selector + ";");
  as.word("t=" + t);
  const std::string as_empty = as_head + "\r\n b=;" + as.text();
  const std::string input =
      arc_seal_hash_input(block, earlier, set.results, set.message_signature, as_empty);
  auto as_signature = key.key->sign_digest(sha256(input));
  if (!as_signature) return std::move(as_signature).error();
  set.seal = with_signature(as_head, *as_signature, as.text(), true);
  return set;
}

}  // namespace stampd::auth
