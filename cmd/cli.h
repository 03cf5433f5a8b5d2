// cli.h: the `stampd` command line (run, check-config, genkey, sign, verify,
// spf, dns-check, health), parsed by CLI11. Parses arguments and dispatches;
// owns no protocol logic.
#pragma once

namespace stampd::cmd {

// run_cli runs one stampd invocation and returns the process exit code.
int run_cli(int argc, char** argv);

}  // namespace stampd::cmd
