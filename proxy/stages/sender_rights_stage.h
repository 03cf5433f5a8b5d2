// sender_rights_stage.h: what an authenticated client may send as. A login
// may use only its [[auth.user]] senders, in MAIL FROM (checked at MAIL) and
// in the From: header (checked at end of data, before the DKIM stage signs),
// so a leaked app password can never get mail signed for another domain.
// Clients that did not AUTH (trusted_networks) pass untouched.
#pragma once

#include <memory>
#include <string_view>

#include "proxy/config.h"
#include "proxy/pipeline.h"

namespace stampd::proxy {

// sender_allowed tells whether login may send as address ("a@b"); a login
// without an [[auth.user]] may send as nobody.
bool sender_allowed(const AuthConfig& auth, std::string_view login, std::string_view address);

class SenderRightsStageFactory final : public StageFactory {
 public:
  explicit SenderRightsStageFactory(std::shared_ptr<const Config> config)
      : config_(std::move(config)) {}
  std::vector<std::unique_ptr<Stage>> make_stages() const override;

 private:
  std::shared_ptr<const Config> config_;
};

}  // namespace stampd::proxy
