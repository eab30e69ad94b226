#include "common/browser.h"

#include <cstdio>
#include <regex>

namespace sd::testing {
namespace {

const char* const kFlags = "--headless --disable-gpu --no-sandbox --no-first-run";

// Runs `command`, returning its stdout and stderr together.
std::string output_of(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  pclose(pipe);
  return out;
}

}  // namespace

std::string chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"})
    if (output_of(std::string("command -v ") + name).find('/') != std::string::npos) return name;
  return "";
}

std::string rendered_dom(const std::string& browser, const std::string& page,
                         const std::string& hash, std::string* log) {
  const std::string out = output_of(browser + " " + kFlags + " --enable-logging=stderr --v=0 " +
                                    "--dump-dom 'file://" + page + hash + "'");
  if (log) *log = out;
  return out;
}

void screenshot(const std::string& browser, const std::string& page, const std::string& png,
                int width, int height) {
  output_of(browser + " " + kFlags + " --hide-scrollbars --window-size=" + std::to_string(width) +
            "," + std::to_string(height) + " --screenshot=" + png + " 'file://" + page + "'");
}

std::string page_state(const std::string& dom) {
  std::smatch m;
  std::regex_search(dom, m, std::regex("<p id=\"state\" hidden=\"\">([^<]*)</p>"));
  return m.size() > 1 ? m[1].str() : "(no #state in the page: its script did not run)";
}

}  // namespace sd::testing
