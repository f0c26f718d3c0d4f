"""Issue 14: ``attn-rtl run --params FILE`` uses the calibrated widths of the run's layer and head."""

import json

import numpy as np
import pytest

from attn_rtl.cli import main
from golden import cta_params
from sim.run_head import DEFAULT_WIDTHS, resolve_head_settings

FOX = "The quick brown fox jumps over the lazy dog."


def _params_file(tmp_path, l=6):
    widths = np.full((6, 12, 3), 16.0)
    widths[3, 7] = (5.0, 9.0, 40.0)           # one head differs from every other and from the default
    p = cta_params.CTAParams(widths=widths, l=l, budget={"kind": "cosine", "value": 0.99})
    return cta_params.save(p, tmp_path / "p.json")


def test_resolve_from_params_file(tmp_path):
    path = _params_file(tmp_path, l=5)
    hs = resolve_head_settings(layer=3, head=7, params=path)
    assert hs.widths == (5.0, 9.0, 40.0) and hs.l == 5 and hs.source == str(path)
    assert resolve_head_settings(layer=3, head=6, params=path).widths == (16.0, 16.0, 16.0)
    assert resolve_head_settings(layer=3, head=7).widths == DEFAULT_WIDTHS
    assert resolve_head_settings(layer=3, head=7, widths=(1, 2, 3)).widths == (1.0, 2.0, 3.0)


def test_resolve_errors(tmp_path):
    path = _params_file(tmp_path)
    with pytest.raises(ValueError, match="not both"):
        resolve_head_settings(layer=0, head=0, widths=(1, 2, 3), params=path)
    with pytest.raises(ValueError, match="--head 12"):
        resolve_head_settings(layer=0, head=12, params=path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**cta_params.to_dict(cta_params.load(path)), "widths": [[[1, 2, 0]]]}))
    with pytest.raises(cta_params.ParamsError):
        resolve_head_settings(layer=0, head=0, params=bad)


def test_params_reach_the_golden_run_of_the_block(tmp_path):
    """The trace the cta block is checked against (cta_head_setup) is cta_fixed_trace with the file's widths."""
    from golden.cta import cta_fixed_trace
    from golden.lsh import make_lsh_params
    from sim.run_head import cta_head_setup

    path = _params_file(tmp_path)
    hs = resolve_head_settings(layer=3, head=7, params=path)
    hin, shape, trace, params, _ = cta_head_setup(text=FOX, layer=3, head=7, widths=hs.widths,
                                                  overrides={"l": hs.l})
    lsh = make_lsh_params(hin.d_in, l=6, widths=(5.0, 9.0, 40.0), seed=0)
    ref = cta_fixed_trace(hin, lsh=lsh, cfg=shape.cfg, k_max=shape.clusters, exp_spec=shape.exp_spec,
                          n_max=shape.n_max)
    assert (trace.k0, trace.k1, trace.k2) == (ref.k0, ref.k1, ref.k2)
    assert np.array_equal(trace.out, ref.out) and params["l"] == 6
    # other widths give another run: the widths do reach it
    _, _, other, _, _ = cta_head_setup(text=FOX, layer=3, head=7, widths=DEFAULT_WIDTHS)
    assert (other.k0, other.k1, other.k2) != (trace.k0, trace.k1, trace.k2) or not np.array_equal(other.out,
                                                                                                  trace.out)


def test_cli_passes_the_files_widths(tmp_path, monkeypatch, capsys):
    import sim.run_head as rh

    seen = {}

    def fake(**kw):
        seen.update(kw)
        return 0

    monkeypatch.setattr(rh, "run_cta_head", fake)
    monkeypatch.setattr(rh, "run_head", fake)
    path = _params_file(tmp_path, l=4)
    assert main(["run", "--params", str(path), "--layer", "3", "--head", "7"]) == 0
    assert seen["widths"] == (5.0, 9.0, 40.0) and seen["overrides"]["l"] == 4
    assert "from " + str(path) in capsys.readouterr().out
    seen.clear()
    assert main(["run", "sa-head", "--params", str(path), "--layer", "3", "--head", "6"]) == 0
    assert seen["widths"] == (16.0, 16.0, 16.0) and seen["l"] == 4
    assert main(["run", "--params", str(path), "--widths", "1", "2", "3"]) == 2
    assert main(["run", "--params", str(path), "--set", "l=6"]) == 2
    assert main(["run", "--params", str(tmp_path / "missing.json")]) == 2
