"""Bit-exact and float NumPy golden models (imports nothing from hdl/sim/synth)."""
