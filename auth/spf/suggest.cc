#include "auth/spf/suggest.h"

#include <algorithm>

#include "auth/dns_name.h"
#include "auth/spf/record.h"

namespace stampd::auth {
namespace {

std::vector<std::string> split_terms(std::string_view record) {
  std::vector<std::string> terms;
  std::size_t i = 0;
  while (i < record.size()) {
    const auto start = record.find_first_not_of(' ', i);
    if (start == std::string_view::npos) break;
    const auto end = std::min(record.find(' ', start), record.size());
    terms.emplace_back(record.substr(start, end - start));
    i = end;
  }
  return terms;
}

bool is_plain_ip_term(const std::string& term) {
  const std::string_view t = term.front() == '+' ? std::string_view(term).substr(1) : term;
  return t.rfind("ip4:", 0) == 0 || t.rfind("ip6:", 0) == 0 || t.rfind("IP4:", 0) == 0 ||
         t.rfind("IP6:", 0) == 0;
}

std::string join(const std::vector<std::string>& terms) {
  std::string out;
  for (const auto& t : terms) out += (out.empty() ? "" : " ") + t;
  return out;
}

}  // namespace

std::string spf_ip_term(const boost::asio::ip::address& ip) {
  const auto a = normalize_client_ip(ip);
  return (a.is_v4() ? "ip4:" : "ip6:") + a.to_string();
}

SpfSuggestion suggest_spf_record(std::optional<std::string_view> current,
                                 const std::vector<boost::asio::ip::address>& missing) {
  SpfSuggestion s;
  std::vector<std::string> wanted;
  for (const auto& ip : missing) {
    std::string term = spf_ip_term(ip);
    if (std::find(wanted.begin(), wanted.end(), term) == wanted.end())
      wanted.push_back(std::move(term));
  }
  std::optional<std::string> problem;
  if (!current) {
    problem = "no SPF record is published";
  } else if (auto parsed = parse_spf_record(*current); !parsed.ok()) {
    problem = "the published record is invalid (" + parsed.error().detail + "); replace it";
  }
  if (problem) {
    s.added_terms = wanted;
    std::vector<std::string> terms = {"v=spf1"};
    terms.insert(terms.end(), wanted.begin(), wanted.end());
    terms.push_back("~all");
    s.record = join(terms);
    s.note = *problem +
             ": publish this record (add the other servers that send mail for the "
             "domain, then consider -all)";
    return s;
  }

  std::vector<std::string> terms = split_terms(*current);
  // terms[0] is "v=spf1"; the leading run of ip4:/ip6: terms follows it.
  std::size_t at = 1;
  while (at < terms.size() && is_plain_ip_term(terms[at])) ++at;
  std::vector<std::string> add;
  for (const auto& w : wanted) {
    const bool present =
        std::any_of(terms.begin() + 1, terms.begin() + static_cast<std::ptrdiff_t>(at),
                    [&](const std::string& t) {
                      return equals_ignore_case(t.front() == '+' ? t.substr(1) : t, w);
                    });
    if (!present) add.push_back(w);
  }
  terms.insert(terms.begin() + static_cast<std::ptrdiff_t>(at), add.begin(), add.end());
  s.added_terms = add;
  s.record = join(terms);
  s.note = add.empty() ? "the record already lists these addresses first"
                       : "add " + join(add) + " to the published record";
  return s;
}

SpfSuggestion suggest_spf_record(const SpfEgressReport& report) {
  std::optional<std::string_view> current;
  for (const auto& e : report.entries) {
    if (!e.result.record.empty()) {
      current = e.result.record;
      break;
    }
  }
  return suggest_spf_record(current, report.unauthorized());
}

std::string txt_zone_data(std::string_view record) {
  std::string out;
  do {
    const std::string_view chunk = record.substr(0, 255);
    record.remove_prefix(chunk.size());
    if (!out.empty()) out += ' ';
    out += '"';
    for (char c : chunk) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  } while (!record.empty());
  return out;
}

}  // namespace stampd::auth
