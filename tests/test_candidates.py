"""Enumerating (alpha, beta, gamma) under alpha * beta^2 * gamma^2 ~= T, and counting them."""

import json
import re
import math
import pickle
from dataclasses import replace

import pytest
from PIL import Image

from scaler import network_spec
from scaler.candidates import Candidate, CandidateSpace, ProxyBase, Range, build_candidates, left_out_text, merged_points, parse_range
from scaler.counting import count_model
from scaler.errors import UsageError
from scaler.scaling import ScaleLimitError, compound_scale

TINY = ProxyBase("b0", resolution=32, width=0.25, num_classes=10)


def test_default_grid_satisfies_constraint_and_finer_grid_has_papers_point():
    space = CandidateSpace()
    points = space.coefficients()
    for a, b, g in points:
        assert min(a, b, g) >= 1.0
        assert abs(a * b * b * g * g - space.target) <= space.tolerance + 1e-12
    assert len(points) == len(set(points))
    # what README describes: each dimension alone and each pair
    assert points == [(1.0, 1.0, 1.4), (1.0, 1.2, 1.2), (1.0, 1.4, 1.0), (1.4, 1.0, 1.2),
                      (1.4, 1.2, 1.0), (2.0, 1.0, 1.0)]
    finer = CandidateSpace(beta=Range(1.0, 1.4, 0.1), gamma=Range(1.0, 1.4, 0.05)).coefficients()
    assert len(finer) == 19 and (1.2, 1.1, 1.15) in finer
    # the bounds are included (README): |1.9 - 2| is 0.1 up to float noise, and (1.9, 1, 1) is kept
    on_bound = CandidateSpace(alpha=Range(1.9, 1.9, 1.0), beta=Range(1.0, 1.0, 1.0), gamma=Range(1.0, 1.0, 1.0))
    assert on_bound.coefficients() == [(1.9, 1.0, 1.0)]


def test_grid_matches_brute_force_enumeration():
    space = CandidateSpace(alpha=Range(1.0, 2.0, 0.1), beta=Range(1.0, 1.5, 0.05), gamma=Range(1.0, 1.5, 0.05), tolerance=0.05)
    alphas = [1.0 + i / 10 for i in range(11)]
    others = [1.0 + i / 20 for i in range(11)]
    expected = [
        (round(a, 6), round(b, 6), round(g, 6))
        for a in alphas for b in others for g in others
        if abs(a * b * b * g * g - 2) <= 0.05 + 1e-12
    ]  # fmt: skip
    assert space.coefficients() == expected


def test_surface_mode_solves_gamma_exactly_and_drops_gamma_below_one():
    space = CandidateSpace(mode="surface", alpha=Range(1.0, 2.2, 0.2), beta=Range(1.0, 1.4, 0.1), gamma=Range(1.0, 1.5, 0.05))
    points = space.coefficients()
    assert points
    for a, b, g in points:
        assert a * b * b * g * g == pytest.approx(2.0, abs=1e-12)
        assert g >= 1.0
    # alpha = 2.2 needs gamma < 1 for every beta: dropped.
    assert not any(a == 2.2 for a, _, _ in points)
    assert (1.0, 1.0, math.sqrt(2.0)) in points


@pytest.mark.parametrize(
    "space, words",
    [
        (CandidateSpace(alpha=Range(1.0, 1.0, 0.1), beta=Range(1.0, 1.0, 0.1), gamma=Range(1.0, 1.1, 0.1)), "tolerance"),
        (CandidateSpace(mode="surface", alpha=Range(2.5, 3.0, 0.5), beta=Range(1.0, 1.1, 0.1)), "gamma"),
    ],
)
def test_empty_set_names_the_constraint(space, words):
    with pytest.raises(UsageError, match=words):
        space.coefficients()


@pytest.mark.parametrize("text", ["1.0:2.0", "a:b:c", "0.9:2:0.1", "2:1:0.1", "1:2:0", "1:2:-0.1", "1:1.0003:1e-7",
                                  "1.0000005:1.0000305:1e-6", "1:1.1:0.0100005"])  # fmt: skip
def test_bad_ranges(text):
    with pytest.raises(UsageError):
        parse_range(text, "alpha")


def test_single_value_range():
    assert parse_range("1.2", "alpha").values() == [1.2]
    assert parse_range("1.0:1.3:0.1", "beta").values() == [1.0, 1.1, 1.2, 1.3]
    finest = parse_range("1:1.000003:1e-6", "gamma").values()  # values kept to 6 places: still distinct
    assert finest == [1.0, 1.000001, 1.000002, 1.000003]
    # a start past 6 places would round onto its neighbours (1.000001 twice, 1.000002 never): refused
    with pytest.raises(UsageError, match=r"give start and step to at most 6 decimals"):
        parse_range("1.0000005:1.0000305:1e-6", "alpha")


