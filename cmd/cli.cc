// cli.cc: the command line, parsed by CLI11 (Debian's libcli11-dev,
// header-only). Why a library: users expect what it gives and what the
// hand-written parser lacked: --help for the program and for each subcommand,
// typed and required options, and errors that name the offending argument (an
// unknown option used to be ignored). This file only parses and dispatches;
// each subcommand's work lives in its own file.
#include "cmd/cli.h"

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <string>

#include "cmd/check_config_command.h"
#include "cmd/daemon.h"
#include "cmd/dkim_commands.h"
#include "cmd/explain_command.h"
#include "cmd/health_command.h"
#include "cmd/keys_command.h"
#include "cmd/passwd_command.h"
#include "cmd/spf_commands.h"

#ifndef STAMPD_VERSION
#define STAMPD_VERSION "dev"
#endif

namespace stampd::cmd {

namespace {

constexpr int kUsageError = 2;  // README: exit 2 for bad usage

// usage_error words a parse error as CLI11 does, prefixed with the command it concerns.
std::string usage_error(const CLI::App* app, const CLI::Error& e) {
  std::string command = app->get_name();
  if (const auto chosen = app->get_subcommands(); !chosen.empty()) {
    command += " " + chosen.front()->get_name();
  }
  return command + ": " + e.what() + "\nRun '" + command + " --help' for more information.\n";
}

// Parsed is what the options fill; the chosen subcommand's callback sets action.
struct Parsed {
  std::function<int()> action;
  std::string config;
  GenkeyArgs genkey;
  SpfArgs spf;
  std::string key_file;
  bool ready = false;
  PasswdArgs passwd;
  ExplainArgs explain;
  RotateArgs rotate;
};

// add_command adds a subcommand that, once parsed without error, chooses run.
CLI::App* add_command(CLI::App& app, Parsed& parsed, const char* name, const char* about,
                      std::function<int()> run) {
  CLI::App* command = app.add_subcommand(name, about);
  command->callback([&parsed, run = std::move(run)] { parsed.action = run; });
  return command;
}

// add_config adds -c/--config FILE to command.
CLI::Option* add_config(CLI::App* command, std::string& path, const std::string& about) {
  return command->add_option("-c,--config", path, about)->type_name("FILE");
}

// add_daemon_commands adds run, check-config and passwd.
void add_daemon_commands(CLI::App& app, Parsed& p) {
  CLI::App* run = add_command(app, p, "run", "serve (also: stampd -c FILE)",
                              [&p] { return run_daemon(p.config); });
  add_config(run, p.config, "the config")->required();

  CLI::App* check =
      add_command(app, p, "check-config", "validate FILE and print the effective config",
                  [&p] { return cmd_check_config(p.config); });
  add_config(check, p.config, "the config to check")->required();

  CLI::App* passwd = add_command(app, p, "passwd",
                                 "read a password (terminal or stdin), print USER:HASH for "
                                 "[auth] users_file",
                                 [&p] { return cmd_passwd(p.passwd); });
  passwd->add_option("user", p.passwd.user, "the login name")->required();
  passwd->add_option("--method", p.passwd.method, "the hash")
      ->check(CLI::IsMember({"yescrypt", "sha512-crypt", "bcrypt"}))
      ->capture_default_str();
}

// add_dkim_commands adds genkey, sign and verify.
void add_dkim_commands(CLI::App& app, Parsed& p) {
  CLI::App* genkey =
      add_command(app, p, "genkey", "write DIR/SELECTOR.private (0600) and DIR/SELECTOR.txt",
                  [&p] { return cmd_genkey(p.genkey); });
  genkey->add_option("--domain", p.genkey.domain, "the signing domain (d=)")
      ->type_name("D")
      ->required();
  genkey->add_option("--selector", p.genkey.selector, "the selector (s=)")
      ->type_name("S")
      ->required();
  genkey->add_option("--algorithm", p.genkey.algorithm, "the key type")
      ->check(CLI::IsMember({"rsa-2048", "rsa-3072", "ed25519"}))
      ->capture_default_str();
  genkey->add_option("--dir", p.genkey.dir, "where to write the two files")
      ->type_name("DIR")
      ->capture_default_str();

  CLI::App* sign = add_command(app, p, "sign", "sign the message on stdin as the proxy would",
                               [&p] { return cmd_sign(p.config); });
  add_config(sign, p.config, "the config whose keys and rules sign")->required();

  CLI::App* verify =
      add_command(app, p, "verify", "verify every DKIM-Signature of the message on stdin",
                  [&p] { return cmd_verify(p.key_file, p.config); });
  verify->add_option("--key-file", p.key_file, "the key instead of DNS: PEM, record or .txt")
      ->type_name("F");
  add_config(verify, p.config, "ask DNS as its [dns] says");

  CLI::App* keys = app.add_subcommand("keys", "manage signing keys: keys rotate");
  keys->require_subcommand(1);
  CLI::App* rotate = add_command(*keys, p, "rotate",
                                 "make a domain's next key beside the current one; print the DNS "
                                 "record and the [[dkim.key]] block (edits no file)",
                                 [&p] { return cmd_keys_rotate(p.rotate); });
  add_config(rotate, p.rotate.config, "the config with the current key")->required();
  rotate->add_option("--domain", p.rotate.domain, "the signing domain (d=)")
      ->type_name("D")
      ->required();
  rotate->add_option("--key", p.rotate.key, "which current key, when the domain has several")
      ->type_name("NAME");
  rotate
      ->add_option("--selector", p.rotate.selector_template,
                   "the new selector; {yyyy} {mm} {dd} are today's (UTC)")
      ->type_name("TEMPLATE")
      ->capture_default_str();
  rotate->add_option("--algorithm", p.rotate.algorithm, "default: the current key's")
      ->check(CLI::IsMember({"rsa-2048", "rsa-3072", "ed25519"}));
}

// add_probe_commands adds the commands that ask the network: spf, dns-check
// (the DNS) and health (the daemon's HTTP endpoint).
void add_probe_commands(CLI::App& app, Parsed& p) {
  CLI::App* spf =
      add_command(app, p, "spf", "evaluate SPF for one sender: result, explanation, lookup trace",
                  [&p] { return cmd_spf(p.spf); });
  spf->add_option("--ip", p.spf.ip, "the client's address")->type_name("IP")->required();
  spf->add_option("--mail-from", p.spf.mail_from, "the envelope sender")->type_name("ADDR");
  spf->add_option("--helo", p.spf.helo, "the HELO name")->type_name("NAME");
  add_config(spf, p.spf.config_path, "ask DNS as its [dns] says");

  CLI::App* check =
      add_command(app, p, "dns-check", "is what the DNS publishes what FILE signs and sends with",
                  [&p] { return cmd_dns_check(p.config); });
  add_config(check, p.config, "the config to check against the DNS")->required();

  CLI::App* health = add_command(app, p, "health", "ask the running daemon's /healthz (or /readyz)",
                                 [&p] { return cmd_health(p.config, p.ready); });
  add_config(health, p.config, "the daemon's config ([metrics] listen)")->required();
  health->add_flag("--ready", p.ready, "ask /readyz instead");

  CLI::App* explain = add_command(
      app, p, "explain",
      "what FILE's stampd would do with the message on stdin: SPF, the signing rule, keys, "
      "signed headers, the fields added, or why not; exit 0 signed, 1 unsigned, 3 refused",
      [&p] { return cmd_explain(p.explain, std::cin, std::cout); });
  add_config(explain, p.explain.config_path, "the config")->required();
  explain->add_option("--ip", p.explain.ip, "the client's address (default 127.0.0.1)")
      ->type_name("IP");
  explain->add_option("--helo", p.explain.helo, "the HELO name (default localhost)")
      ->type_name("NAME");
  explain->add_option("--mail-from", p.explain.mail_from, "the envelope sender (default: From)")
      ->type_name("ADDR");
  explain->add_option("--rcpt", p.explain.rcpt, "the recipient")->type_name("ADDR");
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"stampd: an SMTP relay proxy that DKIM-signs mail.", "stampd"};
  app.set_version_flag("--version", "stampd " STAMPD_VERSION);
  app.require_subcommand(0, 1);
  app.failure_message(usage_error);
  Parsed p;
  CLI::Option* serve =
      add_config(&app, p.config, "serve with this config (same as 'stampd run -c FILE')");
  add_daemon_commands(app, p);
  add_dkim_commands(app, p);
  add_probe_commands(app, p);
  // `stampd help`, an old spelling of --help, stays unlisted.
  add_command(app, p, "help", "", [&app] {
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return 0;
  })->group("");
  // `stampd -c FILE COMMAND` would take FILE for some commands and drop it for others.
  for (CLI::App* command : app.get_subcommands({})) command->excludes(serve);
  // Set last, so that it is the program's only: subcommands copy it when added.
  app.footer(
      "Exit status: 0 success, 1 failure, 2 bad usage.\n"
      "'stampd COMMAND --help' shows the options of a command.");

  try {
    app.parse(argc, argv);
    // Without a subcommand, `stampd -c FILE` serves.
    if (!p.action && p.config.empty()) throw CLI::RequiredError("--config");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsageError;
  }
  return p.action ? p.action() : run_daemon(p.config);
}

}  // namespace stampd::cmd
