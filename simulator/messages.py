"""What the simulator says to people (simulator/texts.toml): its errors, and the
words of cardauth-sim. The control page's words are the file's [page] table
(:mod:`simulator.control_page`).

The catalog is also declared as an entry point (group ``cardauth.texts``), so that
cardauth's own commands describe the simulator's errors (``--simulate``) without
importing it."""

from __future__ import annotations

from importlib import resources

from cardauth.messages import CORE, Catalog

CATALOG = Catalog.load(resources.files("simulator") / "texts.toml", parents=(CORE,))
