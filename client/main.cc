// nanonas: the command-line client. See Usage() (nanonas --help).
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "client/cli.h"
#include "client/commands.h"
#include "client/health.h"
#include "grpcpp/grpcpp.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto command = nanonas::ParseCommandLine(args, std::getenv("NANONAS_SERVER"));
  if (!command.ok()) {
    std::cerr << "nanonas: " << command.status().message() << "\n";
    return nanonas::kExitUsage;
  }
  if (command->kind == nanonas::Command::Kind::kHelp) {
    std::cout << nanonas::Usage();
    return nanonas::kExitOk;
  }
  std::shared_ptr<nanonas::v1::Coordinator::StubInterface> stub;
  if (command->kind != nanonas::Command::Kind::kTargets) {
    auto channel = nanonas::MakeChannel(command->global.server);
    if (command->kind == nanonas::Command::Kind::kHealth) {
      return nanonas::CheckHealth(channel, command->health_service, command->global, std::cout,
                                  std::cerr);
    }
    stub = nanonas::v1::Coordinator::NewStub(channel);
  }
  nanonas::Cli cli(stub, command->global, std::cout, std::cerr, isatty(STDOUT_FILENO) == 1,
                   isatty(STDERR_FILENO) == 1);
  return cli.Run(*command);
}
