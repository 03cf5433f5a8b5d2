// main.cc: the stampd executable; all logic lives in cmd/cli.cc.
#include "cmd/cli.h"

int main(int argc, char** argv) { return stampd::cmd::run_cli(argc, argv); }
