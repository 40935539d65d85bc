"""Data sources decode once into uint8 tensors, split and cache correctly; batches are seeded."""

import hashlib
import json
import os
import pickle
import time

import numpy as np
import pytest
import torch
from PIL import Image

from scaler.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SYNTHETIC_CLASSES,
    ImageSplit,
    clear_memo,
    eval_batches,
    load_dataset,
    render_synthetic,
    train_batches,
)
from scaler.data.manifest import MANIFEST_NAME, keep_files, what_changed
from scaler.data.synthetic import SyntheticRenderer
from scaler.errors import RunError, UsageError

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_memo()
    yield
    clear_memo()


def write_png(path, color, size=(20, 14)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(color))
    arr = np.clip(np.array(color)[None, None] + rng.integers(-20, 20, (*size[::-1], 3)), 0, 255)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def make_folder(root, per_class=5, classes=("cat", "dog", "eel")):
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_png(root / name / f"{i}.png", (80 * c, 200 - 60 * c, 30 * i))
    return root


# ---------------------------------------------------------------- synthetic


def test_synthetic_shapes_and_determinism():
    a = load_dataset("synthetic", storage_resolution=32, train_images=20, val_images=10,
                     native_resolution=64)
    assert a.classes == SYNTHETIC_CLASSES and a.num_classes == 10
    assert a.train.images.shape == (20, 3, 32, 32) and a.train.images.dtype == torch.uint8
    assert a.train.images.is_contiguous() and a.train.labels.dtype == torch.int64
    assert len(a.train) == 20 and len(a.val) == 10 and a.decoded == 30 and a.skipped == 0
    assert sorted(a.train.labels.tolist()) == sorted(list(range(10)) * 2)
    clear_memo()
    b = load_dataset("synthetic", storage_resolution=32, train_images=20, val_images=10,
                     native_resolution=64)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.images, b.val.images)
    assert a.fingerprint == b.fingerprint
    c = load_dataset("synthetic", storage_resolution=32, train_images=20, val_images=10,
                     native_resolution=64, seed=1)
    assert c.fingerprint != a.fingerprint
    assert not torch.equal(a.train.images, c.train.images)
    # train and val come from different streams
    assert not torch.equal(a.train.images[:10], a.val.images)


def test_synthetic_render_is_prefix_stable_and_fixed():
    big, labels = render_synthetic(10, seed=3, stream=1, native=64)  # one of each class
    small, _ = render_synthetic(2, seed=3, stream=1, native=64)
    assert np.array_equal(big[:2], small)
    assert labels.tolist() == list(range(10))
    # Integer rendering: these bytes are the same on every machine (and numpy version that
    # keeps PCG64's integer stream); a change here means the data set changed.
    assert hashlib.blake2b(big.tobytes(), digest_size=8).hexdigest() == "ff3f86b4eb7e3fa5"


def test_dots_and_glyphs_contrast_with_where_they_sit():
    renderer = SyntheticRenderer(0, 1, native=64)
    light, dark = np.full((3, 64, 64), 200, np.uint8), np.full((3, 64, 64), 30, np.uint8)
    for _ in range(20):
        assert renderer._contrasting(light, 10, 70).max() < 50  # clipped to the image
        assert renderer._contrasting(dark, 32, 32).min() >= 175


def test_synthetic_memo_and_options_change_fingerprint():
    a = load_dataset("synthetic", storage_resolution=16, train_images=10, val_images=10,
                     native_resolution=32)
    again = load_dataset("synthetic", storage_resolution=16, train_images=10, val_images=10,
                         native_resolution=32)
    assert again.decoded == 0 and again.train.images is a.train.images
    other = load_dataset("synthetic", storage_resolution=32, train_images=10, val_images=10,
                         native_resolution=32)
    assert other.fingerprint != a.fingerprint and other.train.images.shape[-1] == 32


# ---------------------------------------------------------------- folders


def test_folder_auto_split_stratified(tmp_path):
    root = make_folder(tmp_path / "data", per_class=5)
    ds = load_dataset(str(root), storage_resolution=16, val_fraction=0.4)
    assert ds.classes == ("cat", "dog", "eel")
    assert ds.train.images.shape == (9, 3, 16, 16) and len(ds.val) == 6
    assert torch.bincount(ds.val.labels).tolist() == [2, 2, 2]
    assert ds.decoded == 15 and ds.skipped == 0
    # colour survives decoding: class 0 is (0, 200, ...), class 2 is (160, 80, ...)
    means = ds.train.images.float().mean(dim=(2, 3))
    assert means[ds.train.labels == 0, 0].max() < 40
    assert means[ds.train.labels == 2, 0].min() > 120
    capped = load_dataset(str(root), storage_resolution=16, val_fraction=0.4, train_images=3,
                          val_images=3)
    assert torch.bincount(capped.train.labels).tolist() == [1, 1, 1]
    assert len(capped.val) == 3 and capped.fingerprint != ds.fingerprint


