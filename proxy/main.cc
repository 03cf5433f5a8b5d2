// main.cc: the stampd executable; all logic lives in proxy/cli.cc.
#include "proxy/cli.h"

int main(int argc, char** argv) { return stampd::proxy::run_cli(argc, argv); }
