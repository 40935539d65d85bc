"""The result files of a study folder: the experiment's ranked table (results.csv) and its JSON
summary, written atomically as every item starts and ends, and read back with checks."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import pandas as pd

from scaler.errors import UsageError
from scaler.files import atomic_write_text, environment_summary, json_ready, whole_numbers
from scaler.study.experiment import Record, fingerprint, kind_name, other_kind_in, summary_names
from scaler.study.handle import StudyHandle
from scaler.study.lock import writers_in_turn
from scaler.study.storage import JOURNAL_NAME, storage_label
from scaler.study.trials import records

RESULTS_NAME = "results.csv"
# Counts, written as integers whether or not some rows are still blank (a NaN would make
# pandas write the whole column as floats, 2.0 until every row is finished).
INTEGER_COLUMNS = ("epochs", "repeats")


def summary(handle: StudyHandle, frame: pd.DataFrame, found: list[Record]) -> dict:
    """The JSON summary: name, configuration, storage, environment, and the experiment's own
    fields (best row, counts, seeds) from the table and the records it was made of."""
    experiment = handle.experiment
    return {
        "name": handle.name,
        "kind": kind_name(type(experiment)),
        "fingerprint": fingerprint(experiment.config),
        "config": experiment.config.identity(),
        **experiment.summary(frame, found),
        "states": frame["state"].value_counts().to_dict(),
        "storage": storage_label(handle.storage_url),
        "environment": environment_summary(),
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def csv_text(frame: pd.DataFrame) -> str:
    """results.csv's text of a study's table: the count columns as integers (blank when unknown)."""
    return whole_numbers(frame, INTEGER_COLUMNS).to_csv(index=False)


def write_outputs(handle: StudyHandle) -> pd.DataFrame:
    """Refresh results.csv and the JSON summary in the study folder, each atomically, one
    writing process at a time (`writers_in_turn`): the study read, then both files written."""
    assert handle.folder is not None
    with writers_in_turn(handle.folder):
        found = records(handle)  # the study is read once per write
        frame = handle.experiment.table(found)
        table = csv_text(frame)
        atomic_write_text(handle.folder / RESULTS_NAME, table)
        data = json_ready({**summary(handle, frame, found), "results_sha256": _digest(table.encode())})
        text = json.dumps({**data, SUMMARY_DIGEST: summary_digest(data)}, indent=2)
        atomic_write_text(handle.folder / handle.experiment.summary_name, text)
    return frame


SUMMARY_DIGEST = "summary_sha256"


def summary_digest(data: dict) -> str:
    """The digest a summary carries of its other fields, so that a reader can tell the summary
    a study wrote from one edited or damaged since (its fields are read, not re-derived)."""
    fields = json.loads(json.dumps({k: v for k, v in data.items() if k != SUMMARY_DIGEST}))  # as read back
    return _digest(json.dumps(fields, sort_keys=True).encode())


def summary_intact(data: dict) -> bool:
    """Whether a summary's fields are those its study wrote (summaries from before the digest
    cannot tell, and pass)."""
    return SUMMARY_DIGEST not in data or data[SUMMARY_DIGEST] == summary_digest(data)


def read_outputs(folder: Path, summary_name: str, columns: list[str], numeric: tuple[str, ...] = (),
                 text: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """A study folder's results.csv and JSON summary, checked: expected columns, numbers where
    numbers belong, `text` columns read as written (a strategy called NA stays "NA", an empty
    cell is ""), and a table that agrees with its summary (the digest of the table the study
    wrote; in summaries from before the digest, rows and states). UsageError
    naming the file and the fault otherwise."""
    results, info = folder / RESULTS_NAME, folder / summary_name
    if not info.exists() and (other := other_kind_in(folder, summary_name)):
        raise UsageError(f"{folder} is {other}" + (f"; `scaler report {folder}` shows its results" if results.exists() else ""))
    if not folder.exists():
        raise UsageError(f"{folder} does not exist; give a study folder (one that holds {RESULTS_NAME} and {summary_name})")
    if folder.is_file():  # results.csv itself, given for its folder
        raise UsageError(f"{folder} is a file; give the study folder that holds it ({folder.parent})")
    if not info.exists() and (folder / JOURNAL_NAME).is_file():  # created, but no training has finished (or deleted)
        raise UsageError(f"{folder} holds a study ({JOURNAL_NAME}) but no summary ({' / '.join(summary_names())}): one is "
                         "written as each training finishes; rerun the study's command (same options) to train and write it")
    if not results.exists() or not info.exists():
        lacks = " or ".join(f.name for f in (results, info) if not f.exists())
        raise UsageError(f"{folder} is not a study folder: it holds no {lacks} (a study folder holds {RESULTS_NAME} and {summary_name})")
    rewrite = "rerun the study's command (same options) to rewrite it from the study"
    try:
        raw, data = _read_pair(results, info)
        frame = pd.read_csv(io.BytesIO(raw), converters={"state": str, "reason": str}, keep_default_na=True)
        named = [c for c in text if c in frame.columns]
        if named:  # as written: pandas reads "NA", "null" or "None" as missing even through a converter
            frame[named] = pd.read_csv(io.BytesIO(raw), usecols=named, dtype=str, keep_default_na=False)[named]
        if "reason" in frame.columns:  # an empty cell is "", as the study's own table has it (pandas reads NaN)
            frame["reason"] = frame["reason"].astype(object).where(frame["reason"].notna(), "")
    except json.JSONDecodeError as exc:  # the summary's (the table is read by pandas)
        raise UsageError(f"{info} is not valid JSON: {exc}; {rewrite}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{folder} is not a valid study folder: {str(exc).splitlines()[0]}; {rewrite}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{info} is not a scaler summary; {rewrite}")
    if not summary_intact(data):
        raise UsageError(f"{info} is not the summary the study wrote (its digest differs): edited or damaged; {rewrite}")
    no_columns = [c for c in dict.fromkeys([*columns, "state"]) if c not in frame.columns]
    no_keys = [k for k in ("name", "states") if k not in data]
    lacks = [f"{RESULTS_NAME} lacks the column(s) {', '.join(no_columns)}"] if no_columns else []
    lacks += [f"{summary_name} lacks the key(s) {', '.join(no_keys)}"] if no_keys else []
    if lacks:
        raise UsageError(f"{folder} is not a valid study folder: {'; '.join(lacks)}; {rewrite}")
    for column in (c for c in numeric if c in frame.columns):  # a column an older study lacks is added by its reader
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column].notna() & values.isna()
        if bad.any():
            row = int(bad.idxmax())
            raise UsageError(
                f"{results} line {row + 2}, column {column}: {frame[column][row]!r} is not a number; {rewrite}"
            )
        frame[column] = values
    if "results_sha256" in data and _digest(raw) != data["results_sha256"]:  # older summaries lack it
        raise UsageError(f"{results} disagrees with {info.name} (not the table the study wrote: its digest differs): "
                         f"cut short, edited, or a run stopped between writing the two; {rewrite}")
    counts = {str(k): int(v) for k, v in frame["state"].value_counts().items()}
    recorded = {str(k): int(v) for k, v in dict(data["states"]).items()}
    if counts != recorded:
        raise UsageError(
            f"{results} disagrees with {info.name} (table: {_counts(counts)}; summary: {_counts(recorded)}): "
            f"cut short or edited; {rewrite}"
        )
    return frame, data


# Tries, 0.1 s apart, to read a table and its summary as one pair while a study rewrites them
# (5 were too few on a loaded machine). A pair that truly disagrees (a hand edit) is reported
# after the last, 2 s on.
PAIR_READS = 20


def _read_pair(results: Path, info: Path) -> tuple[bytes, object]:
    """The table's bytes and the parsed summary. A running study replaces the two one after
    the other, so a reader between the renames sees a new table beside the old summary: read
    again (0.1 s apart) until the summary's digest matches; what a study did not write
    (an edit, a cut) still differs on the last try and is reported by the caller."""
    for attempt in range(PAIR_READS):
        raw, data = results.read_bytes(), json.loads(info.read_text())
        if not isinstance(data, dict) or data.get("results_sha256") in (None, _digest(raw)):
            break
        if attempt < PAIR_READS - 1:
            time.sleep(0.1)
    return raw, data


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _counts(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s or '(blank)'}" for s, n in sorted(states.items())) or "no rows"
