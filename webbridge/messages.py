"""What the bridge says to people, in French (the default) and English: its own
refusals, the words of its pages and of its command line (webbridge/texts.toml).
Card and PIN errors keep the wording of the core's catalog."""

from __future__ import annotations

from importlib import resources

from cardauth.messages import CORE, Catalog

CATALOG = Catalog.load(resources.files("webbridge") / "texts.toml", parents=(CORE,))
describe = CATALOG.describe
label = CATALOG.label
error_line = CATALOG.error_line
