#pragma once
#include <string>

// Headless Chromium (Debian's `chromium`) for the tests of the HTML pages.
namespace sd::testing {

// The browser's command, or "" when there is none (the caller skips, saying so).
std::string chromium();

// The page's DOM after its script ran, loaded from `page` (a file) with `hash` ("#sort=iou");
// the browser's console messages, if any, are in `log` (lines with "CONSOLE").
std::string rendered_dom(const std::string& browser, const std::string& page,
                         const std::string& hash = "", std::string* log = nullptr);

// Writes a screenshot of `page` to `png`, width x height pixels.
void screenshot(const std::string& browser, const std::string& page, const std::string& png,
                int width, int height);

// The text of the page's <p id="state">, which its script writes once it ran.
std::string page_state(const std::string& dom);

}  // namespace sd::testing
