// SPF evaluations per second against a local unbound (started here, holding
// a realistic record: includes, a, mx, ip4 ranges) through UnboundResolver
// with libunbound's cache, next to the raw query rate of the same server
// measured in the same run (plain UDP, and cached UnboundResolver queries).
#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "auth/spf/evaluator.h"
#include "net/unbound_resolver.h"
#include "tests/support/dns_probe.h"
#include "tests/support/unbound_server.h"

namespace {

namespace asio = boost::asio;
using stampd::net::RrType;

// The published SPF of bench.example: an include chain, a, mx, ip4 ranges.
// The client address matches the last range, so every term is evaluated.
const std::vector<std::string> kZone = {
    "bench.example. TXT \"v=spf1 include:_spf.bench.example a mx ip4:198.51.100.0/25 "
    "ip4:203.0.113.128/26 ~all\"",
    "bench.example. TXT \"google-site-verification=0123456789abcdef\"",
    "_spf.bench.example. TXT \"v=spf1 ip4:192.0.2.0/26 ip6:2001:db8:100::/48 "
    "include:_spf2.bench.example -all\"",
    "_spf2.bench.example. TXT \"v=spf1 ip4:198.18.0.0/24 ip4:198.18.5.0/24 ?all\"",
    "bench.example. A 198.18.10.1",
    "bench.example. MX 10 mx1.bench.example.",
    "bench.example. MX 20 mx2.bench.example.",
    "mx1.bench.example. A 198.18.20.1",
    "mx2.bench.example. A 198.18.20.2",
};
const char* kClient = "203.0.113.130";

// What one evaluation asks, in order; the raw benchmarks ask the same.
const std::vector<std::pair<std::string, RrType>> kQueries = {
    {"bench.example", RrType::Txt},       {"_spf.bench.example", RrType::Txt},
    {"_spf2.bench.example", RrType::Txt}, {"bench.example", RrType::A},
    {"bench.example", RrType::Mx},        {"mx1.bench.example", RrType::A},
    {"mx2.bench.example", RrType::A},
};

stampd::test::UnboundServer* g_server = nullptr;
asio::io_context* g_ctx = nullptr;
stampd::net::UnboundResolver* g_resolver = nullptr;
constexpr int kBatch = 512;  // operations per benchmark iteration

asio::awaitable<void> query_worker(int count, int offset) {
  for (int i = 0; i < count; ++i) {
    const auto& [name, type] = kQueries[static_cast<std::size_t>(offset + i) % kQueries.size()];
    const auto a = co_await g_resolver->query(name, type);
    if (!a.ok()) throw std::runtime_error("query failed: " + name);
  }
}

asio::awaitable<void> spf_worker(int count) {
  const auto ip = asio::ip::make_address(kClient);
  for (int i = 0; i < count; ++i) {
    const auto r = co_await stampd::auth::check_mail_from(*g_resolver, ip, "bounce@bench.example",
                                                          "out.bench.example");
    if (r.verdict != stampd::auth::SpfVerdict::Pass)
      throw std::runtime_error(stampd::auth::summarize(r));
  }
}

void BM_RawUdpQueries(benchmark::State& state) {
  std::vector<std::pair<std::string_view, std::uint16_t>> names;
  for (const auto& [n, t] : kQueries) names.emplace_back(n, static_cast<std::uint16_t>(t));
  std::uint64_t lost = 0;
  for (auto _ : state) {
    lost += stampd::test::udp_query_loop(g_server->port(), names, kBatch,
                                         static_cast<int>(state.range(0)))
                .lost;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["lost"] = static_cast<double>(lost);
}

void BM_ResolverCachedQueries(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    for (int w = 0; w < workers; ++w) {
      asio::co_spawn(*g_ctx, query_worker(kBatch / workers, w), asio::detached);
    }
    g_ctx->restart();
    g_ctx->run();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_SpfEvaluations(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  const int per_batch = kBatch / static_cast<int>(kQueries.size());
  for (auto _ : state) {
    for (int w = 0; w < workers; ++w) {
      asio::co_spawn(*g_ctx, spf_worker(per_batch / workers), asio::detached);
    }
    g_ctx->restart();
    g_ctx->run();
  }
  state.SetItemsProcessed(state.iterations() * (per_batch / workers) * workers);
  state.counters["queries_per_eval"] = static_cast<double>(kQueries.size());
}

BENCHMARK(BM_RawUdpQueries)->Arg(1)->Arg(16)->UseRealTime();
BENCHMARK(BM_ResolverCachedQueries)->Arg(1)->Arg(16)->UseRealTime();
BENCHMARK(BM_SpfEvaluations)->Arg(1)->Arg(16)->UseRealTime();

// Keeps items_per_second of every run for the summary.
class Collector : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      const auto it = r.counters.find("items_per_second");
      if (it != r.counters.end() && r.run_type == Run::RT_Iteration)
        rate[r.benchmark_name()] = it->second;
    }
  }
  std::map<std::string, double> rate;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string error;
  stampd::test::UnboundServer::Options options;
  options.local_zones = {"\"bench.example.\" static"};
  options.local_data = kZone;
  auto server = stampd::test::UnboundServer::start(options, &error);
  if (!server) {
    std::printf("spf_bench: skipped: %s\n", error.c_str());
    return 0;
  }
  asio::io_context ctx;
  stampd::net::UnboundOptions o;
  o.forwarders = {server->forwarder()};
  auto resolver = stampd::net::UnboundResolver::create(ctx.get_executor(), o);
  if (!resolver.ok()) {
    std::printf("spf_bench: %s\n", resolver.error().message().c_str());
    return 1;
  }
  g_server = server.get();
  g_ctx = &ctx;
  g_resolver = resolver.value().get();

  Collector collector;
  benchmark::RunSpecifiedBenchmarks(&collector);

  std::printf("\nSummary (same unbound server, same run; %zu DNS queries per SPF evaluation):\n",
              kQueries.size());
  for (const char* arg : {"1", "16"}) {
    const double raw = collector.rate["BM_RawUdpQueries/" + std::string(arg) + "/real_time"];
    const double cached =
        collector.rate["BM_ResolverCachedQueries/" + std::string(arg) + "/real_time"];
    const double spf = collector.rate["BM_SpfEvaluations/" + std::string(arg) + "/real_time"];
    if (raw <= 0 || cached <= 0 || spf <= 0) continue;
    std::printf(
        "  %2s in flight: raw UDP %9.0f q/s | UnboundResolver cached %9.0f q/s | SPF %8.0f eval/s"
        " | SPF/raw %.3f, SPF/cached %.3f\n",
        arg, raw, cached, spf, spf / raw, spf / cached);
  }
  resolver.value().reset();
  benchmark::Shutdown();
  return 0;
}
