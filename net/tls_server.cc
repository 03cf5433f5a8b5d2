#include "net/tls_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>

namespace stampd::net {

namespace asio = boost::asio;

namespace {

std::string openssl_reason(const boost::system::error_code& ec) {
  // Asio's message for an OpenSSL error is its reason string ("no start line").
  return ec.message();
}

Result<std::unique_ptr<asio::ssl::context>> make_context(const CertificateFiles& files) {
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  // TLS 1.2 and newer (RFC 8996 deprecates 1.0 and 1.1), OpenSSL's default
  // cipher list and security level; no renegotiation a client could start
  // (a cheap way to make a server compute), no compression (CRIME).
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression |
                       asio::ssl::context::single_dh_use);
  SSL_CTX* ctx = context->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  boost::system::error_code ec;
  context->use_certificate_chain_file(files.chain_file, ec);
  if (ec) {
    return make_error(Errc::BadInput,
                      "certificate chain '" + files.chain_file + "': " + openssl_reason(ec));
  }
  context->use_private_key_file(files.key_file, asio::ssl::context::pem, ec);
  const bool mismatch =
      ec && ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_LIB(static_cast<unsigned long>(ec.value())) == ERR_LIB_X509 &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) {
    return make_error(Errc::BadInput, "key '" + files.key_file + "': " + openssl_reason(ec));
  }
  if (mismatch || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return make_error(Errc::BadInput, "key '" + files.key_file +
                                          "' does not belong to the certificate in '" +
                                          files.chain_file + "'");
  }
  return context;
}

}  // namespace

ServerTls::~ServerTls() = default;

Result<std::shared_ptr<const ServerTls>> ServerTls::load(
    const std::vector<CertificateFiles>& files) {
  if (files.empty()) return make_error(Errc::NotFound, "no certificate");
  std::shared_ptr<ServerTls> tls(new ServerTls());
  for (const auto& f : files) {
    auto context = make_context(f);
    if (!context) {
      Error e = std::move(context).error();
      if (!f.origin.empty()) e.detail = f.origin + " " + e.detail;
      return e;
    }
    tls->entries_.push_back({std::move(*context), f.chain_file});
  }
  // The handshake starts on the first context; the callback's argument is
  // the ServerTls, which the sessions keep alive for as long as they use it.
  SSL_CTX* first = tls->entries_.front().context->native_handle();
  SSL_CTX_set_tlsext_servername_callback(first, &ServerTls::select);
  SSL_CTX_set_tlsext_servername_arg(first, tls.get());
  return std::shared_ptr<const ServerTls>(std::move(tls));
}

int ServerTls::select(SSL* ssl, int* /*alert*/, void* self) {
  const auto* tls = static_cast<const ServerTls*>(self);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr || tls->entries_.size() < 2) return SSL_TLSEXT_ERR_OK;
  for (const auto& entry : tls->entries_) {
    SSL_CTX* ctx = entry.context->native_handle();
    X509* leaf = SSL_CTX_get0_certificate(ctx);
    // X509_check_host follows RFC 6125: SAN DNS names, a wildcard for one label.
    if (leaf != nullptr && X509_check_host(leaf, name, std::strlen(name), 0, nullptr) == 1) {
      if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
      break;
    }
  }
  // No certificate covers the name: the default one answers (as most
  // servers do), and the client's own verification decides.
  return SSL_TLSEXT_ERR_OK;
}

ServerTls::Summary ServerTls::summary(std::size_t i) const {
  Summary out;
  out.chain_file = entries_.at(i).chain_file;
  X509* leaf = SSL_CTX_get0_certificate(entries_.at(i).context->native_handle());
  if (leaf == nullptr) return out;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int k = 0; k < sk_GENERAL_NAME_num(sans); ++k) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, k);
      if (n->type != GEN_DNS) continue;
      const auto* data = ASN1_STRING_get0_data(n->d.dNSName);
      out.names.emplace_back(reinterpret_cast<const char*>(data),
                             static_cast<std::size_t>(ASN1_STRING_length(n->d.dNSName)));
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.names.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof cn) > 0)
      out.names.emplace_back(cn);
  }
  struct tm t {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &t) == 1) {
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &t);
    out.not_after = text;
  }
  return out;
}

}  // namespace stampd::net
