#include "cmd/cli.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cmd/daemon.h"
#include "cmd/dkim_commands.h"
#include "cmd/health_command.h"
#include "cmd/spf_commands.h"
#include "proxy/config.h"
#include "proxy/runtime.h"

#ifndef STAMPD_VERSION
#define STAMPD_VERSION "dev"
#endif

namespace stampd::cmd {

namespace {

const char* const kUsage =
    "usage: stampd run -c FILE            serve (also: stampd -c FILE)\n"
    "       stampd check-config -c FILE   validate and print the effective config\n"
    "       stampd genkey --domain D --selector S [--algorithm rsa-2048|rsa-3072|ed25519] [--dir "
    "DIR]\n"
    "       stampd sign -c FILE < message > signed\n"
    "       stampd verify [--key-file F] [-c FILE] < message\n"
    "       stampd spf --ip IP --mail-from ADDR [--helo NAME] [-c FILE]\n"
    "       stampd dns-check -c FILE\n"
    "       stampd health -c FILE [--ready]\n"
    "       stampd --version\n";

// Args is the parsed command line: a subcommand and its --options.
struct Args {
  std::string command;
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::string> errors;

  const std::string* get(std::string_view name) const {
    for (const auto& [k, v] : options) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

Args parse_args(int argc, char** argv, const std::vector<std::string>& flags_with_value) {
  Args args;
  int i = 1;
  if (i < argc && argv[i][0] != '-') args.command = argv[i++];
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c") a = "--config";
    if (!a.starts_with("--")) {
      args.errors.push_back("unexpected argument '" + a + "'");
      continue;
    }
    std::string value;
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (std::find(flags_with_value.begin(), flags_with_value.end(), a) !=
               flags_with_value.end()) {
      if (i + 1 >= argc) {
        args.errors.push_back(a + " needs a value");
        continue;
      }
      value = argv[++i];
    }
    args.options.emplace_back(a.substr(2), value);
  }
  return args;
}

int cmd_check_config(const Args& args) {
  const std::string* path = args.get("config");
  if (!path) {
    std::fputs("stampd check-config: -c FILE is required\n", stderr);
    return 2;
  }
  try {
    auto config = proxy::load_config(*path);
    auto runtime = proxy::build_runtime(config, proxy::KeyPolicy::Strict);
    std::cout << proxy::describe_config(*config);
    for (const auto& warning : runtime->signing_keys->warnings()) {
      std::cerr << "warning: " << warning << "\n";
    }
    // Strict lets only keys that `stampd run` will generate be missing.
    for (const auto& missing : proxy::broken_keys(*runtime)) {
      std::cerr << "note: " << missing << "; `stampd run` makes it\n";
    }
    std::cerr << path->c_str() << ": ok\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace

int run_cli(int argc, char** argv) {
  const std::vector<std::string> with_value{"--config",    "--domain",    "--selector",
                                            "--algorithm", "--dir",       "--key-file",
                                            "--ip",        "--mail-from", "--helo"};
  Args args = parse_args(argc, argv, with_value);
  if (args.get("version")) {
    std::printf("stampd %s\n", STAMPD_VERSION);
    return 0;
  }
  if (args.get("help") || args.command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.errors.empty()) {
    for (const auto& e : args.errors) std::fprintf(stderr, "stampd: %s\n", e.c_str());
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (args.command.empty() || args.command == "run") {
    const auto* config = args.get("config");
    if (!config) {
      std::fputs("stampd run: -c FILE is required\n", stderr);
      return 2;
    }
    return run_daemon(*config);
  }
  if (args.command == "check-config") return cmd_check_config(args);
  if (args.command == "genkey") {
    GenkeyArgs g;
    if (const auto* v = args.get("domain")) g.domain = *v;
    if (const auto* v = args.get("selector")) g.selector = *v;
    if (const auto* v = args.get("algorithm")) g.algorithm = *v;
    if (const auto* v = args.get("dir")) g.dir = *v;
    return cmd_genkey(g);
  }
  if (args.command == "sign") {
    const auto* config = args.get("config");
    if (!config) {
      std::fputs("stampd sign: -c FILE is required\n", stderr);
      return 2;
    }
    return cmd_sign(*config);
  }
  if (args.command == "spf") {
    SpfArgs s;
    if (const auto* v = args.get("ip")) s.ip = *v;
    if (const auto* v = args.get("mail-from")) s.mail_from = *v;
    if (const auto* v = args.get("helo")) s.helo = *v;
    if (const auto* v = args.get("config")) s.config_path = *v;
    return cmd_spf(s);
  }
  if (args.command == "dns-check") {
    const auto* config = args.get("config");
    if (!config) {
      std::fputs("stampd dns-check: -c FILE is required\n", stderr);
      return 2;
    }
    return cmd_dns_check(*config);
  }
  if (args.command == "health") {
    const auto* config = args.get("config");
    if (!config) {
      std::fputs("stampd health: -c FILE is required\n", stderr);
      return 2;
    }
    return cmd_health(*config, args.get("ready") != nullptr);
  }
  if (args.command == "verify") {
    const auto* key = args.get("key-file");
    const auto* config = args.get("config");
    return cmd_verify(key ? *key : "", config ? *config : "");
  }
  std::fprintf(stderr, "stampd: unknown command '%s'\n%s", args.command.c_str(), kUsage);
  return 2;
}

}  // namespace stampd::cmd
