"""Hostile inputs to the data layer: odd image modes and formats, decompression bombs, broken
and hidden files, lopsided layouts, bad source strings. Each is decoded right, or skipped and
named with its reason, or refused with a one-line message that says what would help."""

import os
import shutil
import struct
import threading
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from scaler.data import clear_memo, load_dataset
from scaler.errors import UsageError


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_memo()
    yield
    clear_memo()


def flat(path, color, size=8, mode="RGB"):
    """A flat `size` x `size` image of `color` saved at `path` in `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", (size, size), color)
    if mode == "P":  # the default web palette would dither
        im.convert("P", palette=Image.Palette.ADAPTIVE, colors=2).save(path, transparency=1)
    else:
        im.convert(mode).save(path)


def two_classes(root, per_class=2, size=8):
    """Classes a (dark red) and b (light blue), `per_class` flat PNGs each."""
    for name, color in (("a", (120, 10, 10)), ("b", (10, 120, 200))):
        for i in range(per_class):
            flat(root / name / f"{i}.png", color, size)
    return root


def png_header(path, width, height):
    """A 1-bit PNG whose header claims width x height but holds almost no pixel data: enough for
    Pillow to open it (and see its size), never to decode it."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def all_images(ds):
    return np.concatenate([ds.train.images.numpy(), ds.val.images.numpy()])


def all_labels(ds):
    return np.concatenate([ds.train.labels.numpy(), ds.val.labels.numpy()])


