#include "tests/support/mutator.h"

#include <array>

namespace stampd::test {
namespace {

// Bytes and pieces that mean something to SMTP, MIME, DKIM tag lists and SPF
// records; inserting them is how a mutation reaches the interesting paths.
constexpr std::array<std::string_view, 28> kPieces = {
    "\r\n", "\r", "\n", ".",  "\r\n.\r\n", "\n.\n",    " ", "\t", ";",  "=",
    ":",    "<",  ">",  "@",  "%{",        "}",        "%", "/",  "\"", "\\",
    "(",    ")",  ",",  "\0", "\xff",      "\xc3\xa9", "*", "-"};

}  // namespace

std::size_t Mutator::below(std::size_t n) {
  if (n == 0) return 0;
  return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
}

std::string Mutator::mutate(std::string_view seed) {
  std::string s(seed);
  const std::size_t edits = 1 + below(4);
  for (std::size_t e = 0; e < edits; ++e) {
    const std::size_t at = below(s.size() + 1);
    switch (below(6)) {
      case 0:  // flip a byte
        if (!s.empty()) s[below(s.size())] = static_cast<char>(below(256));
        break;
      case 1:  // insert a significant piece
        s.insert(at, kPieces[below(kPieces.size())]);
        break;
      case 2:  // cut the rest
        s.resize(at);
        break;
      case 3:  // delete a span
        s.erase(at, below(8));
        break;
      case 4: {  // repeat a span (long runs, long lines)
        const std::string span = s.substr(at, 1 + below(16));
        for (std::size_t i = below(64); i > 0; --i) s.insert(at, span);
        break;
      }
      default:  // insert a random byte
        s.insert(at, 1, static_cast<char>(below(256)));
        break;
    }
  }
  return s;
}

std::string Mutator::mutate_one_of(const std::vector<std::string>& seeds) {
  return mutate(seeds[below(seeds.size())]);
}

std::string Mutator::from_alphabet(std::string_view alphabet, std::size_t max_length) {
  std::string s(below(max_length + 1), ' ');
  for (auto& c : s) c = alphabet[below(alphabet.size())];
  return s;
}

}  // namespace stampd::test
