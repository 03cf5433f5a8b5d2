#include "proxy/config_values.h"

#include <gtest/gtest.h>

namespace stampd::proxy {
namespace {

using namespace std::chrono;

TEST(ConfigValues, Sizes) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("512B"), 512u);
  EXPECT_EQ(parse_size("64KiB"), 64u * 1024);
  EXPECT_EQ(parse_size("50MiB"), 50u << 20);
  EXPECT_EQ(parse_size("2GiB"), 2ULL << 30);
  EXPECT_EQ(parse_size("10MB"), 10'000'000u);
  EXPECT_EQ(parse_size("1 MiB"), 1u << 20);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("MiB"));
  EXPECT_FALSE(parse_size("5 bytes"));
  EXPECT_FALSE(parse_size("-5"));
  EXPECT_FALSE(parse_size("99999999999999GiB"));
}

TEST(ConfigValues, Durations) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("30s"), seconds(30));
  EXPECT_EQ(parse_duration("5m"), minutes(5));
  EXPECT_EQ(parse_duration("2h"), hours(2));
  EXPECT_EQ(parse_duration("1d"), hours(24));
  // Nothing overflows the clock (found by fuzz_config): up to a century.
  EXPECT_EQ(parse_duration("36500d"), hours(24 * 36500));
  EXPECT_EQ(parse_duration("2222210d"), std::nullopt);
  EXPECT_EQ(parse_duration("1000000000d"), std::nullopt);
  EXPECT_EQ(parse_duration("36500d36500d"), std::nullopt);
  EXPECT_EQ(parse_duration("1000000000s1000000000s1000000000s1000000000s"), std::nullopt);
  EXPECT_EQ(parse_duration("1m30s"), seconds(90));
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("5 m"));
  EXPECT_FALSE(parse_duration("m5"));
  EXPECT_FALSE(parse_duration("5y"));
}

TEST(ConfigValues, FormatRoundTrips) {
  for (std::uint64_t v : {0ULL, 1ULL, 1000ULL, 1024ULL, 50ULL << 20, 3ULL << 30}) {
    EXPECT_EQ(parse_size(format_size(v)), v);
  }
  for (auto d : {Duration(milliseconds(250)), Duration(seconds(30)), Duration(minutes(5)),
                 Duration(hours(3)), Duration(seconds(90))}) {
    EXPECT_EQ(parse_duration(format_duration(d)), d);
  }
}

}  // namespace
}  // namespace stampd::proxy
