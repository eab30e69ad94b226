#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sd::data {

// Turns an image file's bytes into uint8 HxWx3 RGB; throws sd::Error naming `where` and the
// reason when the bytes are not a complete, decodable image. The loader takes one, so that a
// build without OpenCV can plug in another source of pixels.
using ImageDecoder = std::function<at::Tensor(std::string_view bytes, const std::string& where)>;

// The most pixels an image may declare: set_max_image_pixels (the --max-image-pixels flag),
// else $SAMDISTILL_MAX_IMAGE_PIXELS, else 100 million (SA-1B's images have 3.4 million; a
// 50000 x 50000 PNG of a few kilobytes would need 7.5 GB). Image files, tar members and the
// sizes records declare are all held to it.
int64_t max_image_pixels();
void set_max_image_pixels(int64_t pixels);  // 0: back to the variable or the default

// The formats read: each has a memory decoder and a header that declares its size. Anything
// else (HDR, PNM, EXR, ...) is refused: OpenCV would decode some through temporary files.
enum class ImageFormat { jpeg, png, bmp, webp, tiff };
std::optional<ImageFormat> image_format(std::string_view bytes);  // by the first bytes

// OpenCV's decoder (JPEG, PNG, ...), EXIF orientation ignored as PIL ignores it, grey and CMYK
// converted to RGB, alpha dropped; JPEGs through libjpeg-turbo's own API where the build has
// it (data/image_decoders.h), the same pixels. JPEGs are first checked for truncation
// (check_jpeg_complete); images of other formats, or declaring more than `max_pixels`, are
// refused before decoding (check_pixel_limit). A build without OpenCV returns a decoder that throws
// sd::Error.
ImageDecoder default_image_decoder(int64_t max_pixels = max_image_pixels());
bool image_decoding_available();

// Walks a JPEG's marker segments and entropy-coded data up to the EOI marker. Throws when the
// data ends first (a truncated file: OpenCV would decode it silently with grey rows) or a
// segment length is impossible. Bytes that do not start with a JPEG SOI marker are left alone.
void check_jpeg_complete(std::string_view bytes, const std::string& where);

// The width and height that the image's header declares (PNG's IHDR, JPEG's frame header,
// WebP's canvas or bitstream header, TIFF's first directory, BMP's DIB header); nullopt for
// other bytes, or when no such header is found in them.
std::optional<std::array<int64_t, 2>> declared_image_size(std::string_view bytes);

// What the first bytes of an image file of `file_bytes` bytes (`head`, all of it or its start)
// show, checked before the rest is read, whatever decoder comes next: sd::Error naming `where`
// when the declared size is over `max_pixels`, or the file has more bytes than an image of its
// declared size (or, with no size in the head, of `max_pixels`) can hold.
void check_image_head(std::string_view head, uint64_t file_bytes, const std::string& where,
                      int64_t max_pixels);

// check_image_head on the whole image, which must also be one of ImageFormat and declare its
// size: a decompression bomb is refused before anything is allocated for it.
void check_pixel_limit(std::string_view bytes, const std::string& where, int64_t max_pixels);

}  // namespace sd::data
