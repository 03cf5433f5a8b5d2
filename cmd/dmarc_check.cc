#include "cmd/dmarc_check.h"

#include "auth/dkim/key_record.h"
#include "auth/dmarc/org_domain.h"
#include "auth/dmarc/record.h"

namespace stampd::cmd {

namespace asio = boost::asio;

bool lookup_failed(const net::DnsAnswer& answer) {
  return !answer.ok() && answer.status != net::DnsStatus::NxDomain &&
         answer.status != net::DnsStatus::NoData;
}

CheckLine unanswered_line(const std::string& label, const std::string& what) {
  return {false,
          label + "UNKNOWN: " + what +
              "; a temporary DNS failure, not a missing record: not checked, try again later",
          true};
}

CheckLine unanswered_line(const std::string& label, const std::string& name,
                          const net::DnsAnswer& answer) {
  return unanswered_line(label, "no answer for " + name + " (" + net::to_string(answer.status) +
                                    (answer.detail.empty() ? "" : ": " + answer.detail) + ")");
}

namespace {

// Found is what one _dmarc name holds.
struct Found {
  std::string name;
  net::DnsAnswer answer;
  auth::DmarcSelection selection;
};

asio::awaitable<Found> look_up(net::Resolver& resolver, std::string domain) {
  Found found;
  found.name = "_dmarc." + domain;
  found.answer = co_await resolver.query(found.name, net::RrType::Txt);
  if (found.answer.ok()) found.selection = auth::select_dmarc_record(found.answer.txt);
  co_return found;
}

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

std::string describe(const auth::DmarcRecord& r) {
  std::string out = std::string("p=") + auth::to_string(r.policy);
  if (r.subdomain_policy) out += std::string(", sp=") + auth::to_string(*r.subdomain_policy);
  out += std::string(", adkim ") + auth::to_string(r.dkim_alignment) + ", aspf " +
         auth::to_string(r.spf_alignment) + ", pct " + std::to_string(r.percent);
  out += r.aggregate_uris.empty() ? ", no aggregate reports (rua=)" : ", reports to ";
  for (std::size_t i = 0; i < r.aggregate_uris.size(); ++i) {
    out += (i ? ", " : "") + r.aggregate_uris[i];
  }
  return out;
}

// RecordFinding is the record line and, when one record parsed, the record.
struct RecordFinding {
  CheckLine line;
  std::optional<auth::DmarcRecord> record;
};

// judge_selection reads what a receiver finds at found.name.
RecordFinding judge_selection(const Found& found, const std::string& label) {
  RecordFinding out;
  const auto& sel = found.selection;
  std::string ignored;
  for (const auto& other : sel.others) ignored += "\n    ignored by receivers: " + in_quotes(other);
  if (sel.kind == auth::DmarcSelection::Kind::Several) {
    out.line.text = label + "FAIL: " + std::to_string(sel.candidates) + " DMARC records at " +
                    found.name +
                    ": receivers apply no policy when there are several (RFC 7489 §6.6.3); "
                    "keep exactly one" +
                    ignored;
    return out;
  }
  auto record = auth::parse_dmarc_record(sel.record);
  if (!record) {
    out.line.text = label + "FAIL: the record is broken: " + record.error().detail + ": " +
                    in_quotes(sel.record);
    return out;
  }
  out.line.ok = true;
  out.line.text = label + "ok: " + describe(*record);
  for (const auto& note : record->notes) out.line.text += "\n    note: " + note;
  out.line.text += ignored;
  out.record = std::move(record).value();
  return out;
}

CheckLine dkim_alignment(const DmarcInputs& in, const auth::DmarcRecord& policy, bool published) {
  const std::string label = "DMARC " + in.from_domain + " DKIM alignment: ";
  // Without a record no receiver checks alignment yet: say it, do not fail.
  const std::string bad = published ? "FAIL: " : "warn: ";
  if (in.signers.empty()) {
    return {!published, label + bad + "no signing rule covers mail from " + in.from_domain};
  }
  std::string misaligned;
  std::string aligned;
  for (const auto& s : in.signers) {
    const std::string what = s.key_name + " d=" + s.domain;
    if (auth::aligned(s.domain, in.from_domain, policy.dkim_alignment)) {
      aligned += (aligned.empty() ? "" : ", ") + what;
    } else {
      misaligned += (misaligned.empty() ? "" : ", ") + what;
    }
  }
  const std::string mode = std::string(" (adkim ") + auth::to_string(policy.dkim_alignment) + ")";
  if (!aligned.empty()) {
    std::string text = label + "ok: " + aligned + " aligns with From " + in.from_domain + mode;
    if (!misaligned.empty()) text += "; not aligned: " + misaligned;
    return {true, text};
  }
  return {!published, label + bad + misaligned + " does not align with From " + in.from_domain +
                          mode + ": sign mail from " + in.from_domain + " with a key whose d= is " +
                          (policy.dkim_alignment == auth::AlignMode::Strict
                               ? in.from_domain
                               : "under " + auth::organizational_domain(in.from_domain))};
}

CheckLine spf_alignment(const DmarcInputs& in, const auth::DmarcRecord& policy) {
  const std::string label = "DMARC " + in.from_domain + " SPF alignment: ";
  if (in.spf_unanswered)
    return unanswered_line(label, "SPF could not be evaluated (see the SPF line)");
  if (!in.spf_passes) {
    return {true,
            label + "skipped: set [spf] egress_ips to the addresses your upstream sends from"};
  }
  // stampd relays the client's envelope sender unchanged, so SPF aligns
  // only if that sender is in the From domain (aspf=r: in its organization).
  const std::string envelope = policy.spf_alignment == auth::AlignMode::Strict
                                   ? "when MAIL FROM is in " + in.from_domain + " (aspf strict)"
                                   : "when MAIL FROM is under " +
                                         auth::organizational_domain(in.from_domain) +
                                         " (aspf relaxed)";
  if (*in.spf_passes) {
    return {true, label + "ok: every egress address passes SPF for " + in.from_domain +
                      ", so SPF aligns " + envelope};
  }
  // DMARC passes on DKIM alone; SPF failing is a warning, the SPF line
  // above is the failure to fix.
  return {true, label + "warn: not every egress address passes SPF for " + in.from_domain +
                    " (see the SPF line), so DMARC rests on DKIM alone"};
}

// report_domain returns the domain of a mailto: report URI ("mailto:a@b!10m").
std::string report_domain(const std::string& uri) {
  std::string address = uri.substr(0, uri.rfind('!'));
  return address.substr(address.rfind('@') + 1);
}

// check_report_destinations checks that every report address outside the
// policy domain's organization has agreed to take its reports: receivers
// send there only if <policy domain>._report._dmarc.<its domain> holds a
// v=DMARC1 record (RFC 7489 §7.1); otherwise the reports are silently lost.
asio::awaitable<std::vector<CheckLine>> check_report_destinations(net::Resolver& resolver,
                                                                  auth::DmarcRecord record,
                                                                  std::string policy_domain) {
  std::vector<CheckLine> out;
  std::vector<std::string> uris = record.aggregate_uris;
  uris.insert(uris.end(), record.failure_uris.begin(), record.failure_uris.end());
  const std::string org = auth::organizational_domain(policy_domain);
  for (const auto& uri : uris) {
    const std::string target = auth::organizational_domain(report_domain(uri));
    if (target == org) continue;
    const std::string name = policy_domain + "._report._dmarc." + report_domain(uri);
    auto answer = co_await resolver.query(name, net::RrType::Txt);
    bool agreed = false;
    for (const auto& txt : answer.txt) agreed = agreed || auth::is_dmarc_candidate(txt);
    std::string label = "DMARC " + policy_domain;
    label += " reports to ";
    label += uri;
    label += ": ";
    if (!agreed && lookup_failed(answer)) {
      out.push_back(unanswered_line(label, name, answer));
      continue;
    }
    CheckLine line{true, "DMARC " + policy_domain};
    line.text += " reports to ";
    line.text += uri;
    if (agreed) {
      line.text += ": ok: ";
      line.text += name;
      line.text += " accepts them";
    } else {
      line.text += ": warn: receivers will not send them: ";
      line.text += report_domain(uri);
      line.text += " has not published ";
      line.text += name;
      line.text += " IN TXT \"v=DMARC1\" (RFC 7489 §7.1)";
    }
    out.push_back(std::move(line));
  }
  co_return out;
}

asio::awaitable<CheckLine> check_adsp(net::Resolver& resolver, std::string domain) {
  const std::string name = "_adsp._domainkey." + domain;
  auto answer = co_await resolver.query(name, net::RrType::Txt);
  const std::string label = "ADSP " + domain + " (" + name + "): ";
  if (lookup_failed(answer)) co_return unanswered_line(label, name, answer);
  CheckLine line;
  line.ok = true;
  if (!answer.ok() || answer.txt.empty()) co_return line;  // the usual case: nothing there
  line.text = label + "warn: " + in_quotes(answer.txt.front()) +
              " is an ADSP record; ADSP (RFC 5617) was moved to Historic in 2013 and receivers "
              "ignore it: remove it (DMARC, at _dmarc." +
              domain + ", replaces it)";
  co_return line;
}

}  // namespace

asio::awaitable<std::vector<CheckLine>> check_dmarc(net::Resolver& resolver, DmarcInputs in) {
  std::vector<CheckLine> lines;
  const std::string& domain = in.from_domain;
  std::string label = "DMARC " + domain + " (_dmarc." + domain + "): ";
  auto found = co_await look_up(resolver, domain);
  std::optional<auth::DmarcRecord> record;
  std::string policy_domain = domain;  // where the record applying to domain was found
  if (lookup_failed(found.answer)) {
    lines.push_back(unanswered_line(label, found.name, found.answer));
    co_return lines;
  }
  if (found.selection.kind == auth::DmarcSelection::Kind::None) {
    // §6.6.3 step 4: receivers ask the organizational domain next.
    std::string prefix;
    for (const auto& other : found.selection.others) {
      prefix += "TXT " + in_quotes(other) + " at " + found.name +
                " does not start with v=DMARC1, so receivers discard it; ";
    }
    const std::string org = auth::organizational_domain(domain);
    if (org != domain) {
      auto inherited = co_await look_up(resolver, org);
      if (lookup_failed(inherited.answer)) {
        // Not "no record": the one that applies may be there.
        lines.push_back(unanswered_line(label, inherited.name, inherited.answer));
        co_return lines;
      }
      if (inherited.selection.kind != auth::DmarcSelection::Kind::None) {
        auto finding = judge_selection(inherited, label + prefix + "the organizational domain's " +
                                                      inherited.name + " applies: ");
        lines.push_back(finding.line);
        record = finding.record;
        policy_domain = org;
        if (record && record->subdomain_policy) record->policy = *record->subdomain_policy;
      }
    }
    if (lines.empty()) {
      const bool broken = !found.selection.others.empty();
      lines.push_back({!broken, label + (broken ? "FAIL: " + prefix : "warn: ") +
                                    "no DMARC record; a first one, for reports only:\n    " +
                                    found.name + ". IN TXT " +
                                    in_quotes(auth::suggested_dmarc_record(domain))});
    }
  } else {
    auto finding = judge_selection(found, label);
    lines.push_back(finding.line);
    record = finding.record;
  }
  const bool published = record.has_value();
  const auth::DmarcRecord policy = record.value_or(auth::DmarcRecord{});
  if (record) {
    auto reports = co_await check_report_destinations(resolver, *record, policy_domain);
    for (auto& line : reports) lines.push_back(std::move(line));
  }
  lines.push_back(dkim_alignment(in, policy, published));
  lines.push_back(spf_alignment(in, policy));
  auto adsp = co_await check_adsp(resolver, domain);
  if (!adsp.text.empty()) lines.push_back(std::move(adsp));
  co_return lines;
}

}  // namespace stampd::cmd
