#include "data/rle.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"

namespace sd::data {
namespace {

// Column-major 0/1 bytes (x outer, y inner): the order the runs walk.
std::vector<uint8_t> to_column_major(const Rle& rle) {
  std::vector<uint8_t> out(static_cast<size_t>(rle.height) * rle.width, 0);
  size_t p = 0;
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    if (i % 2 == 1 && rle.counts[i] > 0) std::memset(out.data() + p, 1, rle.counts[i]);
    p += rle.counts[i];
  }
  return out;
}

Rle from_column_major(const uint8_t* pixels, int height, int width) {
  Rle rle{height, width, {}};
  const size_t n = static_cast<size_t>(height) * width;
  uint8_t current = 0;
  uint32_t run = 0;
  for (size_t p = 0; p < n; ++p) {
    const uint8_t v = pixels[p] != 0;
    if (v != current) {
      rle.counts.push_back(run);
      run = 0;
      current = v;
    }
    ++run;
  }
  rle.counts.push_back(run);
  return rle;
}

}  // namespace

void rle_check(const Rle& rle, const std::string& where) {
  if (rle.height < 0 || rle.width < 0)
    throw Error(where + ": RLE size [" + std::to_string(rle.height) + ", " +
                std::to_string(rle.width) + "] is negative");
  uint64_t total = 0;
  for (uint32_t c : rle.counts) total += c;
  const uint64_t expected = static_cast<uint64_t>(rle.height) * rle.width;
  if (total != expected)
    throw Error(where + ": RLE counts add up to " + std::to_string(total) +
                ", not height x width = " + std::to_string(expected));
}

Rle rle_from_string(std::string_view s, int height, int width, const std::string& where) {
  Rle rle{height, width, {}};
  size_t p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= s.size()) throw Error(where + ": RLE string ends inside a count");
      const int c = static_cast<unsigned char>(s[p]) - 48;
      if (c < 0 || c > 63)
        throw Error(where + ": RLE string has invalid character '" + std::string(1, s[p]) +
                    "' at offset " + std::to_string(p));
      if (k > 6) throw Error(where + ": RLE count too long at offset " + std::to_string(p));
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      more = c & 0x20;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= -(int64_t{1} << (5 * k));  // sign-extend
    }
    if (rle.counts.size() > 2) x += rle.counts[rle.counts.size() - 2];
    if (x < 0 || x > UINT32_MAX)
      throw Error(where + ": RLE count " + std::to_string(x) + " out of range (count " +
                  std::to_string(rle.counts.size()) + ")");
    rle.counts.push_back(static_cast<uint32_t>(x));
  }
  rle_check(rle, where);
  return rle;
}