def test_a_base_resolution_off_the_multiple_of_4_is_kept_where_gamma_does_not_scale_it():
    """Scaled resolutions round to multiples of 4; the base's own does not (it is counted as
    given), so a gamma-1 candidate runs at the base's resolution and its MACs ratio is depth's alone."""
    base = ProxyBase("b0", resolution=66, width=0.25, num_classes=10)
    space = CandidateSpace(alpha=Range(2.0, 2.0, 1.0), beta=Range(1.0, 1.0, 1.0), gamma=Range(1.0, 1.1, 0.1), tolerance=0.5)
    deep, both = build_candidates(space, base)
    assert (deep.gamma, deep.resolution) == (1.0, 66) and both.resolution == 4 * math.floor(66 * 1.1 / 4 + 0.5) == 72
    assert deep.macs_ratio == count_model(base.spec(1.0, 2.0), 66).macs / count_model(base.spec(), 66).macs


def test_a_point_of_the_ranges_past_a_limit_is_named_not_blamed_on_phi():
    space = CandidateSpace(mode="surface", target=64, alpha=Range(16.0, 17.0, 1.0), beta=Range(1.0, 1.0, 1.0), gamma=Range(1.0, 2.0, 0.1))
    with pytest.raises(UsageError, match=r"^candidate \(17, 1, 1\.94\) of the ranges: phi 1 gives depth 17\^1 = 17, more than 16; "
                                         r"narrow the ranges or lower phi$") as caught:
        build_candidates(space, TINY)
    assert caught.value.param is None  # a front end does not prefix it with --phi
    # compound_scale itself keeps the fault apart from its advice, which named phi alone
    with pytest.raises(ScaleLimitError) as limit:
        compound_scale(17.0, 1.0, 1.0, 1.0)
    assert (limit.value.fault, limit.value.advice) == ("phi 1 gives depth 17^1 = 17, more than 16", "lower phi or alpha")
    # one step past the limit is the coefficient's fault; more steps, phi's
    assert str(limit.value) == f"{limit.value.fault}; {limit.value.advice}" and limit.value.param == "alpha"
    with pytest.raises(ScaleLimitError) as many_steps:
        compound_scale(1.0, 2.0, 1.0, 5.0)
    assert many_steps.value.param == "phi" and pickle.loads(pickle.dumps(many_steps.value)).param == "phi"
    assert pickle.loads(pickle.dumps(limit.value)).param == "alpha"
    # the base's own width (--base-width) times beta^phi: named with its parts (it read 'width = 20.0 is not allowed')
    wide = ProxyBase("b0", resolution=32, width=4.0, num_classes=10)
    fifth = CandidateSpace(alpha=Range(1.0, 1.0, 1.0), beta=Range(5.0, 5.0, 1.0), gamma=Range(1.0, 1.0, 1.0), target=25, tolerance=1)
    with pytest.raises(UsageError, match=r"^candidate \(1, 5, 1\) of the ranges: phi 1 gives width 4 \(the base's\) x 5\^1 = 20, more than "
                                         r"16; narrow the ranges or lower phi, or give a smaller --base-width$"):
        build_candidates(fifth, wide)
    # and the base's own depth (B7's 3.1) times alpha^phi
    deep = CandidateSpace(alpha=Range(2.0, 2.0, 1.0), beta=Range(1.0, 1.0, 1.0), gamma=Range(1.0, 1.0, 1.0), phi=3, target=2, tolerance=0.1)
    with pytest.raises(UsageError, match=r"^candidate \(2, 1, 1\) of the ranges: phi 3 gives depth 3\.1 \(the base's\) x 2\^3 = 24\.8, more "
                                         r"than 16; narrow the ranges or lower phi$"):
        build_candidates(deep, ProxyBase("b7", resolution=32, width=0.25, num_classes=10))


