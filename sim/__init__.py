"""cocotb testbenches (``sim/tb_*.py``) and the runner glue that builds and runs them."""
