"""`scaler candidates`: what a search would train, with params and MACs, without training."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from scaler.candidates import ProxyBase, build_candidates, left_out_text, merged_points
from scaler.cli import options
from scaler.cli.app import Format, app, console, progress_console
from scaler.cli.options import DEFAULT_BASE, DEFAULT_DATA, SPACE_OPTIONS, Base, BaseResolution, BaseWidth, Data, FormatOption
from scaler.data.options import DataOptions
from scaler.cli.results import PRODUCT_HEADER
from scaler.cli.render import Column, counted, emit, fixed, integer, text


CANDIDATE_COLUMNS = [
    Column("candidate", "#", integer),
    Column("alpha", "alpha", fixed(2)),
    Column("beta", "beta", fixed(2)),
    Column("gamma", "gamma", fixed(4)),
    Column("product", PRODUCT_HEADER, fixed(4)),
    Column("depth_mult", "d", fixed(3)),
    Column("width_mult", "w", fixed(3)),
    Column("resolution", "r", integer),
    Column("params", "params", integer),
    Column("macs", "MACs M", lambda v: f"{v / 1e6:.2f}"),
    Column("macs_ratio", "MACs ratio", fixed(3)),
    Column("target_ratio", "T^phi", fixed(3)),  # the MACs ratio every candidate aims at
]
# Shown where some points of the ranges build a candidate's network (csv and json always have it).
SAME_NETWORK = Column("same_network", "same network as", text)


@app.command(
    epilog="Examples:  scaler candidates · scaler candidates --mode surface --alpha-range 1:1.6:0.1 --beta-range 1:1.3:0.05 · "
    "scaler candidates --data ./my-images --base-resolution 96 · scaler candidates --format csv > candidates.csv"
)
@options.with_options(SPACE_OPTIONS)
def candidates(
    base: Base = DEFAULT_BASE.variant,
    base_resolution: BaseResolution = DEFAULT_BASE.resolution,
    base_width: BaseWidth = DEFAULT_BASE.width,
    data: Data = DEFAULT_DATA.source,
    classes: Annotated[Optional[int], typer.Option(help="Classes of the proxy's classifier (default: as many as --data has, as a search does).")] = None,
    format: FormatOption = Format.table,
    **flags: Any,
) -> None:
    """List the candidates a search would train, with params and MACs, without training."""
    import pandas as pd

    flops_tolerance = flags.pop("flops_tolerance")
    space = options.space(**flags)
    data_classes = DataOptions(data).classes()  # checks --data even where --classes sets the count
    proxy = ProxyBase(base, base_resolution, base_width, data_classes if classes is None else classes)
    with progress_console.status("counting candidates with fvcore...") as status:

        def counted_so_far(done: int, total: int) -> None:
            status.update(f"counting candidates with fvcore: {done:,} of {total:,} points")

        found = build_candidates(space, proxy, flops_tolerance, on_counted=counted_so_far)
    options.say_notes()  # every option accepted: what they do not use
    # "candidate", as a search's results.csv names the same number
    frame = pd.DataFrame([{**c.to_dict(), "same_network": c.same_network} for c in found]).rename(columns={"index": "candidate", "nominal_ratio": "target_ratio"})
    title = f"{counted(len(found), 'candidate')} ({space.mode}, T={space.target:g}, phi={space.phi:g}) on {base} w{base_width:g} at {base_resolution}px"
    merged, left = merged_points(found), left_out_text(space, found, flops_tolerance)
    if left:
        title += f"; left out: {left}"
    emit(frame, [*CANDIDATE_COLUMNS, SAME_NETWORK] if merged or format in (Format.csv, Format.json) else CANDIDATE_COLUMNS, format.value, console, title=title)
    if left and format in (Format.csv, Format.json):  # a document has no title: what it leaves out goes beside it
        print(f"left out: {left}", file=sys.stderr)
