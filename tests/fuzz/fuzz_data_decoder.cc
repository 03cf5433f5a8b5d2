// Fuzzes the DATA decoder with the anti-smuggling properties as assertions:
// the data ends exactly at the first <CRLF>.<CRLF> (the start of DATA
// counts as a CRLF) whatever the chunking, and the output has no bare CR or
// LF. The first input byte picks the chunk size (and, with its high bit,
// also runs the BINARYMIME decoder, whose output must not depend on the
// chunking either). Found by the fuzzer: a decoder problem (line too long)
// must be the same whatever the chunking. And the decoder, which passes
// unchanged runs of its input on as views, agrees with the line-by-line
// reference decoder it replaced (tests/support/reference_data_decoder.h).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smtp/data_decoder.h"
#include "tests/support/line_endings.h"
#include "tests/support/reference_data_decoder.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// check_binary: BDAT content with BODY=BINARYMIME decodes the same whole and
// in chunks, and all of it is used.
void check_binary(std::string_view input, std::size_t chunk) {
  stampd::smtp::DataDecoder::Options options;
  options.chunked = true;
  options.binary = true;
  stampd::smtp::DataDecoder whole(options);
  std::string whole_out;
  check(whole.feed(input, whole_out) == input.size());
  whole.end(whole_out);
  stampd::smtp::DataDecoder split(options);
  std::string split_out;
  for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
    check(split.feed(input.substr(pos, chunk), split_out) == std::min(chunk, input.size() - pos));
  }
  split.end(split_out);
  check(whole.problem() == split.problem());
  if (whole.problem() == stampd::smtp::DataDecoder::Problem::None) check(whole_out == split_out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 0x80) != 0) check_binary(input, chunk);

  stampd::smtp::DataDecoder whole({});
  std::string whole_out;
  const std::size_t whole_used = whole.feed(input, whole_out);

  stampd::smtp::DataDecoder split({});
  std::string split_out;
  std::size_t split_used = 0;
  for (std::size_t pos = 0; pos < input.size() && !split.done(); pos += chunk) {
    split_used += split.feed(input.substr(pos, chunk), split_out);
  }
  check(whole.done() == split.done());
  check(whole_used == split_used);
  check(whole.problem() == split.problem());
  if (whole.problem() == stampd::smtp::DataDecoder::Problem::None) {
    check(whole_out == split_out);
  } else {
    // After a problem nothing more is appended, and the message is refused
    // whole; where the output stops depends on where the input was split
    // (a line passes the limit inside one chunk or across several), so the
    // two agree only up to the shorter.
    const auto shorter = std::min(whole_out.size(), split_out.size());
    check(whole_out.compare(0, shorter, split_out, 0, shorter) == 0);
  }

  const auto end = ("\r\n" + std::string(input)).find("\r\n.\r\n");
  check(whole.done() == (end != std::string::npos));
  if (whole.done()) check(whole_used == end + 3);
  check(!stampd::test::has_bare_line_ending(whole_out));

  stampd::test::ReferenceDataDecoder reference({});
  std::string reference_out;
  std::size_t reference_used = 0;
  for (std::size_t pos = 0; pos < input.size() && !reference.done(); pos += chunk) {
    reference_used += reference.feed(input.substr(pos, chunk), reference_out);
  }
  check(reference_used == split_used);
  check(reference.done() == split.done());
  check(reference.problem() == split.problem());
  check(reference.size() == split.size());
  if (split.problem() == stampd::smtp::DataDecoder::Problem::None)
    check(reference_out == split_out);
  return 0;
}