# ---------------------------------------------------------------- image modes


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    y, x = np.mgrid[0:16, 0:16]
    values = ((y * 16 + x) * 256 + 100).astype(np.uint16)  # 100 .. 65380
    for name in ("a", "b"):
        for i in range(2):
            (tmp_path / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(values).save(tmp_path / name / f"{i}.png")
    assert Image.open(tmp_path / "a" / "0.png").mode in ("I;16", "I")  # Pillow < 10.? says I
    ds = load_dataset(str(tmp_path), storage_resolution=16)
    assert ds.skipped == 0 and len(ds.train) + len(ds.val) == 4
    expected = np.round(values / 65535 * 255).astype(np.uint8)  # 0 .. 254, not ~255
    for image in all_images(ds):
        for channel in image:
            assert np.array_equal(channel, expected)


@pytest.mark.parametrize("name, mode, color, expected", [
    ("1.png", "1", (255, 255, 255), (255, 255, 255)),
    ("l.png", "L", (77, 77, 77), (77, 77, 77)),
    ("la.png", "LA", (77, 77, 77), (77, 77, 77)),
    ("p.png", "P", (10, 200, 30), (10, 200, 30)),
    ("rgba.png", "RGBA", (10, 200, 30), (10, 200, 30)),
    ("cmyk.tif", "CMYK", (255, 0, 0), (255, 0, 0)),
    ("ycbcr.tif", "YCbCr", (10, 200, 30), (10, 200, 30)),
])
def test_eight_bit_modes_decode_to_their_colour(tmp_path, name, mode, color, expected):
    for cls in ("a", "b"):
        for i in range(2):
            flat(tmp_path / cls / f"{i}{name}", color, mode=mode)
    assert Image.open(tmp_path / "a" / f"0{name}").mode == mode
    ds = load_dataset(str(tmp_path), storage_resolution=8)
    assert ds.skipped == 0
    got = all_images(ds).astype(int)
    tolerance = 3 if mode == "YCbCr" else 0  # YCbCr rounds each way
    assert np.abs(got - np.array(expected).reshape(1, 3, 1, 1)).max() <= tolerance


def test_lab_tiff_goes_through_cielab(tmp_path):
    # L*a*b* (53, 80, 67) is sRGB red; copying L, a, b into R, G, B would give (136, 208, 195).
    for cls in ("a", "b"):
        for i in range(2):
            (tmp_path / cls).mkdir(parents=True, exist_ok=True)
            Image.new("LAB", (8, 8), (136, 208, 195)).save(tmp_path / cls / f"{i}.tif")
    ds = load_dataset(str(tmp_path), storage_resolution=8)
    red, green, blue = all_images(ds).astype(int).transpose(1, 0, 2, 3)
    assert red.min() > 240 and green.max() < 20 and blue.max() < 20


def test_wide_modes_scale_or_are_refused_by_name(tmp_path):
    ramp = np.arange(64).reshape(8, 8)
    save = {
        "a/grey16.pgm": Image.fromarray((ramp * 1000).astype(np.uint16)),  # opens as mode I
        "a/int32.tif": Image.fromarray((ramp * 1000).astype(np.int32)),
        "b/float.tif": Image.fromarray((ramp / 63).astype(np.float32)),
        "b/float2.tif": Image.fromarray((ramp / 63).astype(np.float32)),
        "a/hot.tif": Image.fromarray((ramp * 2000).astype(np.int32)),  # up to 126000
        "b/hdr.tif": Image.fromarray((ramp / 10 - 1).astype(np.float32)),  # -1 .. 5.3
    }
    for name, im in save.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        im.save(tmp_path / name)
    assert Image.open(tmp_path / "a/grey16.pgm").mode == "I"
    ds = load_dataset(str(tmp_path), storage_resolution=8, val_fraction=0.5)
    images, labels = all_images(ds), all_labels(ds)
    sixteen = np.round(ramp * 1000 / 65535 * 255)
    unit = np.round(ramp / 63 * 255)
    assert sorted(labels.tolist()) == [0, 0, 1, 1]
    for image, label in zip(images, labels):
        assert np.array_equal(image[0], sixteen if label == 0 else unit)
    assert ds.skipped == 2
    assert ds.warnings == (
        ("skipped 2 unreadable image file(s): a/hot.tif: mode I (32-bit) with values 0..126000; "
        "only 0..65535 (16-bit) is understood; b/hdr.tif: mode F (float) with values -1..5.3; "
        "only 0..1 is understood"),
        # a's one file drawn for training was the unreadable one
        ("1 of the 2 classes (a) have no training image among the 1: no network can learn them, so top-1 "
         "cannot exceed 33.3%; more training images would cover them"),
    )


def test_exif_orientation_is_applied(tmp_path):
    left_dark = np.zeros((8, 8, 3), dtype=np.uint8)
    left_dark[:, 4:] = 250
    exif = Image.Exif()
    exif[274] = 3  # rotate 180 degrees to show upright
    for cls in ("a", "b"):
        for i in range(2):
            (tmp_path / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(left_dark).save(tmp_path / cls / f"{i}.png", exif=exif)
    ds = load_dataset(str(tmp_path), storage_resolution=8)
    for image in all_images(ds):
        assert image[:, :, :4].min() == 250 and image[:, :, 4:].max() == 0


# ---------------------------------------------------------------- files


def test_every_imagefolder_extension_in_any_case(tmp_path):
    names = ["x.jpg", "x.JPEG", "x.png", "x.PPM", "x.bmp", "x.pgm", "x.TIF", "x.tiff", "x.WebP",
             "x.gif"]
    for cls, color in (("a", (200, 200, 200)), ("b", (40, 40, 40))):
        for name in names:
            stem, ext = name.split(".")
            mode = "L" if ext.lower() == "pgm" else "RGB"
            flat(tmp_path / cls / f"{stem}{ext}.{ext}", color, mode=mode)
        (tmp_path / cls / "notes.txt").write_text("not an image")
    ds = load_dataset(str(tmp_path), storage_resolution=8)
    assert ds.skipped == 0 and ds.decoded == 2 * len(names) and ds.warnings == ()
    images, labels = all_images(ds).astype(int), all_labels(ds)
    assert np.abs(images[labels == 0] - 200).max() <= 4  # JPEG and WebP are lossy
    assert np.abs(images[labels == 1] - 40).max() <= 4


def test_unreadable_files_are_named_with_their_reason(tmp_path):
    root = two_classes(tmp_path / "data", per_class=3)
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "a" / "garbage.jpg").write_bytes(b"no image here")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
                    ).save(root / "b" / "cut.png")
    data = (root / "b" / "cut.png").read_bytes()
    (root / "b" / "cut.png").write_bytes(data[: len(data) * 3 // 4])  # in the pixel data
    (root / "b" / "more1.png").write_bytes(b"x")
    (root / "b" / "more2.png").write_bytes(b"y")
    ds = load_dataset(str(root), storage_resolution=8)
    assert ds.skipped == 5 and len(ds.train) + len(ds.val) == 6
    (warning,) = ds.warnings
    assert warning.startswith(
        "skipped 5 unreadable image file(s): a/empty.png: empty file; "
        "a/garbage.jpg: not an image Pillow can read; b/cut.png: corrupt or truncated: ")
    assert warning.endswith("; and 2 more")


def test_decompression_bombs_are_skipped_by_size_without_a_raw_warning(tmp_path, capfd):
    root = two_classes(tmp_path / "data")
    png_header(root / "a" / "huge.png", 20000, 20000)  # over twice the limit: Pillow refuses
    png_header(root / "b" / "big.png", 12000, 12000)  # over the limit: Pillow only warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(str(root), storage_resolution=8)
    assert caught == [] and capfd.readouterr().err == ""
    assert ds.skipped == 2 and len(ds.train) + len(ds.val) == 4
    assert ds.warnings == (  # b's held-out file is the big one
        "class(es) 'b' have no readable validation image (their held-out files are unreadable): top-1 leaves them out",
        ("skipped 2 unreadable image file(s): "
        "a/huge.png: too large: 400 Mpx, over Pillow's limit of 89.5 Mpx; "
        "b/big.png: too large: 144 Mpx, over Pillow's limit of 89.5 Mpx"),
    )


def test_bomb_limit_follows_pillow_and_is_in_the_fingerprint(tmp_path, monkeypatch):
    root = two_classes(tmp_path / "data", size=10)
    before = load_dataset(str(root), storage_resolution=8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 99)
    with pytest.raises(UsageError) as error:
        load_dataset(str(root), storage_resolution=8)
    assert str(error.value) == ("class folder 'a' has no readable images (a/0.png: too large: "
                                "0.0001 Mpx, over Pillow's limit of 9.9e-05 Mpx)")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    unlimited = load_dataset(str(root), storage_resolution=8)
    assert unlimited.skipped == 0 and unlimited.fingerprint != before.fingerprint


def test_hidden_files_macos_forks_and_link_loops_are_ignored(tmp_path):
    root = two_classes(tmp_path / "data", per_class=3)
    (root / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / ".cache").mkdir()
    flat(root / "__MACOSX" / "a" / "._0.png", (1, 2, 3))
    flat(root / "a" / ".ipynb_checkpoints" / "0-checkpoint.png", (1, 2, 3))
    os.symlink(root / "a", root / "a" / "loop")  # a/loop/loop/... would repeat a's images
    os.mkfifo(root / "b" / "pipe.png")  # opening it would wait for a writer forever
    # Should the pipe be opened anyway, a writer comes after 10 s, so the test fails, not hangs.
    unblock = threading.Timer(10, _open_for_writing, [root / "b" / "pipe.png"])
    unblock.start()
    try:
        ds = load_dataset(str(root), storage_resolution=8)
    finally:
        unblock.cancel()
    assert ds.classes == ("a", "b")
    assert ds.skipped == 0 and ds.warnings == () and ds.decoded == 6


def _open_for_writing(path):
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader: nothing to unblock
        pass


def test_names_in_messages_stay_on_one_line(tmp_path):
    root = two_classes(tmp_path / "data")
    (root / "a" / "bad\nname.png").write_bytes(b"junk")
    ds = load_dataset(str(root), storage_resolution=8)
    assert ds.warnings == ((r"skipped 1 unreadable image file(s): 'a/bad\nname.png': not an image "
                           "Pillow can read"),)
    (root / "bad\nclass").mkdir()  # a class folder with no images: named on one line too
    with pytest.raises(UsageError, match=r"^class folder 'bad\\nclass' has no images") as refused:
        load_dataset(str(root), storage_resolution=8)
    assert "\n" not in str(refused.value)


def test_warnings_survive_the_memo_and_the_disk_cache(tmp_path):
    root = two_classes(tmp_path / "data")
    (root / "a" / "bad.png").write_bytes(b"junk")
    cache = tmp_path / "cache"
    first = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    assert first.decoded == 4 and first.skipped == 1 and len(first.warnings) == 1
    memo = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    clear_memo()
    disk = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    for again in (memo, disk):
        assert again.decoded == 0 and again.skipped == 1 and again.warnings == first.warnings


# ---------------------------------------------------------------- layouts


def test_one_image_per_class_says_what_would_help(tmp_path):
    root = two_classes(tmp_path / "data", per_class=1)
    with pytest.raises(UsageError) as error:
        load_dataset(str(root), storage_resolution=8, val_fraction=0.5)
    assert str(error.value) == (
        f"no class folder in {root} has the 2 images needed to hold one out for validation; "
        "add images (at least 2 per class) or give train/ and val/ sub-folders")


def test_a_class_with_one_image_is_named(tmp_path):
    root = two_classes(tmp_path / "data", per_class=3)
    flat(root / "c" / "0.png", (0, 0, 0))
    ds = load_dataset(str(root), storage_resolution=8)
    assert ds.warnings == (("class(es) 'c' have 1 image, so none is held out for validation: "
                           "top-1 leaves them out; add images"),)
    assert 2 not in ds.val.labels.tolist() and 2 in ds.train.labels.tolist()


def test_val_missing_a_class_warns_and_val_with_an_extra_class_is_refused(tmp_path):
    root = tmp_path / "data"
    for cls in ("a", "b", "c"):
        flat(root / "train" / cls / "0.png", (9, 9, 9))
    for cls in ("a", "b"):
        flat(root / "val" / cls / "0.png", (9, 9, 9))
    (root / "val" / "c").mkdir()  # present but empty counts as missing
    flat(root / "test" / "a" / "0.png", (9, 9, 9))
    flat(root / "train" / "stray.png", (9, 9, 9))
    ds = load_dataset(str(root), storage_resolution=8)
    assert len(ds.train) == 3 and len(ds.val) == 2
    assert ds.warnings == (
        ("1 image file(s) directly in train/ are not in a class folder and are not used: "
        "stray.png"),
        "folder(s) test/ beside train/ and val/ are not used; only train/ and val/ are",
        ("val/ has no images of 1 of 3 classes ('c'): top-1 leaves them out; add images to "
        "val/<class>/"),
    )
    flat(root / "val" / "zebra" / "0.png", (9, 9, 9))
    with pytest.raises(UsageError, match=r"^val/ has class folder\(s\) 'zebra' that train/ "
                                         r"lacks; val/ may only hold train/'s classes "
                                         r"\('a', 'b', 'c'\)$"):
        load_dataset(str(root), storage_resolution=8)


@pytest.mark.parametrize("case", ["no_val", "val_is_file", "no_train"])
def test_half_a_train_val_layout_is_refused(tmp_path, case):
    root = tmp_path / "data"
    two_classes(root / ("val" if case == "no_train" else "train"))
    if case == "val_is_file":
        (root / "val").write_text("oops")
    missing, what = {"no_val": ("val", "is missing"), "val_is_file": ("val", "is a file"),
                     "no_train": ("train", "is missing")}[case]
    with pytest.raises(UsageError) as error:
        load_dataset(str(root), storage_resolution=8)
    assert str(error.value) == (f"in data folder {root}, {missing}/ {what}; give both train/ and "
                                "val/ folders (one sub-folder per class in each) or only class "
                                "sub-folders")


def test_caps_below_the_class_count_leave_classes_out_without_error(tmp_path):
    root = two_classes(tmp_path / "data", per_class=4)
    flat(root / "c" / "0.png", (0, 0, 0))
    flat(root / "c" / "1.png", (0, 0, 0))
    ds = load_dataset(str(root), storage_resolution=8, train_images=2, val_images=2)
    assert len(ds.train) == 2 and len(ds.val) == 2 and ds.skipped == 0


def test_an_empty_val_split_says_which_folder(tmp_path):
    root = tmp_path / "data"
    two_classes(root / "train")
    (root / "val" / "a").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"the validation split of .* is empty: val/ has no "
                                         r"images; add images to val/<class>/$"):
        load_dataset(str(root), storage_resolution=8)


# ---------------------------------------------------------------- source strings


@pytest.mark.parametrize("source", ["", "   "])
def test_empty_source_is_refused(source):
    with pytest.raises(UsageError) as error:
        load_dataset(source)
    assert str(error.value) == (f"data source {source!r} is empty; use 'synthetic', "
                                "'cifar10:PATH' or a folder with one sub-folder per class")


def test_cifar10_path_that_is_a_file_or_missing(tmp_path, monkeypatch):
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0")
    needs = ("cifar10:PATH needs the extracted folder that holds data_batch_1, data_batch_2, "
             "data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta")
    with pytest.raises(UsageError) as error:
        load_dataset(f"cifar10:{a_file}")
    assert str(error.value) == f"CIFAR-10 path {a_file} is a file, not a folder; {needs}"
    with pytest.raises(UsageError) as error:
        load_dataset(f"cifar10:{tmp_path / 'nowhere'}")
    assert str(error.value) == f"CIFAR-10 folder {tmp_path / 'nowhere'} does not exist; {needs}"
    monkeypatch.chdir(tmp_path)  # a relative path says where it was looked for
    with pytest.raises(UsageError) as error:
        load_dataset("cifar10:nowhere")
    assert str(error.value) == f"CIFAR-10 folder nowhere does not exist (a relative path, read from {tmp_path}); {needs}"


@pytest.mark.parametrize("seed", range(4))
def test_a_cap_counts_readable_images_an_unreadable_one_is_replaced(tmp_path, seed):
    """A capped split used to take its files first and decode them after: a class whose picks
    were all unreadable was refused though it had good images, and a split came out short."""
    root = two_classes(tmp_path / "data", per_class=10)
    for i in range(3):
        (root / "a" / f"bad{i}.png").write_text("garbage")
    ds = load_dataset(str(root), storage_resolution=8, train_images=4, val_images=4, seed=seed)
    assert len(ds.train) == 4 and len(ds.val) == 4
    assert ds.train.labels.tolist() == [0, 0, 1, 1] and ds.val.labels.tolist() == [0, 0, 1, 1]
    assert ds.skipped == (len(ds.warnings[0].split(";")) if ds.skipped else 0)  # each one tried is named
    assert (all_images(ds)[all_labels(ds) == 0][:, 0] == 120).all()  # a's own images only


def test_a_class_named_train_beside_other_classes_is_a_class(tmp_path):
    root = tmp_path / "voc"
    for name, color in (("boat", (1, 2, 3)), ("car", (90, 90, 90)), ("train", (200, 0, 0))):
        for i in range(3):
            flat(root / name / f"{i}.png", color)
    ds = load_dataset(str(root), storage_resolution=8)
    assert ds.classes == ("boat", "car", "train") and len(ds.train) + len(ds.val) == 9


def test_links_that_lead_nowhere_back_up_or_across_are_named(tmp_path):
    root = two_classes(tmp_path / "data", per_class=3)
    flat(root / "c" / "0.png", (0, 200, 0))
    flat(root / "c" / "1.png", (0, 200, 0))
    os.symlink(tmp_path / "not-mounted" / "d", root / "d")  # a class on a disk that is not there
    os.symlink(tmp_path / "gone.png", root / "a" / "extra.png")
    os.symlink("..", root / "a" / "up")  # would label every image a
    os.symlink(root / "b", root / "c" / "b")  # would label b's images c too
    ds = load_dataset(str(root), storage_resolution=8)
    assert ds.classes == ("a", "b", "c") and sorted(all_labels(ds).tolist()) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert ds.warnings == (
        "1 class folder link(s) lead nowhere, so their classes are left out: 'd'",
        "2 linked folder(s) in class folders lead back up to the data folder or into another class's folder "
        "and are not followed: a/up, c/b",
        "1 image link(s) lead nowhere and are not used: a/extra.png",
    )


@pytest.mark.parametrize("case", ["class folder linked to another", "val linked to train", "image linked across classes",
                                  "files linked in their class"])
def test_one_file_reached_by_two_paths_is_named_and_the_data_stays_as_it_was(tmp_path, case):
    """A link (or hard link) that gives one image two labels, puts a training image in
    validation or counts it twice is named by the file's inode: it was silent. The files are
    used as they are (refusing or dropping them changed the fingerprint of folders whose
    studies resumed on them, and of copies that turned hard links into files), and the
    warning is not hashed into the fingerprint."""
    if case == "class folder linked to another":
        root = two_classes(tmp_path / "data")
        os.symlink(root / "a", root / "c")
        expected = "2 image file(s) are also another path's file (a link or a hard link) in two classes, one image, two labels: c/0.png = a/0.png, c/1.png = a/1.png"
    elif case == "val linked to train":
        root = tmp_path / "data"
        two_classes(root / "train")
        (root / "val").mkdir()
        os.symlink(root / "train" / "a", root / "val" / "a")
        expected = ("2 image file(s) are also another path's file (a link or a hard link) in train/ and val/, validated on what is "
                    "trained on: val/a/0.png = train/a/0.png, val/a/1.png = train/a/1.png")
    elif case == "image linked across classes":
        root = two_classes(tmp_path / "data")
        os.link(root / "a" / "1.png", root / "b" / "x.png")
        expected = "1 image file(s) are also another path's file (a link or a hard link) in two classes, one image, two labels: b/x.png = a/1.png"
    else:
        root = two_classes(tmp_path / "data", per_class=3)
        for i in range(3):
            os.symlink(f"{i}.png", root / "a" / f"link{i}.png")
        expected = ("3 image file(s) are also another path's file (a link or a hard link) in one class, counted twice, and the "
                    "automatic split can validate on it: a/link0.png = a/0.png, a/link1.png = a/1.png, a/link2.png = a/2.png")
    ds = load_dataset(str(root), storage_resolution=8)
    assert expected in ds.warnings
    paths = sum(name.endswith(".png") for _, _, names in os.walk(root, followlinks=True) for name in names)
    assert len(ds.files) == paths  # every path used, as before
    unlinked = tmp_path / "copy"  # the same images as plain files: the same fingerprint
    shutil.copytree(root, unlinked, symlinks=False)
    clear_memo()
    assert load_dataset(str(unlinked), storage_resolution=8).fingerprint == ds.fingerprint


def test_a_link_from_a_class_to_val_is_not_followed(tmp_path):
    """train/a/more -> val/ would train on every validation image, labelled a."""
    root = tmp_path / "data"
    two_classes(root / "train")
    two_classes(root / "val")
    os.symlink(root / "val", root / "train" / "a" / "more")
    flat(root / "stray.png", (1, 2, 3))  # beside train/ and val/: not used, and said (not hashed)
    ds = load_dataset(str(root), storage_resolution=8)
    assert (len(ds.train), len(ds.val)) == (4, 4)
    assert ds.warnings == (
        "1 linked folder(s) in class folders lead to a folder of class folders and are not followed: train/a/more",
        "1 image file(s) directly in the data folder are not in a class folder and are not used: stray.png",
    )
    (root / "stray.png").unlink()
    clear_memo()
    assert load_dataset(str(root), storage_resolution=8).fingerprint == ds.fingerprint


@pytest.mark.parametrize("name", ["valid", "validation"])
def test_a_validation_folder_not_named_val_is_refused(tmp_path, name):
    """Read as classes, train/, valid/ and test/ made a classifier of split names; beside other
    class folders they are classes, as before (PASCAL VOC has one named train)."""
    root = tmp_path / "data"
    for split in ("train", name, "test"):
        two_classes(root / split)
    with pytest.raises(UsageError, match=rf"^data folder {root} has train/ and {name}/: name the validation folder val/"):
        load_dataset(str(root), storage_resolution=8)
    for split in ("train", name):
        shutil.rmtree(root / split)
        flat(root / split / "0.png", (9, 9, 9))
        flat(root / split / "1.png", (9, 9, 9))
    flat(root / "cat" / "0.png", (1, 1, 1))
    flat(root / "cat" / "1.png", (1, 1, 1))
    shutil.rmtree(root / "test")
    assert load_dataset(str(root), storage_resolution=8).classes == ("cat", "train", name)


def test_live_warnings_follow_the_folder_past_the_disk_cache_and_the_memo(tmp_path):
    """The warnings added after studies were fingerprinted are worked out at every load: a
    loose image added after the cache was written is said, and one removed is no longer."""
    root = tmp_path / "data"
    two_classes(root / "train")
    two_classes(root / "val")
    cache = tmp_path / "cache"
    assert load_dataset(str(root), storage_resolution=8, cache_dir=cache).warnings == ()
    flat(root / "loose.png", (1, 2, 3))
    said = "1 image file(s) directly in the data folder are not in a class folder and are not used: loose.png"
    assert load_dataset(str(root), storage_resolution=8, cache_dir=cache).warnings == (said,)  # the memo's
    clear_memo()
    again = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    assert again.decoded == 0 and again.warnings == (said,)  # the disk cache's
    (root / "loose.png").unlink()
    clear_memo()
    assert load_dataset(str(root), storage_resolution=8, cache_dir=cache).warnings == ()


def test_a_link_in_a_class_to_its_own_folder_is_walked_once_as_before(tmp_path):
    """a/self -> . where a/ holds b's folder (b -> a/sub): not a link to a folder of class
    folders (it was followed, adding nothing, and the fingerprint must not change)."""
    root = two_classes(tmp_path / "data", per_class=1)
    flat(root / "a" / "sub" / "0.png", (5, 5, 5))
    shutil.rmtree(root / "b")
    os.symlink(root / "a" / "sub", root / "b")
    before = load_dataset(str(root), storage_resolution=8).fingerprint
    os.symlink(".", root / "a" / "self")
    clear_memo()
    after = load_dataset(str(root), storage_resolution=8)
    assert after.fingerprint == before and not any("folder of class folders" in w for w in after.warnings)


def test_a_class_whose_held_out_files_are_unreadable_is_named(tmp_path):
    """The split comes before decoding; a class whose validation files all fail to decode was
    left out of top-1 with only 'skipped 1 unreadable image file(s)' said."""
    root = tmp_path / "data"
    two_classes(root / "train")
    two_classes(root / "val", per_class=1)
    (root / "val" / "a" / "0.png").write_bytes(b"junk")
    ds = load_dataset(str(root), storage_resolution=8)
    assert ds.val.labels.tolist() == [1] and ds.warnings == (
        "class(es) 'a' have no readable validation image (their held-out files are unreadable): top-1 leaves them out",
        "skipped 1 unreadable image file(s): val/a/0.png: not an image Pillow can read",
    )


def test_the_disk_cache_is_not_used_for_files_replaced_with_the_same_size_and_time(tmp_path):
    """cp -p, rsync -a and tar x keep size and mtime: the fingerprint (the same on every machine
    holding the same files) cannot tell, the cache must."""
    root = two_classes(tmp_path / "data", per_class=2)
    cache = tmp_path / "cache"
    before = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    for path in root.glob("a/*.png"):
        stat = path.stat()
        flat(path, (20, 220, 20))  # a PNG of a flat colour: the same size as the red one
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    clear_memo()
    after = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    assert after.fingerprint == before.fingerprint and after.decoded == 4
    assert (all_images(after)[all_labels(after) == 0][:, 1] == 220).all()
    clear_memo()
    assert load_dataset(str(root), storage_resolution=8, cache_dir=cache).decoded == 0  # and then it is
