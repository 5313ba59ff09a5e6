"""docs/network_figure.py (the README's figure of the network) draws what the built network holds: its walk finds
MSConvBridge, MASAG and SACM exactly in the decoder stages the preset's options place them in, and it writes a
non-trivial PNG of the README's size for each preset."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_msa.network.presets import resolved_options

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "docs" / "network_figure.py"
PRESETS = ("msa2", "msa2_noBridge", "msa2_noMASAG")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """preset -> (stdout, walk JSON, PNG path): the default through the script as the README names it (a
    subprocess), the others through its ``main`` in this process (the same code, without paying the imports again)."""
    import contextlib
    import importlib.util
    import io

    out = tmp_path_factory.mktemp("network_figure")
    results = {}
    png, walk = out / "msa2.png", out / "msa2.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--preset", "msa2", "--dim", "2", "--out", str(png),
                           "--json", str(walk)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"msa2: {proc.stderr[-3000:]}"
    results["msa2"] = (proc.stdout, json.loads(walk.read_text()), png)
    spec = importlib.util.spec_from_file_location("network_figure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in PRESETS[1:]:
        png, walk, printed = out / f"{name}.png", out / f"{name}.json", io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert module.main(["--preset", name, "--dim", "2", "--out", str(png), "--json", str(walk)]) == 0
        results[name] = (printed.getvalue(), json.loads(walk.read_text()), png)
    return results


def _placed(options, use_key, stages_key, n):
    """Decoder stages (0 = lowest resolution) the options put a module in: ``range(n)[:limit]`` when switched on."""
    if not options.get(use_key, True):
        return []
    return list(range(n)[:options.get(stages_key)])


@pytest.mark.parametrize("name", PRESETS)
def test_walk_finds_the_modules_where_the_options_place_them(runs, name):
    stdout, walk, _ = runs[name]
    options = resolved_options(name)
    assert walk["options"] == options and walk["preset"] == name
    dec = walk["decoder"]
    n = len(dec)
    assert len(walk["encoder"]) == 5 and n == 4
    assert [e["features"] for e in walk["encoder"]] == [32, 64, 128, 256, 512]
    assert [d["skip_from_encoder_stage"] for d in dec] == [3, 2, 1, 0]  # lowest resolution first

    bridges = [d["stage"] for d in dec if d["bridge"] is not None]
    gates = [d["stage"] for d in dec if d["gate"] == "MASAG"]
    sacm = [d["stage"] for d in dec if d["convs"] and all(c["kind"] == "sacm" for c in d["convs"])]
    static = [d["stage"] for d in dec if all(c["kind"] == "static" for c in d["convs"])]
    assert bridges == _placed(options, "use_bridge", "bridge_stages", n)
    assert gates == _placed(options, "use_masag", "masag_stages", n)
    assert all(d["gate"] in ("MASAG", "none") for d in dec)
    assert sacm == _placed(options, "use_sacm", "sacm_stages", n)
    assert sorted(sacm + static) == list(range(n))
    for d in dec:
        assert d["fusion"] == ("MASAG + concat" if d["stage"] in gates else "concat")
        assert len(d["convs"]) == 2  # the plan's n_conv_per_stage_decoder
        if d["bridge"] is not None:
            assert d["bridge"]["blocks"] == options.get("n_bridge", 2)
            assert all(c["kind"] == "sacm" for c in d["bridge"]["convs"])
    K = options.get("sacm_candidates", 3)
    for c in [c for d in dec for c in d["convs"] + (d["bridge"] or {}).get("convs", []) if c["kind"] == "sacm"]:
        assert c["K"] == K and c["dilations"] == [[j, j] for j in range(1, K + 1)]
        assert c["realization"] == options.get("sacm_realization", "dilated")
        assert c["fingerprint"] == options.get("sacm_fingerprint", "responses")

    # the printed summary says the same, one line per decoder stage
    lines = [line for line in stdout.splitlines() if line.strip().startswith("decoder ")]
    assert len(lines) == n
    for d, line in zip(dec, lines):
        assert ("MSConvBridge(" in line) == (d["bridge"] is not None), line
        assert ("fusion MASAG + concat" in line) == (d["stage"] in gates), line


def test_the_presets_differ_as_their_names_say(runs):
    full, no_bridge, no_masag = (runs[p][1]["decoder"] for p in PRESETS)
    assert any(d["bridge"] for d in full) and any(d["gate"] == "MASAG" for d in full)
    assert not any(d["bridge"] for d in no_bridge)
    assert [d["gate"] for d in no_bridge] == [d["gate"] for d in full]
    assert not any(d["gate"] != "none" for d in no_masag)
    assert [d["bridge"] is not None for d in no_masag] == [d["bridge"] is not None for d in full]


def _png_size(path: Path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.mark.parametrize("name", PRESETS)
def test_png_is_written_and_non_trivial(runs, name):
    import matplotlib.image as mpimg
    import numpy as np

    png = runs[name][2]
    assert png.is_file() and png.stat().st_size > 40_000
    width, height = _png_size(png)
    assert 1200 <= width <= 1600 and 800 <= height <= 1000, (width, height)
    pixels = mpimg.imread(str(png))[..., :3]
    assert float(np.std(pixels)) > 0.05  # not a blank canvas
    assert (pixels.reshape(-1, 3).std(axis=1) > 0.1).mean() > 0.03  # colored boxes, not only black on white


def test_the_figures_follow_the_options(runs):
    data = {name: runs[name][2].read_bytes() for name in PRESETS}
    assert len(set(data.values())) == len(PRESETS)