def test_points_that_build_the_same_network_are_one_candidate():
    """Depth rounds up per stage, width to channels, resolution to a multiple of 4: several
    points can build one network. They are one candidate, the point nearest the constraint
    (then the first), naming the others; training them apart ranked a network against itself."""
    base = ProxyBase("b0", resolution=64, width=0.5, num_classes=10)
    space = CandidateSpace(alpha=parse_range("1.1:1.25:0.05", "alpha"), beta=parse_range("1.15", "beta"),
                           gamma=parse_range("1.1:1.15:0.05", "gamma"))  # five points within the tolerance
    (only,) = build_candidates(space, base)
    assert (only.index, only.alpha, only.beta, only.gamma, only.product) == (0, 1.25, 1.15, 1.1, 2.00028125)
    assert only.same_network == "(1.1, 1.15, 1.15); (1.15, 1.15, 1.15); (1.2, 1.15, 1.1); (1.2, 1.15, 1.15)"
    for alpha, gamma in ((1.1, 1.15), (1.15, 1.15), (1.2, 1.1), (1.2, 1.15)):  # each would build exactly it
        scale, count = base.scaled(alpha, 1.15, gamma, 1.0)
        assert (scale.resolution, count.params, count.macs) == (only.resolution, only.params, only.macs) == (72, 2_289_352, 32_485_728)
    assert merged_points([only]) == 4
    # stored as before where nothing merged (an older scaler reads it), and read back either way
    assert "same_network" in only.to_dict() and Candidate(**only.to_dict()) == only
    plain = replace(only, same_network="")
    assert "same_network" not in plain.to_dict() and Candidate(**plain.to_dict()) == plain
    # on the surface every product is T: the first point stays, (2, 1, 1) builds 1.8's network
    small = ProxyBase("b0", resolution=32, width=0.25, num_classes=10)
    counting = []  # what `scaler candidates` shows behind its spinner: points counted of all
    found = build_candidates(CandidateSpace(mode="surface"), small, on_counted=lambda done, total: counting.append((done, total)))
    assert counting == [(done, 8) for done in range(8)]  # every point, the merged one too
    assert [c.index for c in found] == list(range(7)) and [c.same_network for c in found] == [""] * 6 + ["(2, 1, 1)"]
    assert (found[-1].alpha, found[-1].resolution) == (1.8, 32)
    assert len(build_candidates(CandidateSpace(), base)) == 6  # the default set: six distinct networks


def test_candidates_are_counted_with_fvcore():
    space = CandidateSpace(alpha=Range(1.0, 1.2, 0.2), beta=Range(1.0, 1.1, 0.1), gamma=Range(1.0, 1.2, 0.1), tolerance=0.5)
    found = build_candidates(space, TINY)
    base_macs = count_model(TINY.spec(), 32).macs
    assert [c.index for c in found] == list(range(len(found)))
    for c in found:
        spec = TINY.spec(c.width_mult, c.depth_mult)
        count = count_model(spec, c.resolution)
        assert (c.params, c.macs) == (count.params, count.macs)
        assert c.macs_ratio == pytest.approx(c.macs / base_macs)
        assert c.resolution == 4 * math.floor(32 * c.gamma / 4 + 0.5)
        assert c.nominal_ratio == 2.0
    # the proxy base's width applies before the candidate's
    assert TINY.spec(1.1, 1.2) == network_spec("b0", width=0.25 * 1.1, depth=1.2, num_classes=10)
    # at phi = 2 every multiplier is squared and the nominal FLOPs grow by T^2
    for c in build_candidates(CandidateSpace(alpha=space.alpha, beta=space.beta, gamma=space.gamma, tolerance=0.5, phi=2), TINY):
        assert c.nominal_ratio == 4.0
        assert (c.depth_mult, c.width_mult) == (pytest.approx(c.alpha**2), pytest.approx(c.beta**2))
        assert c.resolution == 4 * math.floor(32 * c.gamma**2 / 4 + 0.5)


def test_flops_tolerance_drops_strays():
    space = CandidateSpace(alpha=Range(1.0, 1.2, 0.2), beta=Range(1.0, 1.1, 0.1), gamma=Range(1.0, 1.2, 0.1), tolerance=0.5)
    every = build_candidates(space, TINY)
    kept = build_candidates(space, TINY, flops_tolerance=0.3)
    assert len(kept) < len(every)
    assert all(abs(c.macs_ratio / 2.0 - 1) <= 0.3 for c in kept)
    with pytest.raises(UsageError, match="flops-tolerance"):
        build_candidates(space, TINY, flops_tolerance=1e-6)
    # said, not silent: the candidates were renumbered over the points kept
    dropped = len(space.coefficients()) - len(kept) - merged_points(kept)
    strays = [c for c in every if abs(c.macs_ratio / 2.0 - 1) > 0.3]  # with the points that build their networks
    assert dropped == len(strays) + merged_points(strays) > 0
    assert left_out_text(space, kept, 0.3).endswith(f"{dropped} point(s) dropped by --flops-tolerance 0.3 (measured MACs ratio off 2.000 by more)")
    assert "dropped" not in left_out_text(space, every, None)


