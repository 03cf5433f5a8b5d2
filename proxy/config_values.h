// config_values.h: the value syntaxes of stampd.toml that TOML itself does
// not have: sizes ("50MiB") and durations ("5m", "1m30s"). Pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace stampd::proxy {

using Duration = std::chrono::steady_clock::duration;

// parse_size reads "123", "64KiB", "50MiB", "1GiB", "10MB" (SI, powers of 1000)
// or "512B"; nullopt on anything else or on overflow.
std::optional<std::uint64_t> parse_size(std::string_view text);
// parse_duration reads "250ms", "30s", "5m", "2h", "1d" and sums like "1m30s".
std::optional<Duration> parse_duration(std::string_view text);

// format_size prints a size the way parse_size reads it ("50MiB").
std::string format_size(std::uint64_t bytes);
// format_duration prints a duration the way parse_duration reads it ("5m").
std::string format_duration(Duration d);

}  // namespace stampd::proxy
