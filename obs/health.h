// health.h: what /healthz and /readyz report: the process is alive; it is
// ready when its listeners are up, its config and keys are loaded, it is not
// draining, and the upstream answered at the last contact (a probe or a
// session). Plain atomics shared by the server, the sessions and the probe.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

namespace stampd::obs {

class Health {
 public:
  void set_listening(bool v) { listening_ = v; }
  void set_draining(bool v) { draining_ = v; }
  // set_keys_problem names an unusable signing key ("" when all are fine).
  void set_keys_problem(std::string problem);
  // upstream_result records the outcome of a contact with the upstream.
  void upstream_result(bool ok);
  // set_upstream_probing says whether a periodic probe runs; without one,
  // an upstream nobody has contacted yet does not hold readiness back
  // (else no traffic would ever come to find out).
  void set_upstream_probing(bool v) { probing_ = v; }

  // ready returns "" when ready, else why not.
  std::string not_ready_reason() const;

 private:
  std::atomic<bool> listening_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int> upstream_{-1};  // -1 unknown yet, 0 failed, 1 ok
  std::atomic<bool> probing_{true};
  mutable std::mutex mutex_;
  std::string keys_problem_;
};


}  // namespace stampd::obs
