#include "proxy/config_values.h"

#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace stampd::proxy {
namespace {

std::optional<std::uint64_t> leading_number(std::string_view& text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  text.remove_prefix(static_cast<std::size_t>(end - text.data()));
  return value;
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 9> kUnits{{
      {"", 1},
      {"B", 1},
      {"KiB", 1ULL << 10},
      {"MiB", 1ULL << 20},
      {"GiB", 1ULL << 30},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000ULL * 1000 * 1000},
      {"kB", 1000},
  }};
  auto value = leading_number(text);
  if (!value) return std::nullopt;
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  for (const auto& [unit, factor] : kUnits) {
    if (text == unit) {
      if (*value > std::numeric_limits<std::uint64_t>::max() / factor) return std::nullopt;
      return *value * factor;
    }
  }
  return std::nullopt;
}

std::optional<Duration> parse_duration(std::string_view text) {
  using namespace std::chrono;
  if (text.empty()) return std::nullopt;
  Duration total{};
  while (!text.empty()) {
    auto value = leading_number(text);
    if (!value || *value > 1'000'000'000) return std::nullopt;
    const auto v = static_cast<std::int64_t>(*value);
    if (text.starts_with("ms")) {
      total += milliseconds(v);
      text.remove_prefix(2);
    } else if (!text.empty() && text.front() == 's') {
      total += seconds(v);
      text.remove_prefix(1);
    } else if (!text.empty() && text.front() == 'm') {
      total += minutes(v);
      text.remove_prefix(1);
    } else if (!text.empty() && text.front() == 'h') {
      total += hours(v);
      text.remove_prefix(1);
    } else if (!text.empty() && text.front() == 'd') {
      total += hours(24 * v);
      text.remove_prefix(1);
    } else {
      return std::nullopt;
    }
  }
  return total;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (1ULL << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes != 0 && bytes % (1ULL << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes != 0 && bytes % (1ULL << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

std::string format_duration(Duration d) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(d).count();
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  const auto s = ms / 1000;
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

}  // namespace stampd::proxy
