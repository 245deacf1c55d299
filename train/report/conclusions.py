"""The course's four conclusions from its architecture comparison, each checked against the
sweep's numbers (section 8). Pure functions of the cells, so the verdicts follow the numbers.

A cell is a dict with "family" (vae-dense or vae-conv), "architecture" (its label),
"latent", "parameters", "mse", "fd" (lower is better for both) and "train_s".
Each check returns {"claim", "verdict", "text", ...numbers}; verdict is one of VERDICTS.
"""
from __future__ import annotations

GAIN = 0.10  # a relative improvement below this is "no visible gain" / "gains little"
BLUR = 1.25  # MSE at the smallest d_z at least this × the best of the larger d_z = blurred
COST = 1.5  # a parameter ratio at least this is "a much higher cost"
LARGE_LATENT = 50  # "d_z ≥ 50"
THIRD = 0.5  # "a third of the parameters": we accept any ratio up to one half
VERDICTS = ("confirmed", "partly confirmed", "not confirmed", "not tested")


def gain(new: float, old: float) -> float:
    """Relative improvement of ``new`` over ``old`` for a lower-is-better metric."""
    return 1.0 - new / old


def by_architecture(cells: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """{(family, architecture): cells sorted by latent size}."""
    out: dict[tuple[str, str], list[dict]] = {}
    for c in cells:
        out.setdefault((c["family"], c["architecture"]), []).append(c)
    return {k: sorted(v, key=lambda c: c["latent"]) for k, v in out.items()}


def _verdict(hits: int, total: int) -> str:
    if total == 0:
        return "not tested"
    return "confirmed" if hits == total else "partly confirmed" if hits else "not confirmed"


def small_latent_blurs(cells: list[dict]) -> dict:
    claim = "Too small a latent blurs reconstructions"
    ratios = {}
    for (_, arch), cs in by_architecture(cells).items():
        if len(cs) >= 2:
            ratios[arch] = cs[0]["mse"] / min(c["mse"] for c in cs[1:])
    smallest = min((c["latent"] for c in cells), default=None)
    blurred = [a for a, r in ratios.items() if r >= BLUR]
    verdict = _verdict(len(blurred), len(ratios))
    if not ratios:
        text = "Needs at least two latent sizes per architecture; this grid has one."
    else:
        lo, hi = min(ratios.values()), max(ratios.values())
        text = (f"At d_z = {smallest} the test MSE is {lo:.2f}–{hi:.2f}× the best MSE of the "
                f"same architecture at a larger d_z (blurred: ≥ {BLUR:g}×), in "
                f"{len(blurred)} of {len(ratios)} architectures"
                + ("" if len(blurred) in (0, len(ratios)) else
                   f" ({', '.join(blurred)})") + ".")
    return {"claim": claim, "verdict": verdict, "text": text, "mse_ratio": ratios}


def large_latent_no_gain(cells: list[dict]) -> dict:
    claim = f"Latent sizes d_z ≥ {LARGE_LATENT} add parameters without visible gain"
    per = {}
    for (_, arch), cs in by_architecture(cells).items():
        small = [c for c in cs if c["latent"] < LARGE_LATENT]
        large = [c for c in cs if c["latent"] >= LARGE_LATENT]
        if small and large:
            best_small = min(small, key=lambda c: c["mse"])
            per[arch] = {"mse_gain": gain(min(c["mse"] for c in large), best_small["mse"]),
                         "fd_gain": gain(min(c["fd"] for c in large),
                                         min(c["fd"] for c in small)),
                         "added_parameters": large[-1]["parameters"] - best_small["parameters"]}
    visible = [a for a, p in per.items() if max(p["mse_gain"], p["fd_gain"]) >= GAIN]
    verdict = _verdict(len(per) - len(visible), len(per))
    if not per:
        text = (f"Needs latent sizes both below and at or above {LARGE_LATENT}; this grid has "
                f"{sorted({c['latent'] for c in cells})}.")
    else:
        mse = max(per.items(), key=lambda kv: kv[1]["mse_gain"])
        fd = max(per.items(), key=lambda kv: kv[1]["fd_gain"])
        added = [p["added_parameters"] for p in per.values()]
        text = (f"Best d_z ≥ {LARGE_LATENT} against the best d_z < {LARGE_LATENT} of the same "
                f"architecture: test MSE improves by at most {100 * mse[1]['mse_gain']:+.1f}% "
                f"({mse[0]}), classifier FD by at most {100 * fd[1]['fd_gain']:+.1f}% "
                f"({fd[0]}), for {min(added):+,}–{max(added):+,} parameters. A visible gain "
                f"(≥ {100 * GAIN:.0f}% on either) in {len(visible)} of {len(per)} "
                f"architectures" + (f": {', '.join(visible)}." if visible else "."))
    return {"claim": claim, "verdict": verdict, "text": text, "per_architecture": per}


def widest_dense_gains_little(cells: list[dict], widest: str, middle: str) -> dict:
    claim = (f"The widest dense VAE ({widest}) gains little over the middle width ({middle}) "
             f"at a much higher cost")
    groups = by_architecture(cells)
    w, m = groups.get(("vae-dense", widest)), groups.get(("vae-dense", middle))
    if not w or not m:
        return {"claim": claim, "verdict": "not tested",
                "text": f"Needs both {widest} and {middle} in the grid."}
    common = sorted({c["latent"] for c in w} & {c["latent"] for c in m})
    at = common[0] if common else None
    ratio = (next(c for c in w if c["latent"] == at)["parameters"] /
             next(c for c in m if c["latent"] == at)["parameters"]) if at else \
        w[0]["parameters"] / m[0]["parameters"]
    time_ratio = sum(c["train_s"] for c in w) / max(sum(c["train_s"] for c in m), 1e-9)
    g_mse = gain(min(c["mse"] for c in w), min(c["mse"] for c in m))
    g_fd = gain(min(c["fd"] for c in w), min(c["fd"] for c in m))
    little = (g_mse < GAIN) + (g_fd < GAIN)
    costly = ratio >= COST
    verdict = ("confirmed" if little == 2 and costly else "not confirmed" if little == 0
               else "partly confirmed")
    text = (f"Best over d_z, {widest} against {middle}: test MSE {100 * g_mse:+.1f}%, classifier "
            f"FD {100 * g_fd:+.1f}% (positive = better; little = below {100 * GAIN:.0f}%), for "
            f"{ratio:.2f}× the parameters (much higher: ≥ {COST:g}×) and {time_ratio:.2f}× the "
            f"training time of its sweep.")
    return {"claim": claim, "verdict": verdict, "text": text, "mse_gain": g_mse,
            "fd_gain": g_fd, "parameter_ratio": ratio, "time_ratio": time_ratio}


def conv_beats_dense(cells: list[dict], chosen: dict[str, tuple[str, int]]) -> dict:
    """``chosen``: {family: (architecture, latent)}, the course's choices; a family whose
    choice is not in the grid is represented by its cell of lowest classifier FD."""
    claim = "The conv VAE beats the dense one with a third of the parameters"
    picked, how = {}, []
    for family in ("vae-conv", "vae-dense"):
        fam = [c for c in cells if c["family"] == family]
        if not fam:
            return {"claim": claim, "verdict": "not tested", "text": f"No {family} cells."}
        arch, latent = chosen[family]
        hit = [c for c in fam if c["architecture"] == arch and c["latent"] == latent]
        picked[family] = hit[0] if hit else min(fam, key=lambda c: c["fd"])
        how.append("the course's choice" if hit else "its lowest-FD cell, the course's "
                   "choice being outside this grid")
    conv, dense = picked["vae-conv"], picked["vae-dense"]
    ratio = conv["parameters"] / dense["parameters"]
    wins = [k for k in ("mse", "fd") if conv[k] < dense[k]]
    verdict = ("confirmed" if len(wins) == 2 and ratio <= THIRD else
               "not confirmed" if not wins else "partly confirmed")
    text = (f"vae-conv {conv['architecture']} at d_z = {conv['latent']} ({how[0]}) against "
            f"vae-dense {dense['architecture']} at d_z = {dense['latent']} ({how[1]}): test MSE "
            f"{conv['mse']:.4f} vs {dense['mse']:.4f}, classifier FD {conv['fd']:.4g} vs "
            f"{dense['fd']:.4g}, with {conv['parameters']:,} vs {dense['parameters']:,} "
            f"parameters ({ratio:.2f}×; “a third” accepted up to {THIRD:g}×). The conv VAE is "
            f"better on {len(wins)} of 2 ({', '.join(wins) or 'neither'}).")
    return {"claim": claim, "verdict": verdict, "text": text, "parameter_ratio": ratio,
            "conv": {k: conv[k] for k in ("architecture", "latent")},
            "dense": {k: dense[k] for k in ("architecture", "latent")}}


def check_all(cells: list[dict], widest: str, middle: str,
              chosen: dict[str, tuple[str, int]]) -> list[dict]:
    return [small_latent_blurs(cells), large_latent_no_gain(cells),
            widest_dense_gains_little(cells, widest, middle), conv_beats_dense(cells, chosen)]