def test_classes_training_leaves_out_are_warned_with_the_top1_they_cap(tmp_path):
    """Fewer training images than classes: the classes without one cannot be learned, and
    top-1 cannot exceed the share of validation images of the others. Enough images for
    every class: no warning."""
    few = load_dataset("synthetic", storage_resolution=16, train_images=4, val_images=20, native_resolution=32)
    left_out = ", ".join(SYNTHETIC_CLASSES[4:7])
    assert few.warnings == (
        f"6 of the 10 classes ({left_out} and 3 more) have no training image among the 4: no network can "
        "learn them, so top-1 cannot exceed 40.0%; more training images would cover them",
    )
    both = load_dataset("synthetic", storage_resolution=16, train_images=3, val_images=2, native_resolution=32)
    assert both.warnings == (
        f"7 of the 10 classes ({', '.join(SYNTHETIC_CLASSES[3:6])} and 4 more) have no training image among the 3: "
        "no network can learn them, and validation has none of them either; more training images would cover them",
    )
    # a folder whose one-image class a cap leaves out of training: validation's other half is the ceiling
    root = tmp_path / "data"
    for i in range(5):
        write_png(root / "train" / "big" / f"{i}.png", (200, 0, 10 * i))
    write_png(root / "train" / "tiny" / "0.png", (0, 0, 0))
    for name, color in (("big", (200, 0, 0)), ("tiny", (0, 0, 0))):
        write_png(root / "val" / name / "0.png", color)
    capped = load_dataset(str(root), storage_resolution=12, train_images=3)
    assert capped.warnings == (
        "1 of the 2 classes (tiny) have no training image among the 3: no network can learn them, "
        "so top-1 cannot exceed 50.0%; more training images would cover them",
    )
    assert load_dataset("synthetic", storage_resolution=16, train_images=10, val_images=10, native_resolution=32).warnings == ()


def test_folder_train_val_subfolders(tmp_path):
    root = tmp_path / "data"
    for split, n in (("train", 3), ("val", 2)):
        for c, name in enumerate(("a", "b")):
            for i in range(n):
                write_png(root / split / name / f"{i}.png", (200 * c, 50, 10 * i), size=(30, 18))
    ds = load_dataset(str(root), storage_resolution=12)
    assert ds.classes == ("a", "b") and len(ds.train) == 6 and len(ds.val) == 4
    assert ds.train.images.shape[1:] == (3, 12, 12)


def test_folder_skips_corrupt_files(tmp_path):
    root = make_folder(tmp_path / "data", per_class=4, classes=("a", "b"))
    (root / "a" / "broken.png").write_bytes(b"this is not a png at all")
    ds = load_dataset(str(root), storage_resolution=8, val_fraction=0.25)
    assert ds.skipped == 1
    assert len(ds.train) + len(ds.val) == 8


@pytest.mark.parametrize("case", ["missing", "empty", "one_class", "empty_class",
                                  "unreadable_class", "bad_fraction", "unknown"])
def test_folder_errors(tmp_path, case):
    root = tmp_path / "data"
    kwargs = {}
    if case == "missing":
        source, match = str(root), "does not exist"
    elif case == "unknown":
        source, match = "imagenet:xyz", "does not exist"
    elif case == "empty":
        root.mkdir()
        source, match = str(root), "no class sub-folders"
    elif case == "one_class":
        make_folder(root, per_class=2, classes=("only",))
        source, match = str(root), "at least 2"
    elif case == "empty_class":
        make_folder(root, per_class=2, classes=("a", "b"))
        (root / "hollow").mkdir()
        source, match = str(root), "'hollow' has no images"
    elif case == "unreadable_class":
        make_folder(root, per_class=2, classes=("a", "b"))
        (root / "junk").mkdir()
        (root / "junk" / "x.png").write_bytes(b"garbage")
        source, match = str(root), "'junk' has no readable"
    else:
        make_folder(root, per_class=2, classes=("a", "b"))
        source, match, kwargs = str(root), "val fraction = 1.0 is not allowed", {"val_fraction": 1.0}
    with pytest.raises(UsageError, match=match):
        load_dataset(source, storage_resolution=8, **kwargs)


