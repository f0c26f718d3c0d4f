"""Synthesis flows (yosys / nextpnr via yowasp) and hardware-cost reports."""
