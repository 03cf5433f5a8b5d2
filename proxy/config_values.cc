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
  // Counted in milliseconds, each part and the sum bounded, so that no
  // spelling ("2222210d", "1000000000d1000000000d") overflows the clock's
  // nanoseconds (found by fuzz_config).
  constexpr std::int64_t kMaxMs = 100LL * 366 * 24 * 3600 * 1000;  // a century
  if (text.empty()) return std::nullopt;
  std::int64_t total_ms = 0;
  while (!text.empty()) {
    auto value = leading_number(text);
    if (!value || *value > 1'000'000'000) return std::nullopt;
    std::int64_t unit_ms = 0;
    if (text.starts_with("ms")) {
      unit_ms = 1;
      text.remove_prefix(2);
    } else if (!text.empty() && text.front() == 's') {
      unit_ms = 1000;
    } else if (!text.empty() && text.front() == 'm') {
      unit_ms = 60 * 1000;
    } else if (!text.empty() && text.front() == 'h') {
      unit_ms = 3600 * 1000;
    } else if (!text.empty() && text.front() == 'd') {
      unit_ms = 24 * 3600 * 1000;
    } else {
      return std::nullopt;
    }
    if (unit_ms != 1) text.remove_prefix(1);
    total_ms += static_cast<std::int64_t>(*value) * unit_ms;  // at most 8.64e16
    if (total_ms > kMaxMs) return std::nullopt;
  }
  return std::chrono::duration_cast<Duration>(std::chrono::milliseconds(total_ms));
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