def test_disk_cache_reused_and_invalidated(tmp_path):
    root = make_folder(tmp_path / "data", per_class=3, classes=("a", "b"))
    cache = tmp_path / "cache"
    cache.mkdir()
    killed, writing = cache / f".{'0' * 32}.pt.x1.tmp", cache / f".{'4' * 32}.pt.x2.tmp"  # a killed writer's, another's now
    foreign = cache / ".download.tmp"  # another program's: the cache folder may be /tmp or ~/.cache
    for old, content in ((killed, b"half a cache"), (writing, b"a part"), (foreign, b"not ours")):
        old.write_bytes(content)
    os.utime(killed, (time.time() - 7200, time.time() - 7200))
    os.utime(foreign, (time.time() - 7200, time.time() - 7200))
    os.utime(writing, (time.time() - 600, time.time() - 600))  # flushing gigabytes takes a while
    first = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    assert first.decoded == 6 and (cache / f"{first.fingerprint}.pt").is_file()
    assert sorted(p.name for p in cache.iterdir() if p.suffix != ".pt") == sorted([writing.name, foreign.name])
    umask = os.umask(0o022)
    os.umask(umask)
    assert (cache / f"{first.fingerprint}.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # a shared cache is readable (was 0600)
    clear_memo()
    second = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    assert second.decoded == 0 and second.fingerprint == first.fingerprint
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.val.labels, second.val.labels)
    write_png(root / "a" / "0.png", (255, 0, 0), size=(22, 22))
    st = os.stat(root / "a" / "0.png")
    os.utime(root / "a" / "0.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_dataset(str(root), storage_resolution=8, cache_dir=cache)
    assert third.fingerprint != first.fingerprint and third.decoded == 6


def test_result_files_take_the_umask_in_force_when_written(tmp_path):
    """Files written atomically get the permissions a new file would get now (the umask was
    read once, at import: a process that tightened it later still wrote 0644)."""
    from scaler.files import atomic_write_text

    before = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.json", "{}")
    finally:
        os.umask(before)
    atomic_write_text(tmp_path / "shared.json", "{}")
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o666 & ~before


def test_a_study_s_kept_files_name_what_changed(tmp_path):
    """`keep_files` keeps the files a study runs on, once per fingerprint; `what_changed` names
    what differs from them, a few per kind, and says so where the files are as they were (the
    fingerprint also reads the layout's warnings) or where nothing was kept."""
    root = make_folder(tmp_path / "data", per_class=3, classes=("a", "b"))
    study = tmp_path / "study"
    study.mkdir()
    first = load_dataset(str(root), storage_resolution=8)
    assert what_changed(study, first) is None and what_changed(None, first) is None  # nothing kept
    keep_files(study, first)
    kept = (study / MANIFEST_NAME).read_text()
    assert [tuple(f) for f in json.loads(kept)["files"]] == list(first.files) and len(first.files) == 6
    assert first.files[0] == ("a/0.png", (root / "a" / "0.png").stat().st_size, (root / "a" / "0.png").stat().st_mtime_ns)
    write_png(root / "stray.png", (1, 2, 3))  # beside the class folders: warned of, and in the fingerprint
    loose = load_dataset(str(root), storage_resolution=8)
    assert loose.fingerprint != first.fingerprint and loose.files == first.files
    assert what_changed(study, loose) == (f"the image files of {root} are as they were (names, sizes, times): what changed is "
                                          "around them (a file or folder its warnings name) or how they are read (a newer scaler)")
    for i in range(5):
        write_png(root / "b" / f"x{i}.png", (9, 9, 9))
    grown = load_dataset(str(root), storage_resolution=8)
    assert what_changed(study, grown) == f"in {root}, 5 file(s) added (b/x0.png, b/x1.png, b/x2.png and 2 more)"
    written = (study / MANIFEST_NAME).stat().st_mtime_ns
    keep_files(study, first)
    assert (study / MANIFEST_NAME).stat().st_mtime_ns == written  # the same fingerprint: not written again
    keep_files(study, grown)  # another fingerprint (the engine calls it only for the study's own): replaced
    assert len(json.loads((study / MANIFEST_NAME).read_text())["files"]) == 11 and what_changed(study, grown).startswith("the image files")
    synthetic = load_dataset("synthetic", storage_resolution=16, train_images=10, val_images=10, native_resolution=32)
    assert what_changed(study, synthetic) == "the built-in synthetic data redrawn by a newer scaler"
    keep_files(tmp_path, synthetic)
    assert not (tmp_path / MANIFEST_NAME).exists()  # rendered data has no files to keep


# ---------------------------------------------------------------- CIFAR-10


def write_cifar(root, per_batch=10):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
             "test_batch"]
    for name in names:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        data[:, :1024] = np.array(labels, dtype=np.uint8)[:, None] * 20  # red plane = label
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return root


