#include "cmd/explain_command.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>

#include "auth/dkim/author.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/signature.h"
#include "auth/mail_address.h"
#include "auth/spf/evaluator.h"
#include "cmd/dkim_commands.h"
#include "cmd/rotation_status.h"
#include "cmd/run_to_completion.h"
#include "net/cidr.h"
#include "proxy/key_watch.h"
#include "proxy/message_assembler.h"
#include "proxy/pipeline.h"
#include "proxy/runtime.h"
#include "proxy/spool.h"
#include "smtp/command.h"
#include "smtp/session.h"

namespace stampd::cmd {

namespace asio = boost::asio;

namespace {

std::string address_text(const auth::MailAddress& a) { return a.local + "@" + a.domain; }

std::string log_field(const proxy::Transaction& tx, const std::string& key) {
  for (const auto& [k, v] : tx.log_fields)
    if (k == key) return v;
  return "";
}

// Explainer runs the stages on one message and prints what they decide.
class Explainer {
 public:
  Explainer(const ExplainArgs& args, std::shared_ptr<const proxy::Runtime> runtime,
            const net::IpAddress& ip, std::ostream& out)
      : args_(args),
        runtime_(std::move(runtime)),
        config_(*runtime_->config),
        ip_(ip),
        out_(out),
        session_({}, smtp::ClientInfo{ip, 0, config_.server.trusts(ip)}, config_.server.hostname) {}

  asio::awaitable<int> run(std::string message);

 private:
  bool client_may_relay();
  asio::awaitable<void> explain_spf();
  boost::asio::awaitable<void> check_key_records();
  void explain_rule(std::string_view header_block);
  void explain_signature(const std::string& field, const auth::HeaderBlock& block);
  int refused(const proxy::Refusal& r, const char* when);

