// dkim_bench: the signing stage's costs, each next to OpenSSL doing the bare
// operation in the same run: body-hash MB/s for simple and relaxed vs raw
// SHA-256 over the same bytes, and signatures/s for RSA-2048 and Ed25519
// through our signer vs EVP_DigestSign directly. A summary line with the
// ratios is printed at the end.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/header_hash.h"
#include "auth/dkim/keygen.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/signer.h"

namespace {

using namespace stampd::auth;

constexpr std::size_t kBodySize = 1024 * 1024;
constexpr std::size_t kChunk = 64 * 1024;  // a typical socket read

// realistic_body is ~1 MiB of mail-like text: 40-78 column lines of words
// with single spaces, and now and then what relaxed must rewrite: double
// spaces, tabs, trailing whitespace, indented lines, empty lines.
const std::string& realistic_body() {
  static const std::string body = [] {
    static const char* words[] = {"the",     "quick", "brown",     "fox",    "jumps",   "over",
                                  "lazy",    "dog",   "message",   "relay",  "header",  "body",
                                  "invoice", "March", "meeting",   "please", "regards", "team",
                                  "update",  "DKIM",  "signature", "and",    "of",      "to"};
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> word(0, sizeof(words) / sizeof(words[0]) - 1);
    std::uniform_int_distribution<int> pct(0, 99);
    std::string out;
    out.reserve(kBodySize + 200);
    while (out.size() < kBodySize) {
      const int kind = pct(rng);
      if (kind < 6) {  // paragraph break
        out += "\r\n";
        continue;
      }
      std::string line;
      if (kind < 12) line += "    ";  // indented (quoted code, signatures)
      const std::size_t width = 40 + static_cast<std::size_t>(pct(rng) % 39);
      while (line.size() < width) {
        if (!line.empty() && line.back() != ' ') {
          const int sep = pct(rng);
          line += sep < 4 ? "  " : sep < 6 ? "\t" : " ";
        }
        line += words[word(rng)];
      }
      if (pct(rng) < 8) line += pct(rng) < 50 ? "  " : " \t";  // trailing whitespace
      out += line + "\r\n";
    }
    return out;
  }();
  return body;
}

void feed_in_chunks(BodyHasher& h, const std::string& body) {
  for (std::size_t pos = 0; pos < body.size(); pos += kChunk)
    h.update(std::string_view(body).substr(pos, kChunk));
}

void BM_RawSha256(benchmark::State& state) {
  const std::string& body = realistic_body();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char out[32];
  unsigned int len = 0;
  for (auto _ : state) {
    EVP_DigestInit_ex(ctx, md, nullptr);
    for (std::size_t pos = 0; pos < body.size(); pos += kChunk) {
      EVP_DigestUpdate(ctx, body.data() + pos, std::min(kChunk, body.size() - pos));
    }
    EVP_DigestFinal_ex(ctx, out, &len);
    benchmark::DoNotOptimize(out);
  }
  EVP_MD_free(md);
  EVP_MD_CTX_free(ctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_RawSha256);

void body_hash_bench(benchmark::State& state, Canonicalization c) {
  const std::string& body = realistic_body();
  for (auto _ : state) {
    BodyHasher h(c);
    feed_in_chunks(h, body);
    auto d = h.finish();
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
void BM_BodyHashSimple(benchmark::State& state) {
  body_hash_bench(state, Canonicalization::Simple);
}
void BM_BodyHashRelaxed(benchmark::State& state) {
  body_hash_bench(state, Canonicalization::Relaxed);
}
BENCHMARK(BM_BodyHashSimple);
BENCHMARK(BM_BodyHashRelaxed);

// A worst case for relaxed, for information: every other byte is WSP.
void BM_BodyHashRelaxedWhitespaceHeavy(benchmark::State& state) {
  static const std::string body = [] {
    std::string b;
    while (b.size() < kBodySize) b += "a \tb  c\t d \r\n \t\r\n";
    return b;
  }();
  for (auto _ : state) {
    BodyHasher h(Canonicalization::Relaxed);
    feed_in_chunks(h, body);
    auto d = h.finish();
    benchmark::DoNotOptimize(d);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_BodyHashRelaxedWhitespaceHeavy);

// ---- signatures ----

const char* kHeader =
    "From: Alice Example <alice@example.com>\r\n"
    "To: Bob Receiver <bob@example.net>\r\n"
    "Subject: Quarterly numbers\r\n"
    "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    "Message-ID: <bench-1@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n";

struct SignFixture {
  HeaderBlock block;
  Sha256Digest body_hash{};
  SigningKey key;
  std::string hash_input;  // what our signer hashes, for the OpenSSL baseline
};

const SignFixture& fixture(KeyAlgorithm alg) {
  static std::map<KeyAlgorithm, SignFixture> fixtures;
  auto it = fixtures.find(alg);
  if (it == fixtures.end()) {
    SignFixture f;
    f.block = *HeaderBlock::parse(kHeader);
    f.body_hash = body_hash(Canonicalization::Relaxed, "Hello.\r\n");
    f.key = SigningKey{"example.com", "bench",
                       std::make_shared<const PrivateKey>(*generate_private_key(alg))};
    SignOptions o;
    o.timestamp = 1772445600;
    const auto names = select_signed_headers(f.block, o.headers);
    f.hash_input = header_hash_input(
        f.block, names, Canonicalization::Relaxed,
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=bench; "
        "t=1772445600; h=from:to:subject:date:message-id:mime-version:content-type:"
        "from:to:subject:date:message-id:mime-version:content-type; "
        "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=");
    it = fixtures.emplace(alg, std::move(f)).first;
  }
  return it->second;
}

void ours(benchmark::State& state, KeyAlgorithm alg) {
  const SignFixture& f = fixture(alg);
  SignOptions o;
  o.timestamp = 1772445600;
  for (auto _ : state) {
    auto field = sign_header_block(f.block, f.body_hash, f.key, o);
    if (!field.ok()) state.SkipWithError(field.error().message().c_str());
    benchmark::DoNotOptimize(field);
  }
  state.SetItemsProcessed(state.iterations());
}

void openssl(benchmark::State& state, KeyAlgorithm alg) {
  const SignFixture& f = fixture(alg);
  EVP_PKEY* pkey = f.key.key->evp();
  const bool rsa = alg != KeyAlgorithm::Ed25519;
  unsigned char sig[1024];
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = sizeof sig;
    int ok = 0;
    if (rsa) {
      ok = EVP_DigestSignInit_ex(ctx, nullptr, "SHA256", nullptr, nullptr, pkey, nullptr) == 1 &&
           EVP_DigestSign(ctx, sig, &len,
                          reinterpret_cast<const unsigned char*>(f.hash_input.data()),
                          f.hash_input.size()) == 1;
    } else {
      // RFC 8463: Ed25519 over the SHA-256 digest of the same input.
      const Sha256Digest d = sha256(f.hash_input);
      ok = EVP_DigestSignInit_ex(ctx, nullptr, nullptr, nullptr, nullptr, pkey, nullptr) == 1 &&
           EVP_DigestSign(ctx, sig, &len, d.data(), d.size()) == 1;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) state.SkipWithError("EVP_DigestSign failed");
    benchmark::DoNotOptimize(sig);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SignRsa2048_Ours(benchmark::State& s) { ours(s, KeyAlgorithm::Rsa2048); }
void BM_SignRsa2048_OpenSSL(benchmark::State& s) { openssl(s, KeyAlgorithm::Rsa2048); }
void BM_SignEd25519_Ours(benchmark::State& s) { ours(s, KeyAlgorithm::Ed25519); }
void BM_SignEd25519_OpenSSL(benchmark::State& s) { openssl(s, KeyAlgorithm::Ed25519); }
BENCHMARK(BM_SignRsa2048_OpenSSL);
BENCHMARK(BM_SignRsa2048_Ours);
BENCHMARK(BM_SignEd25519_OpenSSL);
BENCHMARK(BM_SignEd25519_Ours);

// SummaryReporter prints the console table, remembering each rate, and
// then one line per comparison.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const auto bytes = run.counters.find("bytes_per_second");
      const auto items = run.counters.find("items_per_second");
      if (bytes != run.counters.end()) rate_[run.benchmark_name()] = bytes->second.value;
      if (items != run.counters.end()) rate_[run.benchmark_name()] = items->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void summary() const {
    auto rate = [&](const char* name) {
      const auto it = rate_.find(name);
      return it == rate_.end() ? 0.0 : it->second;
    };
    const double raw = rate("BM_RawSha256");
    const double simple = rate("BM_BodyHashSimple");
    const double relaxed = rate("BM_BodyHashRelaxed");
    const double heavy = rate("BM_BodyHashRelaxedWhitespaceHeavy");
    const double mib = 1024.0 * 1024.0;
    std::printf(
        "\nSUMMARY body hash (1 MiB realistic body, 64 KiB chunks): raw SHA-256 %.0f MiB/s; simple "
        "%.0f MiB/s "
        "= %.2f x raw; relaxed %.0f MiB/s = %.2f x raw (goal >= 0.50); whitespace-heavy relaxed "
        "%.0f MiB/s "
        "= %.2f x raw\n",
        raw / mib, simple / mib, raw > 0 ? simple / raw : 0, relaxed / mib,
        raw > 0 ? relaxed / raw : 0, heavy / mib, raw > 0 ? heavy / raw : 0);
    const double rsa_o = rate("BM_SignRsa2048_Ours");
    const double rsa_s = rate("BM_SignRsa2048_OpenSSL");
    const double ed_o = rate("BM_SignEd25519_Ours");
    const double ed_s = rate("BM_SignEd25519_OpenSSL");
    std::printf(
        "SUMMARY signatures/s: rsa-sha256 2048 ours %.0f vs EVP_DigestSign %.0f = %.2f; "
        "ed25519-sha256 ours "
        "%.0f vs EVP_DigestSign %.0f = %.2f\n",
        rsa_o, rsa_s, rsa_s > 0 ? rsa_o / rsa_s : 0, ed_o, ed_s, ed_s > 0 ? ed_o / ed_s : 0);
  }

 private:
  std::map<std::string, double> rate_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.summary();
  benchmark::Shutdown();
  return 0;
}
