#!/usr/bin/python3
"""Seeds of fuzz/dataset_fuzz.cpp (run from this folder): an SA-1B pair, plain images of each
format, a COCO file over them, a symlink and a FIFO, in the harness's [kind][name][length][data]
list."""
import io
import json
import tarfile

NAMES = ["sa_1.jpg", "sa_1.json", "sa_2.jpg", "sa_2.json", "a/sa_3.jpg", "b/sa_3.json", "x.png",
         "y.webp", "z.tif", "w.bmp", "sub/v.jpg"]
FORMATS = "../../../tests/data/assets/formats/"


def item(kind, name, data):
    return bytes([kind, NAMES.index(name) if name in NAMES else 0]) + len(data).to_bytes(2, "little") + data


jpeg = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x02\x00\x03\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9"
record = json.dumps({"image": {"image_id": 1, "width": 3, "height": 2, "file_name": "sa_1.jpg"},
                     "annotations": [{"id": 1, "segmentation": {"size": [2, 3], "counts": "04"},
                                      "bbox": [0, 0, 3, 2], "point_coords": [[1, 1]]}]}).encode()
formats = b"".join(item(0, n, open(FORMATS + f, "rb").read())
                   for n, f in [("y.webp", "lossy.webp"), ("z.tif", "little.tif"), ("w.bmp", "plain.bmp")])
open("sa1b", "wb").write(item(0, "sa_1.jpg", jpeg) + item(0, "sa_1.json", record) +
                         item(0, "a/sa_3.jpg", jpeg) + item(0, "b/sa_3.json", record) +
                         item(1, "sa_2.jpg", b"") + item(2, "sa_2.json", b""))
open("plain", "wb").write(formats + item(0, "x.png", b"\x89PNG\r\n\x1a\n") + item(1, "sub/v.jpg", b"12"))
coco = json.dumps({"images": [{"id": 1, "width": 7, "height": 5, "file_name": "y.webp"},
                              {"id": 2, "width": 7, "height": 5, "file_name": "w.bmp"}],
                   "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 1, 2, 2],
                                    "segmentation": [[1, 1, 5, 1, 5, 4]]}]}).encode()
open("coco", "wb").write(formats + item(4, "x.png", coco))
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    for name, data in [("sa_1.jpg", jpeg), ("sa_1.json", record), ("../up.png", b"u")]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
open("tar", "wb").write(item(3, "x.png", buffer.getvalue()))