std::string rle_to_string(const Rle& rle) {
  std::string s;
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    int64_t x = rle.counts[i];
    if (i > 2) x -= rle.counts[i - 2];
    bool more = true;
    while (more) {
      int c = static_cast<int>(x & 0x1f);
      x >>= 5;  // arithmetic shift: negative differences end at -1
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

Rle rle_from_counts(const std::vector<int64_t>& counts, int height, int width,
                    const std::string& where) {
  Rle rle{height, width, {}};
  for (int64_t c : counts) {
    if (c < 0 || c > UINT32_MAX)
      throw Error(where + ": RLE count " + std::to_string(c) + " out of range");
    rle.counts.push_back(static_cast<uint32_t>(c));
  }
  rle_check(rle, where);
  return rle;
}

int64_t rle_area(const Rle& rle) {
  int64_t area = 0;
  for (size_t i = 1; i < rle.counts.size(); i += 2) area += rle.counts[i];
  return area;
}

std::array<int, 4> rle_bbox(const Rle& rle) {
  const int64_t h = rle.height;
  int64_t x0 = INT64_MAX, y0 = INT64_MAX, x1 = -1, y1 = -1;
  int64_t p = 0;
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    const int64_t n = rle.counts[i];
    if (i % 2 == 1 && n > 0) {
      const int64_t first = p, last = p + n - 1;
      const int64_t xa = first / h, xb = last / h;
      x0 = std::min(x0, xa);
      x1 = std::max(x1, xb);
      if (xb > xa) {  // spans a column boundary: reaches row h-1 in xa and row 0 in xb
        y0 = 0;
        y1 = h - 1;
      } else {
        y0 = std::min(y0, first % h);
        y1 = std::max(y1, last % h);
      }
    }
    p += n;
  }
  if (x1 < 0) return {0, 0, 0, 0};
  return {static_cast<int>(x0), static_cast<int>(y0), static_cast<int>(x1 - x0 + 1),
          static_cast<int>(y1 - y0 + 1)};
}

at::Tensor rle_decode(const Rle& rle) {
  // Filling the transpose (WxH) is the runs' own order; the copy makes it row-major HxW.
  at::Tensor transposed = at::empty({rle.width, rle.height}, at::kByte);
  std::vector<uint8_t> column_major = to_column_major(rle);
  if (!column_major.empty())  // an empty mask has no buffer to copy to
    std::memcpy(transposed.data_ptr<uint8_t>(), column_major.data(), column_major.size());
  return transposed.t().contiguous();
}

Rle rle_encode(const at::Tensor& mask) {
  if (mask.dim() != 2)
    throw Error("rle_encode: mask must be HxW, got " + std::to_string(mask.dim()) + " dims");
  at::Tensor column_major = mask.ne(0).to(at::kByte).t().contiguous();
  return from_column_major(column_major.data_ptr<uint8_t>(), static_cast<int>(mask.size(0)),
                           static_cast<int>(mask.size(1)));
}

// Merged run by run, never as pixels: the work follows the runs, not the canvas (a triangle on
// a 46341 x 46341 canvas is a few thousand runs, its pixels 2 GB).
Rle rle_union(const std::vector<Rle>& parts, int height, int width) {
  std::vector<std::pair<uint64_t, uint64_t>> ones;  // [begin, end) in column-major order
  for (const Rle& part : parts) {
    uint64_t p = 0;
    for (size_t i = 0; i < part.counts.size(); ++i) {
      if (i % 2 == 1 && part.counts[i] > 0) ones.emplace_back(p, p + part.counts[i]);
      p += part.counts[i];
    }
  }
  std::sort(ones.begin(), ones.end());
  const uint64_t total = static_cast<uint64_t>(height) * width;
  Rle rle{height, width, {}};
  uint64_t done = 0;  // pixels the counts cover so far; they end with a run of ones
  for (const auto& [begin, end] : ones) {
    if (end <= done) continue;
    if (begin <= done && !rle.counts.empty()) {  // overlaps or touches the last run of ones
      rle.counts.back() += static_cast<uint32_t>(end - done);
    } else {
      rle.counts.push_back(static_cast<uint32_t>(begin - done));
      rle.counts.push_back(static_cast<uint32_t>(end - begin));
    }
    done = end;
  }
  if (done < total || rle.counts.empty()) rle.counts.push_back(static_cast<uint32_t>(total - done));
  return rle;
}

// pycocotools' rleFrPoly: trace the outline on a 5x finer grid, keep the points where it
// crosses a pixel column centre, and turn those crossings into runs along each column.
Rle rle_from_polygon(const std::vector<double>& xy, int height, int width) {
  const double scale = 5;
  const size_t k = xy.size() / 2;
  std::vector<int> x(k + 1), y(k + 1);
  for (size_t j = 0; j < k; ++j) {
    x[j] = static_cast<int>(scale * xy[2 * j] + .5);
    y[j] = static_cast<int>(scale * xy[2 * j + 1] + .5);
  }
  if (k == 0) return Rle{height, width, {static_cast<uint32_t>(height * width)}};
  x[k] = x[0];
  y[k] = y[0];
  // Dense boundary points (u, v) on the fine grid.
  std::vector<int> u, v;
  for (size_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    // A repeated point (dx = dy = 0) divides 0 by 0 in pycocotools; its one boundary point
    // shares its column with both neighbours, so it never counts and any slope does.
    const double s = dx == 0 && dy == 0 ? 0
                     : dx >= dy         ? static_cast<double>(ye - ys) / dx
                                        : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      for (int d = 0; d <= dx; ++d) {
        const int t = flip ? dx - d : d;
        u.push_back(t + xs);
        v.push_back(static_cast<int>(ys + s * t + .5));
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        const int t = flip ? dy - d : d;
        v.push_back(t + ys);
        u.push_back(static_cast<int>(xs + s * t + .5));
      }
    }
  }
  // Crossings of column centres, back on the pixel grid, as column-major positions.
  std::vector<uint32_t> a;
  for (size_t j = 1; j < u.size(); ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
    xd = (xd + .5) / scale - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > width - 1) continue;
    double yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + .5) / scale - .5;
    yd = std::ceil(std::clamp(yd, 0.0, static_cast<double>(height)));
    a.push_back(static_cast<uint32_t>(static_cast<int>(xd) * height + static_cast<int>(yd)));
  }
  a.push_back(static_cast<uint32_t>(height * width));
  std::sort(a.begin(), a.end());
  uint32_t previous = 0;
  for (uint32_t& value : a) {
    const uint32_t t = value;
    value -= previous;
    previous = t;
  }
  // Zero-length runs merge their neighbours.
  Rle rle{height, width, {a[0]}};
  for (size_t j = 1; j < a.size();) {
    if (a[j] > 0) {
      rle.counts.push_back(a[j++]);
    } else if (++j < a.size()) {
      rle.counts.back() += a[j++];
    }
  }
  return rle;
}

}  // namespace sd::data
