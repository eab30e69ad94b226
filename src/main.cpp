#include "cli/app.h"

int main(int argc, char** argv) { return sd::cli::run(argc, argv); }
