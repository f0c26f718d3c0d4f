"""Amaranth 0.5 components of the attention accelerators.

Every module here that defines generatable blocks lists them in a module-level ``BLOCKS``
list of :class:`hdl.registry.BlockSpec`; :func:`hdl.registry.blocks` discovers them.
"""
