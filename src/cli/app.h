#pragma once

namespace sd::cli {

// The samdistill program: parses the command line, runs one subcommand, returns the exit code.
int run(int argc, char** argv);

}  // namespace sd::cli