def test_cifar10(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    ds = load_dataset(f"cifar10:{root}", storage_resolution=128)
    assert ds.classes == tuple(f"c{i}" for i in range(10))
    assert ds.train.images.shape == (50, 3, 32, 32) and len(ds.val) == 10
    assert torch.equal(ds.train.images[:, 0, 5, 5].long(), ds.train.labels * 20)
    small = load_dataset(f"cifar10:{root}", storage_resolution=16, train_images=10, val_images=5)
    assert small.train.images.shape == (10, 3, 16, 16) and len(small.val) == 5
    assert sorted(small.train.labels.tolist()) == list(range(10))


def test_cifar10_missing_file(tmp_path):
    root = write_cifar(tmp_path / "cifar")
    (root / "data_batch_3").unlink()
    with pytest.raises(UsageError, match="data_batch_3"):
        load_dataset(f"cifar10:{root}")



def test_a_cifar10_meta_naming_other_than_10_classes_is_refused_as_such(tmp_path):
    """The networks are built for CIFAR-10's 10 classes before the files are read: a meta with
    12 names was refused as 'a class was added since the study started', of a new study."""
    root = write_cifar(tmp_path / "cifar")
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(12)]}, f)
    with pytest.raises(UsageError, match=r"batches\.meta names 12 classes; CIFAR-10 has 10$"):
        load_dataset(f"cifar10:{root}")


def test_a_cache_write_that_fails_inside_torch_save_is_named(tmp_path, monkeypatch):
    """torch.save's writer reports a full disk as a RuntimeError ('[enforce fail at
    inline_container.cc] unexpected pos'); it read as that, with exit 1 and no cause."""
    import shutil

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1280 vs 1174")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 100, 100))
    with pytest.raises(RunError, match=rf"^cannot write the data cache {tmp_path}/\w+\.pt: no space left on its disk$"):
        load_dataset("synthetic", storage_resolution=16, train_images=20, val_images=10, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # the temporary file removed
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 0, 10**12))
    clear_memo()
    with pytest.raises(RunError, match=r"\.pt: \[enforce fail at inline_container\.cc:672\] \. unexpected pos"):
        load_dataset("synthetic", storage_resolution=16, train_images=20, val_images=10, cache_dir=tmp_path)


@pytest.mark.parametrize("labels", [None, ["x"] * 10])
def test_a_cifar10_batch_without_integer_labels_is_named(tmp_path, labels):
    root = write_cifar(tmp_path / "cifar")
    with open(root / "data_batch_3", "rb") as f:
        blob = pickle.load(f)
    with open(root / "data_batch_3", "wb") as f:
        pickle.dump({**{k: v for k, v in blob.items() if k != b"labels"}, **({b"labels": labels} if labels else {})}, f)
    with pytest.raises(UsageError, match=r"data_batch_3 is not a python CIFAR-10 batch \(needs b'data' uint8 "
                                         r"\[N, 3072\] and b'labels' \[N\]\)$"):
        load_dataset(f"cifar10:{root}")


# ---------------------------------------------------------------- batches


def toy_split(n=10, size=24):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return ImageSplit(images, torch.arange(n, dtype=torch.int64) % 3)


def test_train_batches_shapes_and_determinism():
    split = toy_split()
    run = lambda seed: list(train_batches(split, batch_size=4, resolution=16,  # noqa: E731
                                          generator=torch.Generator().manual_seed(seed),
                                          device=CPU))
    a, b, c = run(0), run(0), run(1)
    assert len(a) == 2  # drop_last: 10 // 4
    x, y = a[0]
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.is_contiguous(memory_format=torch.channels_last)
    lo = (0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    hi = (1 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert x.min() >= lo.min() - 1e-4 and x.max() <= hi.max() + 1e-4
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], c[0][0])


