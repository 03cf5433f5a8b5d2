// tls_server.h: the server side of TLS on stampd's listeners: one OpenSSL
// context per certificate, TLS 1.2 and newer with OpenSSL's default ciphers,
// the certificate chosen by the name the client asks for (SNI). Loaded once
// per configuration and shared read-only; it knows no SMTP.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "net/result.h"

namespace stampd::net {

// CertificateFiles names one certificate: its chain and its private key (PEM).
struct CertificateFiles {
  std::string chain_file;  // the certificate first, then its intermediates
  std::string key_file;
  std::string origin;  // where it was configured ("file:line: [table]"), put in front of errors
};

// ServerTls holds the loaded certificates. The first is the default: for a
// client that sends no SNI name, or one that no certificate covers.
class ServerTls {
 public:
  // load reads every certificate and checks that each key matches its
  // certificate; the Error's detail starts with the origin, then names the
  // file and what is wrong.
  static Result<std::shared_ptr<const ServerTls>> load(const std::vector<CertificateFiles>& files);

  ServerTls(const ServerTls&) = delete;
  ServerTls& operator=(const ServerTls&) = delete;
  ~ServerTls();

  // context is what a handshake starts with; it switches to the certificate
  // that covers the client's SNI name during the handshake.
  boost::asio::ssl::context& context() const { return *entries_.front().context; }
  // Summary says what certificate i is, for the log: its file, its DNS
  // names (or the subject's CN) and when it expires.
  struct Summary {
    std::string chain_file;
    std::vector<std::string> names;
    std::string not_after;  // "2027-03-01T12:00:00Z"
  };
  Summary summary(std::size_t i) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::unique_ptr<boost::asio::ssl::context> context;
    std::string chain_file;
  };
  ServerTls() = default;
  // select is OpenSSL's servername callback: it moves the handshake to the
  // first certificate that covers the name (RFC 6066 §3).
  static int select(SSL* ssl, int* alert, void* self);

  std::vector<Entry> entries_;
};

}  // namespace stampd::net
