"""The held-out rule's choice in words: ``complexity_["verdict"]``, which ``summary`` shows.

The rule itself is :func:`deepcausal._complexity._held_out`; these functions only read what it recorded (``z``, the
first-stage F, the shape step's verdicts, and the band where the line keeps Lepski's spline beside it), with the
rule's bounds on z and F passed in, and say why the reported curve was chosen, including where the data could not
tell the candidates apart.
"""

from __future__ import annotations


def held_out_verdict(c: dict, z_bound: float, f_bound: float) -> str:
    """Why rule ``"held_out"`` chose what it chose, in words (``complexity_`` of that rule)."""
    base = _line_verdict(c, z_bound, f_bound)
    if "departs" not in c:
        return base
    M, a, b = len(c["sieve_knots"]), c["departs"]["spline"], c["departs"]["trained"]
    both = list(zip(a, b))  # a verdict is True, False or None (a test that is not finite: it counts for nothing)
    bends, neither = sum(x is True and y is False for x, y in both), sum(x is False and y is False for x, y in both)
    knots = ", ".join("line" if k is None else str(k) for k in c["sieve_knots"])
    spline = f"Lepski's spline in t (knots per member: {knots})"
    if c.get("held_out_line"):
        what = f"{spline} departs from the line on {sum(x is True for x in a)} of {M} members (sup-t tests at 5%)"
        return f"{base}; but {what}: the spline is reported" if c.get("spline") else \
            f"{base}; {what}: not a majority, so the line stays{_band_verdict(c)}"
    if c.get("spline"):
        return (f"{base}; but {spline} departs from the line where the trained curve does not on {bends} of {M} "
                "members (sup-t tests at 5%): the spline is reported")
    if c.get("shape_step") == "line" and neither > M / 2:
        what = (f"{base}; but neither {spline} nor the trained curve departs from the line on {neither} of {M} "
                "members (sup-t tests at 5%): the data show no bend, so the simplest curve, the line, is reported")
        return what + (_band_verdict(c) or
                       "; its band covers the line's sampling noise, not a bend too weak for these tests to see (where "
                       "the truth bends, such bands can miss it: benchmarks/RESULTS.md, \"Confidence bands: coverage "
                       "and width\")")
    if c.get("shape_step") == "line":  # the evidence case (deepcausal._sieve.HELD_OUT_EVIDENCE)
        flat = sum(x is False for x in a)
        return (f"{base}; but {spline} does not depart from the line on {flat} of {M} members (sup-t tests at 5%), "
                "and the held-out rows do not favour the trained head (a bend of the trained curve is tested with "
                f"its networks held fixed): the line is reported{_band_verdict(c)}")
    return (f"{base}; {spline} departs from the line where the trained curve does not on {bends} of {M} members, "
            f"neither does on {neither} (sup-t tests at 5%): no majority for either, so the trained head stays")


def _band_verdict(c: dict) -> str:
    """The verdict's words on a line's band widened to cover the spline's
    (:data:`deepcausal._complexity.LINE_BAND_WITH_SPLINE`); empty without."""
    if not c.get("band"):
        return ""
    return (f"; its band is {c['band']}: the tests did not reject the spline, so the band also covers the band the "
            "spline would have had (each member's Lepski choice, the line on members that kept it)")


def _line_verdict(c: dict, z_bound: float, f_bound: float) -> str:
    z, n, f = (c.get("criterion") or [float("nan")])[0], c.get("held_out_rows", 0), c.get("first_stage_f", float("nan"))
    what = f"the line's held-out projected loss against the trained head's, z = {z:.3g} on {n} held-out rows"
    if c.get("held_out_line", c["chosen"] == 0 and not c.get("spline")):
        return f"{what}: the line predicts rows no training step saw significantly better (first-stage F {f:.3g})"
    if not z == z:  # NaN: no held-out rows, or residuals without a finite spread (a diverged member)
        if not n:
            return "no held-out rows to compare the line with the trained head on: the trained head"
        return (f"the comparison on {n} held-out rows is undefined (residuals without a finite spread): the trained "
                "head")
    if z < -z_bound:
        return (f"{what}, but the first stage is not strong enough to trust the line's slope (F {f:.3g} < "
                f"{f_bound:g}), and a held-out loss cannot see that slope's error: the trained head")
    if z > z_bound:
        return f"{what}: the trained head predicts significantly better"
    return f"{what}: the data cannot tell the two apart, so the trained head is kept"
