#include "net/cidr.h"

#include <charconv>

namespace stampd::net {

std::optional<IpAddress> parse_ip(std::string_view text) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (address.is_v6() && address.to_v6().scope_id() != 0) return std::nullopt;
  return address;
}

IpAddress unmap(const IpAddress& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6());
  }
  return address;
}

bool prefix_match(const unsigned char* a, const unsigned char* b, unsigned prefix) {
  const unsigned whole = prefix / 8;
  for (unsigned i = 0; i < whole; ++i) {
    if (a[i] != b[i]) return false;
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

namespace {

template <class Bytes>
bool bytes_zero_from(const Bytes& bytes, unsigned prefix) {
  for (unsigned bit = prefix; bit < bytes.size() * 8; ++bit) {
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) return false;
  }
  return true;
}

bool host_bits_zero(const IpAddress& net, unsigned prefix) {
  return net.is_v4() ? bytes_zero_from(net.to_v4().to_bytes(), prefix)
                     : bytes_zero_from(net.to_v6().to_bytes(), prefix);
}

}  // namespace

Result<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  const auto address = parse_ip(text.substr(0, slash));
  if (!address) {
    return make_error(Errc::BadInput,
                      "'" + std::string(text) + "' is not an IP address or network");
  }
  const IpAddress net = unmap(*address);
  const unsigned max = net.is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() ||
        prefix > max) {
      return make_error(Errc::BadInput, "'" + std::string(text) + "' has a bad prefix length");
    }
  }
  if (!host_bits_zero(net, prefix)) {
    // Caught so that a typo like 10.0.0.1/8 does not silently mean 10.0.0.0/8.
    return make_error(Errc::BadInput,
                      "'" + std::string(text) + "' has host bits set below the prefix length");
  }
  Cidr cidr(net, prefix);
  return cidr;
}

Cidr Cidr::host(const IpAddress& address) {
  const IpAddress net = unmap(address);
  return Cidr(net, net.is_v4() ? 32 : 128);
}

bool Cidr::contains(const IpAddress& address) const {
  const IpAddress a = unmap(address);
  if (a.is_v4() != network_.is_v4()) return false;
  if (a.is_v4()) {
    const auto x = a.to_v4().to_bytes();
    const auto y = network_.to_v4().to_bytes();
    return prefix_match(x.data(), y.data(), prefix_);
  }
  const auto x = a.to_v6().to_bytes();
  const auto y = network_.to_v6().to_bytes();
  return prefix_match(x.data(), y.data(), prefix_);
}

std::string Cidr::to_string() const { return network_.to_string() + "/" + std::to_string(prefix_); }

}  // namespace stampd::net
