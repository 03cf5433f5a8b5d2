// Incremental body hashing: every split point of small tricky bodies, byte by
// byte feeding, random chunk sizes over the whole corpus (20 MiB message
// included), l= limits, shared hashers, and the streaming header splitter.
#include "auth/dkim/body_hasher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "auth/dkim/base64.h"
#include "auth/dkim/body_canonicalizer.h"
#include "auth/dkim/message_splitter.h"
#include "tests/support/dkim_corpus.h"

namespace stampd::auth {
namespace {

constexpr Canonicalization kBoth[] = {Canonicalization::Simple, Canonicalization::Relaxed};

// Bodies that put CR, LF, WSP runs and trailing empty lines at every
// position a chunk boundary could cut.
const std::vector<std::string>& tricky_bodies() {
  static const std::vector<std::string> bodies = {
      "",
      "\r\n",
      "\r\n\r\n",
      "a",
      "a\r",
      "a\r\n",
      " \t ",
      "a \t b\r\n",
      "a  \r\n  \r\n\t\r\n",
      "\r\n \r\na\r\n\r\n",
      "x\ry\r\r\n\r\n",
      "line one   \r\n\tline two\t\r\n\r\n\r\n",
      ".\r\n..\r\n. \r\n",
      "a\n b\r \r\n",
      "  lead\r\n\r\n  \r\nmid  dle  \t\r\n\r\n \r\n",
      "end without crlf  ",
      "end with cr\r",
      "ab      cd\t\t\t\tef                         gh\r\n",  // runs longer than one SIMD block
      "a \rb\r\n",                                            // WSP before a bare CR
      "ab \t\r\rc  \r\n \r\r\n",
      "text then spaces   \r",
  };
  return bodies;
}

std::string b64(const Sha256Digest& d) {
  return base64_encode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

Sha256Digest hash_in_chunks(Canonicalization c, std::string_view body,
                            const std::vector<std::size_t>& cuts) {
  BodyHasher h(c);
  std::size_t prev = 0;
  for (const std::size_t cut : cuts) {
    h.update(body.substr(prev, cut - prev));
    prev = cut;
  }
  h.update(body.substr(prev));
  return h.finish();
}

TEST(DkimBodyHasher, EverySplitPointOfSmallBodies) {
  for (const auto c : kBoth) {
    for (const std::string& body : tricky_bodies()) {
      const Sha256Digest whole = body_hash(c, body);
      for (std::size_t i = 0; i <= body.size(); ++i) {
        EXPECT_EQ(hash_in_chunks(c, body, {i}), whole)
            << to_string(c) << " split at " << i << " of \"" << body << "\"";
        for (std::size_t j = i; j <= body.size(); ++j) {
          ASSERT_EQ(hash_in_chunks(c, body, {i, j}), whole)
              << to_string(c) << " splits at " << i << "," << j << " of \"" << body << "\"";
        }
      }
    }
  }
}

// reference_canonical is the RFC text applied to whole lines, written
// independently of the incremental code (no shared helpers).
std::string reference_canonical(Canonicalization c, const std::string& body) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto eol = body.find("\r\n", pos);
    if (eol == std::string::npos) {
      lines.push_back(body.substr(pos));
      break;
    }
    lines.push_back(body.substr(pos, eol - pos));
    pos = eol + 2;
  }
  if (c == Canonicalization::Relaxed) {
    for (auto& l : lines) {
      std::string out;
      bool wsp = false;
      for (const char ch : l) {
        if (ch == ' ' || ch == '\t') {
          wsp = true;
          continue;
        }
        if (wsp) out += ' ';
        wsp = false;
        out += ch;
      }
      l = out;  // a WSP run at the end is dropped
    }
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (const auto& l : lines) out += l + "\r\n";
  if (out.empty() && c == Canonicalization::Simple) out = "\r\n";
  return out;
}

TEST(DkimBodyHasher, RandomBodiesAndSplitsAgreeWithReference) {
  std::mt19937 rng(6376);
  // Control bytes other than WSP/CR/LF are plain content that the vector
  // scans stop at anyway; lengths reach past one AVX2 block.
  const char alphabet[] = {'a',  ' ',  '\t', '\r', '\n',   'b',  ' ',
                           '\r', '\n', 'c',  'd',  '\x0c', '\0', '.'};
  std::uniform_int_distribution<int> pick(0, sizeof(alphabet) - 1);
  std::uniform_int_distribution<int> length(0, 120);
  for (int round = 0; round < 20000; ++round) {
    std::string body;
    const int n = length(rng);
    for (int i = 0; i < n; ++i) body += alphabet[pick(rng)];
    for (const auto c : kBoth) {
      const std::string want = reference_canonical(c, body);
      ASSERT_EQ(canonicalize_body(c, body), want) << to_string(c) << " whole \"" << body << "\"";
      std::vector<std::size_t> cuts;
      std::uniform_int_distribution<std::size_t> cut(0, body.size());
      for (int k = 0; k < 4; ++k) cuts.push_back(cut(rng));
      std::sort(cuts.begin(), cuts.end());
      ASSERT_EQ(hash_in_chunks(c, body, cuts), sha256(want))
          << to_string(c) << " split \"" << body << "\"";
    }
  }
}

TEST(DkimBodyHasher, ByteByByteAndEmptyChunks) {
  for (const auto c : kBoth) {
    for (const std::string& body : tricky_bodies()) {
      BodyHasher h(c);
      for (const char ch : body) {
        h.update("");
        h.update(std::string_view(&ch, 1));
      }
      EXPECT_EQ(h.finish(), body_hash(c, body)) << to_string(c) << " \"" << body << "\"";
    }
  }
}

TEST(DkimBodyHasher, RandomChunksOverTheCorpus) {
  auto messages = test::committed_corpus_messages();
  ASSERT_GE(messages.size(), 40u);
  messages.emplace_back(test::kLargeMessageName, test::large_corpus_message());
  std::mt19937_64 rng(20260302);
  for (const auto& [name, message] : messages) {
    const std::string_view body = split_message(message).body;
    for (const auto c : kBoth) {
      const std::string whole = b64(body_hash(c, body));
      // Three random splittings per message: tiny chunks, medium, large.
      for (const std::size_t max_chunk : {std::size_t{7}, std::size_t{700}, std::size_t{70000}}) {
        std::uniform_int_distribution<std::size_t> size(1, max_chunk);
        BodyHasher h(c);
        for (std::size_t pos = 0; pos < body.size();) {
          const std::size_t n = std::min(size(rng), body.size() - pos);
          h.update(body.substr(pos, n));
          pos += n;
        }
        EXPECT_EQ(b64(h.finish()), whole)
            << name << " " << to_string(c) << " chunks up to " << max_chunk;
      }
    }
  }
}

TEST(DkimBodyHasher, LargeMessageMatchesThePythonGenerator) {
  const std::string message = test::large_corpus_message();
  EXPECT_GT(message.size(), 20u * 1024 * 1024);
  const Sha256Digest d = sha256(message);
  static const char* hex = "0123456789abcdef";
  std::string h;
  for (const unsigned char b : d) {
    h += hex[b >> 4];
    h += hex[b & 15];
  }
  EXPECT_EQ(h, test::kLargeMessageSha256);
}

TEST(DkimBodyHasher, LengthLimitHashesAPrefixOfTheCanonicalBody) {
  const std::string body = "Hello   world\r\nsecond line\r\n\r\n";
  const std::string canon = canonicalize_body(Canonicalization::Relaxed, body);
  ASSERT_EQ(canon, "Hello world\r\nsecond line\r\n");
  for (std::size_t l = 0; l <= canon.size(); ++l) {
    BodyHasher h(Canonicalization::Relaxed, l);
    for (const char ch : body) h.update(std::string_view(&ch, 1));
    EXPECT_EQ(h.finish(), sha256(canon.substr(0, l))) << "l=" << l;
    EXPECT_EQ(h.canonical_length(), canon.size());
  }
}

TEST(DkimBodyHasher, HashSetSharesOnePassPerCanonicalization) {
  const std::string body = "a  b\r\n\r\n";
  BodyHashSet set;
  EXPECT_TRUE(set.empty());
  set.add(Canonicalization::Relaxed);
  set.add(Canonicalization::Relaxed);  // a second signature with the same c= shares it
  set.add(Canonicalization::Simple);
  set.update("a  ");
  set.update("b\r\n\r\n");
  EXPECT_FALSE(set.digest(Canonicalization::Simple).has_value());  // not finished yet
  set.finish();
  EXPECT_EQ(*set.digest(Canonicalization::Relaxed), body_hash(Canonicalization::Relaxed, body));
  EXPECT_EQ(*set.digest(Canonicalization::Simple), body_hash(Canonicalization::Simple, body));

  BodyHashSet only_relaxed;
  only_relaxed.add(Canonicalization::Relaxed);
  only_relaxed.finish();
  EXPECT_FALSE(only_relaxed.digest(Canonicalization::Simple).has_value());
}

TEST(DkimMessageSplitter, WholeMessages) {
  auto s = split_message("A: 1\r\nB: 2\r\n\r\nbody\r\n");
  EXPECT_EQ(s.header, "A: 1\r\nB: 2\r\n");
  EXPECT_EQ(s.body, "body\r\n");
  s = split_message("A: 1\r\n");
  EXPECT_EQ(s.header, "A: 1\r\n");
  EXPECT_EQ(s.body, "");
  s = split_message("\r\nbody");
  EXPECT_EQ(s.header, "");
  EXPECT_EQ(s.body, "body");
  s = split_message("A: 1\r\n\r\n");
  EXPECT_EQ(s.body, "");
}

TEST(DkimMessageSplitter, StreamingAtEverySplitPoint) {
  const std::vector<std::string> messages = {"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n",
                                             "\r\nno header\r\n", "A: 1\r\n\r\n", "A: 1\r\n"};
  for (const std::string& m : messages) {
    const SplitMessage want = split_message(m);
    for (std::size_t i = 0; i <= m.size(); ++i) {
      for (std::size_t j = i; j <= m.size(); ++j) {
        HeaderSplitter splitter;
        std::string body;
        for (const auto part :
             {std::string_view(m).substr(0, i), std::string_view(m).substr(i, j - i),
              std::string_view(m).substr(j)}) {
          auto out = splitter.feed(part);
          ASSERT_TRUE(out.ok());
          body.append(*out);
        }
        EXPECT_EQ(splitter.header(), want.header) << i << "," << j;
        EXPECT_EQ(body, want.body) << i << "," << j;
        EXPECT_EQ(splitter.header_complete(),
                  m.find("\r\n\r\n") != std::string::npos || m.rfind("\r\n", 0) == 0);
      }
    }
  }
}

TEST(DkimMessageSplitter, HeaderLimit) {
  HeaderSplitter splitter(64);
  auto r = splitter.feed(std::string(100, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, net::make_error_code(net::Errc::LimitExceeded));

  HeaderSplitter big_chunk(64);  // a huge chunk with the end of the header early is fine
  auto ok = big_chunk.feed("A: 1\r\n\r\n" + std::string(10000, 'b'));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 10000u);
}

TEST(DkimMessageSplitter, LimitIsTheHeaderSizeWhereverTheStreamIsCut) {
  const std::string header = "Subject: " + std::string(50, 'x') + "\r\n";
  const std::string m = header + "\r\nbody\r\n";
  for (const std::size_t limit : {header.size(), header.size() - 1}) {
    for (std::size_t i = 0; i <= m.size(); ++i) {
      HeaderSplitter splitter(limit);
      auto first = splitter.feed(std::string_view(m).substr(0, i));
      const bool ok =
          first.ok() && splitter.feed(std::string_view(m).substr(i)).ok() && splitter.finish().ok();
      EXPECT_EQ(ok, limit == header.size()) << limit << "," << i;
      if (ok) {
        EXPECT_EQ(splitter.header(), header);
      }
    }
  }
  // Without a blank line the whole message is header, and must fit too.
  HeaderSplitter fits(header.size());
  ASSERT_TRUE(fits.feed(header).ok());
  EXPECT_FALSE(fits.header_complete());
  ASSERT_TRUE(fits.finish().ok());
  EXPECT_TRUE(fits.header_complete());
  EXPECT_EQ(fits.header(), header);
  HeaderSplitter too_big(header.size() - 1);
  ASSERT_TRUE(too_big.feed(header).ok());  // one more byte could be the blank line's CR
  EXPECT_FALSE(too_big.finish().ok());
  EXPECT_FALSE(too_big.header_complete());
  // Fed on after the error, it holds no more than the limit and two bytes.
  HeaderSplitter fed_on(64);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(fed_on.feed(std::string(1000, 'x')).ok());
  EXPECT_LE(fed_on.header().size(), 66u);
}

}  // namespace
}  // namespace stampd::auth
