#!/usr/bin/python3
"""Writes one 7x5 (width x height) picture in each format the image readers take, by PIL, so
that tests/data/strangers_test.cpp checks the sizes our header readers find against files an
independent writer made. Run from this folder: /usr/bin/python3 make_formats.py"""
from PIL import Image

image = Image.new("RGB", (7, 5))
for x in range(7):
    for y in range(5):
        image.putpixel((x, y), (30 * x, 40 * y, 100))
image.save("lossy.webp", lossless=False, quality=90)
image.save("lossless.webp", lossless=True)
image.save("little.tif", compression="tiff_lzw")
image.save("plain.bmp")
