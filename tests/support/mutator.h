// mutator.h: deterministic random inputs for robustness tests of the parsers
// that read bytes a client or a DNS server controls: mutations of valid
// seeds (byte flips, inserted protocol-significant bytes, cuts, repeats)
// and strings over a small alphabet that hits the edge cases often.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace stampd::test {

class Mutator {
 public:
  explicit Mutator(std::uint32_t seed) : rng_(seed) {}

  // mutate returns seed changed by one to four random edits.
  std::string mutate(std::string_view seed);
  // mutate_one_of mutates a seed picked at random.
  std::string mutate_one_of(const std::vector<std::string>& seeds);
  // from_alphabet returns up to max_length bytes drawn from alphabet.
  std::string from_alphabet(std::string_view alphabet, std::size_t max_length);
  // below returns a number in [0, n).
  std::size_t below(std::size_t n);

 private:
  std::mt19937 rng_;
};

}  // namespace stampd::test
