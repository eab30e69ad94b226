#pragma once
#include <string>

#include "util/error.h"

// SIGINT (Ctrl-C) and SIGTERM (what Slurm and Kubernetes send before they kill a job) ask the
// long commands (train, finetune, embed) to stop at their next safe point: after the current
// step or batch, with their work saved. A second signal ends the program at once.
namespace sd {

// Installs the handlers; until then the signals keep their default action (end the program).
void catch_stop_signals();

// The signal received since the handlers were installed (SIGINT or SIGTERM), or 0.
int stop_signal();

// "SIGINT", "SIGTERM".
std::string signal_name(int signal);

// Thrown by a command that stopped on a signal after saving its work. The message says what
// was saved and how to continue; the program exits with 128 + signal, as a shell reports it.
class Stopped : public Error {
 public:
  Stopped(int signal, const std::string& what) : Error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace sd
