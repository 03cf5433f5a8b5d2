// dkim_stage.h: DKIM signing in the pipeline. At the blank line it picks the
// signing rule by the From address and starts one body hash per distinct
// body canonicalization; body chunks are hashed as they stream in; at end of
// data it adds one DKIM-Signature per key in front of the message. No second
// pass over the body, no copy of it.
#pragma once

#include <memory>

#include "auth/dkim/keyring.h"
#include "auth/dkim/signer.h"
#include "proxy/config.h"
#include "proxy/pipeline.h"

namespace stampd::proxy {

// DkimSettings is what every signature of one config shares.
struct DkimSettings {
  auth::SignOptions options;      // canonicalization, header policy
  Duration signature_lifetime{};  // x= = t= + this; zero: none
};

// dkim_settings derives the signing settings from [dkim].
DkimSettings dkim_settings(const DkimConfig& config);

class DkimStageFactory final : public StageFactory {
 public:
  DkimStageFactory(std::shared_ptr<const auth::SigningKeys> keys, DkimSettings settings)
      : keys_(std::move(keys)), settings_(std::move(settings)) {}
  std::vector<std::unique_ptr<Stage>> make_stages() const override;
  const auth::SigningKeys& keys() const { return *keys_; }

 private:
  std::shared_ptr<const auth::SigningKeys> keys_;
  DkimSettings settings_;
};

}  // namespace stampd::proxy