def test_an_epoch_draws_all_its_randomness_before_its_first_batch():
    # On a GPU a draw from the CPU generator per batch, copied to the device, makes the host
    # wait for the device at every step; so the generator must be left alone once batches flow.
    g = torch.Generator().manual_seed(0)
    batches = train_batches(toy_split(n=20), batch_size=4, resolution=16, generator=g, device=CPU)
    next(batches)
    state = g.get_state()
    assert len(list(batches)) == 4
    assert torch.equal(g.get_state(), state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_epoch_never_waits_for_the_device_between_batches():
    split = toy_split(n=64).to("cuda")
    batches = train_batches(split, batch_size=8, resolution=16, device=torch.device("cuda"),
                            generator=torch.Generator().manual_seed(0))
    next(batches)  # the epoch's one copy of its draws happens here
    torch.cuda.set_sync_debug_mode("error")
    try:
        assert len(list(batches)) == 7
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_train_batches_labels_stay_with_their_images():
    # Image i is flat grey 20 * i + 5, so any crop, flip or resize keeps it flat and the grey
    # level read back from a batch says which image it is: it must match the label it came with.
    n = 10
    images = (torch.arange(n, dtype=torch.uint8) * 20 + 5).view(n, 1, 1, 1).expand(n, 3, 24, 24)
    split = ImageSplit(images.contiguous(), torch.arange(n, dtype=torch.int64))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    seen = []
    for x, y in train_batches(split, batch_size=4, resolution=16, device=CPU,
                              generator=torch.Generator().manual_seed(0)):
        grey = (x * std + mean) * 255
        expected = (y * 20 + 5).float().view(-1, 1, 1, 1).expand_as(grey)
        assert torch.allclose(grey, expected, atol=0.01)
        seen += y.tolist()
    assert len(seen) == 8 and len(set(seen)) == 8  # drop_last, each image at most once
    assert seen != sorted(seen)  # the epoch really was shuffled


def test_train_batches_labels_follow_images_and_flip():
    # Each image is dark on the left, bright on the right, with a per-label colour offset, so
    # any crop keeps the label readable and a flip shows as bright-left.
    n, size = 3, 16
    images = torch.zeros((n, 3, size, size), dtype=torch.uint8)
    images[:, :, :, size // 2:] = 200
    images[:, 1] += (torch.arange(n, dtype=torch.uint8) * 20).view(n, 1, 1)
    split = ImageSplit(images, torch.arange(n, dtype=torch.int64))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    flips = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        batches = list(train_batches(split, batch_size=8, resolution=8, scale=(0.9, 1.0),
                                     generator=g, device=CPU, channels_last=False))
        assert len(batches) == 1  # split smaller than a batch: one partial batch
        x, y = batches[0]
        pixels = (x * std + mean) * 255
        assert torch.allclose(pixels[:, 1] - pixels[:, 0], (y * 20).float().view(-1, 1, 1),
                              atol=0.5)
        left, right = pixels[..., :2].mean(dim=(1, 2, 3)), pixels[..., -2:].mean(dim=(1, 2, 3))
        flips.update((left > right).tolist())
    assert flips == {True, False}


def test_eval_batches_centre_crop_and_order():
    split = toy_split(n=5, size=16)
    batches = list(eval_batches(split, batch_size=2, resolution=14, device=CPU))
    assert [len(y) for _, y in batches] == [2, 2, 1]
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels)
    x = batches[0][0]
    assert x.shape == (2, 3, 14, 14)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    back = (x * std + mean) * 255  # crop 14 of 16 = resolution: no resize at all
    assert torch.allclose(back, split.images[:2, :, 1:15, 1:15].float(), atol=1e-3)


def test_class_objects_fade_between_invisible_and_full_contrast(monkeypatch):
    """Format 5: each class object is blended with what lies under it. Rendered from the same
    seed at visibility 0, half and full (every draw the same), the half-visible image equals
    the others where no object is and lies between them where one is."""
    renders = {}
    for w in (0, 128, 256):
        monkeypatch.setattr(SyntheticRenderer, "VISIBILITY", (w, w))
        renders[w], _ = render_synthetic(10, seed=2, stream=1, native=64)
    under, half, full = (renders[w].astype(np.int32) for w in (0, 128, 256))
    drawn = under != full
    assert drawn.any(axis=(1, 2, 3)).all()  # every class drew its object
    assert (half[~drawn] == under[~drawn]).all()
    low, high = np.minimum(under, full), np.maximum(under, full)
    assert ((half >= low - 1) & (half <= high + 1)).all()  # within rounding of the blend
    assert (np.abs(half[drawn] - (under[drawn] + full[drawn]) / 2) <= 1).all()
    # Full visibility draws nothing more: format 4's images, byte for byte (its golden hash).
    monkeypatch.setattr(SyntheticRenderer, "VISIBILITY", (256, 256))
    format4, _ = render_synthetic(10, seed=3, stream=1, native=64)
    assert hashlib.blake2b(format4.tobytes(), digest_size=8).hexdigest() == "9c67d263b769d3db"