def test_candidates_command(cli):
    args = ["candidates", "--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1:1.2:0.1",
            "--tolerance", "0.5", "--base-resolution", "32", "--base-width", "0.25"]  # fmt: skip
    result = cli(*args, "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert {"alpha", "beta", "gamma", "params", "macs", "macs_ratio", "resolution"} <= set(rows[0])
    # the product as a person writes it, not with the float noise of beta^2 * gamma^2
    assert sorted(r["product"] for r in rows) == [1.728, 1.7424, 1.75692, 2.09088]
    table = cli(*args)
    assert table.code == 0 and "MACs ratio" in table.out
    # what --flops-tolerance leaves out: in the table's title, beside a document on stderr
    strict = [cli(*args, "--flops-tolerance", "0.3", *extra) for extra in ((), ("--format", "csv"))]
    assert "point(s) dropped by --flops-tolerance 0.3" in " ".join(strict[0].out.split())
    assert re.fullmatch(r"left out: \d+ point\(s\) dropped by --flops-tolerance 0.3 \(measured MACs ratio off 2.000 by more\)\n", strict[1].err)
    assert result.err == ""  # nothing left out, nothing said
    bad = cli("candidates", "--tolerance", "0")
    assert bad.code == 2 and "tolerance" in bad.err
    empty = cli("candidates", "--alpha-range", "1:1:0.1", "--beta-range", "1:1:0.1", "--gamma-range", "1:1.1:0.1")
    assert empty.code == 2 and "no candidate" in empty.err
    # surface mode solves gamma and ignores --tolerance: a value of one's own is not silently lost
    surface = ["candidates", "--mode", "surface", "--alpha-range", "1:1.2:0.2", "--beta-range", "1", "--base-resolution", "32",
               "--base-width", "0.25", "--format", "json"]  # fmt: skip
    plain, loose = cli(*surface), cli(*surface, "--tolerance", "0.5")
    assert plain.code == loose.code == 0 and plain.out == loose.out and plain.err == ""
    assert loose.err == "note: --tolerance is grid mode's; surface mode solves gamma exactly and does not use it\n"


def test_candidates_classify_as_many_classes_as_the_data_has(cli, tmp_path):
    """As a search does: a folder of 3 classes gives each candidate a 3-way classifier."""
    for name in "abc":
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(2):  # one held out for validation, as a search splits it
            Image.new("RGB", (8, 8)).save(tmp_path / "images" / name / f"{i}.png")
    args = ["candidates", "--base-resolution", "32", "--base-width", "0.25", "--format", "json"]
    ten, three = (json.loads(cli(*args, *extra).out) for extra in ([], ["--data", tmp_path / "images"]))
    # T^phi, named apart from scale's and compare's nominal_ratio (each point's own product^phi)
    assert {row["target_ratio"] for row in ten} == {2.0} and "nominal_ratio" not in ten[0]
    assert ten[0]["params"] - three[0]["params"] == 7 * (three[0]["params"] - json.loads(cli(*args, "--classes", "2").out)[0]["params"])
    assert json.loads(cli(*args, "--data", tmp_path / "images", "--classes", "10").out) == ten  # --classes overrides
    missing = cli(*args, "--data", tmp_path / "nowhere")
    assert missing.code == 2 and missing.err.startswith("error: --data: ") and missing.err.count("\n") == 1


def test_a_solved_gamma_a_hair_below_one_is_one():
    """1.1 ** 2 is 1.2100000000000002 in floats: a surface of target 1.21 solved gamma =
    0.9999999999999999, let through by the bounds' slack, and compound_scale refused the whole
    command ('gamma = 0.9999999999999999 is not allowed')."""
    space = CandidateSpace(mode="surface", target=1.21, alpha=Range(1.0, 1.0, 1.0), beta=Range(1.0, 1.1, 0.1))
    assert space.coefficients()[-1] == (1.0, 1.1, 1.0)
    assert compound_scale(1.0, 1.1, 1.0, 1.0, 64).resolution == 64


def test_a_half_way_resolution_goes_up_whatever_the_float_noise():
    """200 x 1.15 is 229.99999999999997 in floats: the half-way 230 went down to 228, against
    the rule (and 230 itself) that half-way goes up."""
    assert compound_scale(1.2, 1.1, 1.15, 1, 200).resolution == 232
    assert compound_scale(1.0, 1.0, 1.4, 1, 90).resolution == 128  # 126.0 (125.99999999999999)
    assert compound_scale(1.0, 1.0, 1.4, 1, 64).resolution == 88  # 89.6: the nearest multiple of 4, as before
