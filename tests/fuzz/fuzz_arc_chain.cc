// Fuzzes ARC chain validation on a whole message (the three ARC fields'
// parsers, the set structure checks, the cap, the seal hash input) with
// the ARC suite's key for every lookup, and the sealer's
// ARC-Authentication-Results merge on the same header.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/arc/arc_sealer.h"
#include "auth/arc/arc_verifier.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/message_splitter.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stampd::auth;
  const std::string_view message(reinterpret_cast<const char*>(data), size);
  static const auto key = parse_key_record(
      "v=DKIM1; k=rsa; "
      "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6w"
      "y5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvH"
      "O9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
  if (!key.ok()) std::abort();
  const KeyLookupFunction lookup = [](const std::string&, const std::string&) {
    return KeyLookup{*key, VerifyStatus::Pass, {}};
  };
  ArcVerifyOptions options;
  options.signatures.now = 1'700'000'000;
  const ArcVerdict verdict = verify_arc_message(message, lookup, options);
  if (verdict.result == ChainValidation::Fail && verdict.reason.empty()) std::abort();
  if (verdict.highest < 0 || verdict.highest > kMaxArcInstance) std::abort();
  auto block = HeaderBlock::parse(std::string(split_message(message).header));
  if (block) (void)arc_results(*block, "lists.example.org", verdict.result);
  return 0;
}
