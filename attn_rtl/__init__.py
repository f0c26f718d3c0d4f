"""attn-rtl command-line interface (thin glue over hdl/, golden/, sim/, synth/)."""