  const ExplainArgs& args_;
  std::shared_ptr<const proxy::Runtime> runtime_;
  const proxy::Config& config_;
  net::IpAddress ip_;
  std::ostream& out_;
  smtp::Session session_;
  proxy::Transaction tx_;
  proxy::Pipeline pipeline_;
};

bool Explainer::client_may_relay() {
  const bool trusted = config_.server.trusts(ip_);
  out_ << "client: " << ip_.to_string() << " HELO " << args_.helo << ": "
       << (trusted ? "in [server] trusted_networks, may relay" : "not in [server] trusted_networks")
       << "\n";
  if (!trusted) {
    out_ << "verdict: refused: a client outside trusted_networks must log in (AUTH) to relay; "
            "without it RCPT gets 550 5.7.1\n";
  }
  return trusted;
}

asio::awaitable<void> Explainer::explain_spf() {
  const std::string verdict = log_field(tx_, "spf");
  if (verdict.empty()) {
    out_ << "spf: not checked ([spf] mode is off for this sender)\n";
    co_return;
  }
  out_ << "spf: " << verdict << ", action " << log_field(tx_, "spf_action") << " ("
       << log_field(tx_, "spf_detail") << ", for " << log_field(tx_, "spf_ip") << ")\n";
  if (!runtime_->resolver) co_return;
  // The stage does not keep its trace; the same question again, answered
  // from the resolver's cache, gives it.
  auth::SpfOptions options;
  options.record_trace = true;
  const auto ip = *net::parse_ip(log_field(tx_, "spf_ip"));
  const auth::SpfResult result =
      co_await auth::check_mail_from(*runtime_->resolver, ip, tx_.mail_from, args_.helo, options);
  if (!result.record.empty()) out_ << "  record: " << result.record << "\n";
  std::istringstream trace(auth::format_trace(result.trace));
  for (std::string line; std::getline(trace, line);) out_ << "  " << line << "\n";
}

// check_key_records looks up the records of a rotation's keys, as the
// daemon's key watch does, so a replacing key signs here only where it
// would sign there.
asio::awaitable<void> Explainer::check_key_records() {
  const auto& keys = runtime_->signing_keys->keys();
  const bool rotating =
      std::any_of(keys.begin(), keys.end(), [](const auto& k) { return k.gated(); });
  if (!rotating || !runtime_->resolver) co_return;
  proxy::KeyWatch watch(*runtime_->metrics, false);
  co_await watch.check(*runtime_->signing_keys, *runtime_->resolver);
}

void Explainer::explain_rule(std::string_view header_block) {
  auto block = auth::HeaderBlock::parse(std::string(header_block));
  if (!block) {
    out_ << "dkim rule: none (the header section does not parse: " << block.error().detail << ")\n";
    return;
  }
  auto from = auth::author_address(*block);
  if (!from) {
    out_ << "dkim rule: none (" << from.error().detail << ")\n";
    return;
  }
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  const auto selection = runtime_->signing_keys->select(*from, now);
  if (!selection) {
    out_ << "dkim rule: no [[dkim.sign]] rule matches From " << address_text(*from) << "\n";
    return;
  }
  out_ << "dkim rule: " << selection->rule->origin << ": from \"" << selection->rule->from.text()
       << "\" matches From " << address_text(*from) << "; keys";
  for (const auto& name : selection->rule->keys) out_ << " " << name;
  out_ << "; on_error " << auth::to_string(selection->rule->on_error);
  if (!selection->rule->arc_seal.empty()) out_ << "; arc_seal " << selection->rule->arc_seal;
  out_ << "\n";
  for (const auto* key : selection->keys) {
    out_ << "  key " << key->spec.name << ": d=" << key->spec.domain << " s=" << key->spec.selector
         << " ("
         << (key->signing_key ? auth::algorithm_name(key->signing_key->key->type())
                              : "unusable: " + key->error->message())
         << ")\n";
    const auto lifetime =
        std::chrono::duration_cast<std::chrono::seconds>(config_.dkim.signature_lifetime);
    if (auto status = rotation_status(*runtime_->signing_keys, *key, now, lifetime))
      out_ << "    " << *status << "\n";
  }
  if (selection->error) out_ << "  cannot sign: " << selection->error->message() << "\n";
}

void Explainer::explain_signature(const std::string& field, const auth::HeaderBlock& block) {
  auto sig = auth::parse_signature(field);
  if (!sig) return;
  // A name listed more often than the message has the field is oversigned
  // (RFC 6376 §8.15): a copy added later breaks the signature.
  std::string signed_names;
  std::string oversigned;
  std::map<std::string, std::size_t> listed;
  for (const auto& name : sig->headers) {
    const std::string lower = auth::ascii_lower(name);
    const std::size_t n = ++listed[lower];
    if (n == block.count(lower) + 1) {
      oversigned += " " + lower;
    } else if (n == 1) {
      signed_names += " " + lower;
    }
  }
  out_ << "  d=" << sig->domain << " s=" << sig->selector << " a=" << sig->algorithm << "\n"
       << "    signs:" << signed_names << "\n"
       << "    oversigns (a copy added later breaks the signature):"
       << (oversigned.empty() ? std::string(" none") : oversigned) << "\n";
}

int Explainer::refused(const proxy::Refusal& r, const char* when) {
  out_ << "verdict: refused " << when << ": " << r.reply.wire() << "  by the " << r.stage
       << " stage: " << r.reason << "\n";
  return kExplainRefused;
}

asio::awaitable<int> Explainer::run(std::string message) {
  if (!client_may_relay()) co_return kExplainRefused;
  co_await check_key_records();
  tx_.id = "explain";
  tx_.session = &session_;
  session_.apply(smtp::parse_command("EHLO " + args_.helo));
  std::string mail_from = args_.mail_from;
  tx_.mail_from = mail_from;
  out_ << "envelope: MAIL FROM:<" << mail_from << "> RCPT TO:<" << args_.rcpt << ">\n";
  pipeline_.start(runtime_->stage_factories);
  const auto at_mail = co_await pipeline_.mail_from(tx_);
  co_await explain_spf();
  if (at_mail) co_return refused(*at_mail, "at MAIL FROM");

  proxy::Spool spool(config_.server.spool_memory, config_.server.spool_dir);
  proxy::MessageAssembler assembler(tx_, pipeline_, spool, config_.server.max_header_size);
  if (auto added = assembler.add(message); !added) {
    out_ << "verdict: refused at end of data: " << added.error().message() << "\n";
    co_return kExplainRefused;
  }
  if (auto finished = assembler.finish(); !finished) {
    out_ << "verdict: refused at end of data: " << finished.error().message() << "\n";
    co_return kExplainRefused;
  }
  explain_rule(assembler.header_block());
  const proxy::Message whole{assembler.header_block(), &spool, spool.size()};
  const auto at_end = co_await pipeline_.end_of_data(tx_, whole);
  if (at_end) co_return refused(*at_end, "at end of data");

  const std::string dkim = log_field(tx_, "dkim");
  const std::string self_verify = log_field(tx_, "dkim_self_verify");
  if (!self_verify.empty()) out_ << "self-verification: " << self_verify << "\n";
  auto block = auth::HeaderBlock::parse([&] {
    std::string all;
    for (const auto& f : tx_.prepend_fields) all += f;
    return all + std::string(assembler.header_block());
  }());
  if (const std::string arc = log_field(tx_, "arc"); !arc.empty()) {
    const std::string chain = log_field(tx_, "arc_chain");
    const std::string why = log_field(tx_, "arc_reason");
    out_ << "arc: incoming chain " << arc << (chain.empty() ? "" : " (" + chain + ")")
         << "; set added: " << log_field(tx_, "arc_set") << (why.empty() ? "" : " (" + why + ")")
         << "\n";
  }
  if (dkim == "signed") {
    out_ << "signatures: " << log_field(tx_, "dkim_keys") << "\n";
    for (const auto& f : tx_.prepend_fields) {
      if (block && auth::header_name_equal(f.substr(0, f.find(':')), "DKIM-Signature")) {
        explain_signature(f, *block);
      }
    }
  }
  out_ << "fields added in front of the message:" << (tx_.prepend_fields.empty() ? " none" : "")
       << "\n";
  for (const auto& f : tx_.prepend_fields) out_ << f;
  if (dkim == "signed") {
    out_ << "verdict: relayed, signed\n";
    co_return kExplainSigned;
  }
  const std::string reason = log_field(tx_, "dkim_reason");
  out_ << "verdict: relayed unsigned"
       << (reason.empty() ? std::string(" (no [[dkim.sign]] rules)") : " (" + reason + ")") << "\n";
  co_return kExplainUnsigned;
}

}  // namespace

int cmd_explain(const ExplainArgs& args, std::istream& in, std::ostream& out) {
  const auto ip = net::parse_ip(args.ip);
  if (!ip) {
    std::cerr << "stampd explain: --ip must be an IPv4 or IPv6 address\n";
    return 2;
  }
  std::string message =
      to_crlf(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  asio::io_context io;
  std::shared_ptr<const proxy::Runtime> runtime;
  try {
    auto config = proxy::load_config(args.config_path);
    // As the daemon starts: a key that cannot be loaded fails its rules.
    runtime = proxy::build_runtime(config, proxy::KeyPolicy::Lenient, io.get_executor());
  } catch (const std::exception& e) {
    std::cerr << "stampd explain: " << e.what() << "\n";
    return 2;
  }
  ExplainArgs effective = args;
  if (effective.mail_from.empty()) {
    const auto parts = auth::split_message(message);
    auto block = auth::HeaderBlock::parse(std::string(parts.header));
    if (block) {
      if (auto from = auth::author_address(*block)) effective.mail_from = address_text(*from);
    }
  }
  Explainer explainer(effective, runtime, net::unmap(*ip), out);
  std::string error;
  const auto status = run_to_completion<int>(io, explainer.run(std::move(message)), error);
  if (!status) {
    std::cerr << "stampd explain: " << error << "\n";
    return 2;
  }
  return *status;
}

}  // namespace stampd::cmd
