#include "tests/support/dkim_corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "auth/dkim/base64.h"
#include "auth/dkim/sha256.h"

namespace stampd::test {
namespace {

constexpr const char* kSeed = "stampd-dkim-corpus-large-attachment";
constexpr std::size_t kRawAttachmentBytes = 15 * 1024 * 1024;
constexpr const char* kBoundary = "=_stampd_large_boundary";

std::string attachment_bytes() {
  std::string out;
  out.reserve(kRawAttachmentBytes + 32);
  for (std::uint64_t counter = 0; out.size() < kRawAttachmentBytes; ++counter) {
    std::string block(kSeed);
    for (int shift = 56; shift >= 0; shift -= 8)
      block += static_cast<char>((counter >> shift) & 0xff);
    const auto digest = auth::sha256(block);
    out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  }
  out.resize(kRawAttachmentBytes);
  return out;
}

}  // namespace

std::string large_corpus_message() {
  const std::string b = kBoundary;
  std::string msg =
      "From: Large Sender <large@example.com>\r\n"
      "To: Bob Receiver <bob@example.net>\r\n"
      "Subject: A 20 MiB attachment\r\n"
      "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
      "Message-ID: <large-attachment@example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"" +
      b +
      "\"\r\n"
      "\r\n"
      "This is a multi-part message in MIME format.\r\n"
      "\r\n"
      "--" +
      b +
      "\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n"
      "\r\n"
      "The attachment holds 15 MiB of pseudo-random bytes.\r\n"
      "\r\n"
      "--" +
      b +
      "\r\n"
      "Content-Type: application/octet-stream; name=\"random.bin\"\r\n"
      "Content-Disposition: attachment; filename=\"random.bin\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n";
  const std::string encoded = auth::base64_encode(attachment_bytes());
  msg.reserve(msg.size() + encoded.size() / 76 * 78 + 200);
  for (std::size_t i = 0; i < encoded.size(); i += 76) {
    msg.append(encoded, i, 76);
    msg += "\r\n";
  }
  msg += "--" + b + "--\r\n";
  return msg;
}

std::string test_data_path(const std::string& relative_path) {
  return std::string(STAMPD_TESTDATA_DIR) + "/" + relative_path;
}

std::string read_test_file(const std::string& relative_path) {
  const std::string path = test_data_path(relative_path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read test file " + path);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::vector<std::pair<std::string, std::string>> committed_corpus_messages() {
  std::vector<std::pair<std::string, std::string>> out;
  const std::filesystem::path dir = test_data_path("dkim-corpus");
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && entry.path().extension() == ".eml" &&
        name != kLargeMessageName) {
      out.emplace_back(name, read_test_file("dkim-corpus/" + name));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace stampd::test
