// dkim_stage.h: DKIM signing in the pipeline, a thin adapter over
// auth::MessageSigner (the one signing path, shared with `stampd sign`): the
// header block and the body chunks go to the signer as they stream in; at end
// of data the stage puts the signatures in front of the message, or logs and
// counts why there are none, or refuses the message when a fail-closed rule
// cannot sign. No second pass over the body, no copy of it.
#pragma once

#include <prometheus/counter.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/dkim/key_record.h"
#include "auth/dkim/keyring.h"
#include "auth/dkim/message_signer.h"
#include "auth/dkim/signing_rules.h"
#include "obs/metrics.h"
#include "proxy/config.h"
#include "proxy/pipeline.h"
#include "proxy/stages/arc_sealing.h"

namespace stampd::proxy {

// DkimSettings is what every signature of one config shares.
using DkimSettings = auth::SignerSettings;

// MustSign is [dkim] must_sign: From domains whose mail is tempfailed
// (451 4.7.0) when it would leave unsigned, so that a missing rule or an
// unreadable key cannot leak unsigned mail. "*.example.com" is the domains
// under example.com, not example.com itself.
// The entries are matched as the From patterns of [[dkim.sign]]
// ("*@example.com", "*@*.example.com"); the config has checked them.
class MustSign {
 public:
  explicit MustSign(const std::vector<std::string>& domains);
  // covers tells whether mail From address from must be signed.
  bool covers(const auth::MailAddress& from) const;

 private:
  std::vector<auth::FromPattern> patterns_;
};

// dkim_settings derives the signing settings from [dkim].
DkimSettings dkim_settings(const DkimConfig& config);

// DkimCounters are the DKIM series, resolved once per configuration.
struct DkimCounters {
  std::vector<prometheus::Counter*> signatures;    // by index in SigningKeys::keys()
  std::array<prometheus::Counter*, 7> skipped{};   // by auth::NotSigned (those that skip)
  std::array<prometheus::Counter*, 7> failures{};  // by auth::NotSigned (those that fail)
  prometheus::Counter* send_unsigned = nullptr;    // a failure a rule let through unsigned
  prometheus::Counter* must_sign = nullptr;        // refused: a must-sign domain unsigned
  prometheus::Counter* self_verify_pass = nullptr;
  prometheus::Counter* self_verify_fail = nullptr;
};

// SelfVerification is [dkim] self_verify for one configuration: which
// messages are checked, and each key's public half (derived once from the
// private key, by index in SigningKeys::keys()).
struct SelfVerification {
  SelfVerify mode = SelfVerify::Off;
  std::vector<std::optional<auth::KeyRecord>> records;
  mutable std::atomic<unsigned> messages{0};  // for "sample"
  // wanted tells whether this message is to be checked.
  bool wanted() const;
};

class DkimStageFactory final : public StageFactory {
 public:
  // The stages count what they do in metrics. arc serves the rules with
  // arc_seal.
  DkimStageFactory(std::shared_ptr<const auth::SigningKeys> keys, DkimSettings settings,
                   MustSign must_sign, obs::Metrics& metrics,
                   SelfVerify self_verify = SelfVerify::Off, ArcSettings arc = {});
  std::vector<std::unique_ptr<Stage>> make_stages() const override;

 private:
  std::shared_ptr<const auth::SigningKeys> keys_;
  std::shared_ptr<const DkimSettings> settings_;
  std::shared_ptr<const MustSign> must_sign_;
  std::shared_ptr<const SelfVerification> self_verification_;
  std::shared_ptr<const ArcSettings> arc_;
  DkimCounters counters_;
  ArcCounters arc_counters_;
};

}  // namespace stampd::proxy
