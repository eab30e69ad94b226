#pragma once

namespace sd {

// Peak resident set size of this process so far, in MiB (getrusage).
double peak_rss_mb();

}  // namespace sd
