// dkim_stage.h: DKIM signing in the pipeline, a thin adapter over
// auth::MessageSigner (the one signing path, shared with `stampd sign`): the
// header block and the body chunks go to the signer as they stream in; at end
// of data the stage puts the signatures in front of the message, or logs and
// counts why there are none, or refuses the message when a fail-closed rule
// cannot sign. No second pass over the body, no copy of it.
#pragma once

#include <memory>

#include "auth/dkim/keyring.h"
#include "auth/dkim/message_signer.h"
#include "proxy/config.h"
#include "proxy/pipeline.h"

namespace stampd::proxy {

// DkimSettings is what every signature of one config shares.
using DkimSettings = auth::SignerSettings;

// dkim_settings derives the signing settings from [dkim].
DkimSettings dkim_settings(const DkimConfig& config);

class DkimStageFactory final : public StageFactory {
 public:
  DkimStageFactory(std::shared_ptr<const auth::SigningKeys> keys, DkimSettings settings)
      : keys_(std::move(keys)),
        settings_(std::make_shared<const DkimSettings>(std::move(settings))) {}
  std::vector<std::unique_ptr<Stage>> make_stages() const override;
  const auth::SigningKeys& keys() const { return *keys_; }

 private:
  std::shared_ptr<const auth::SigningKeys> keys_;
  std::shared_ptr<const DkimSettings> settings_;
};

}  // namespace stampd::proxy
