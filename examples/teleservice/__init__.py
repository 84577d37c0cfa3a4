"""« Médecin traitant en ligne »: a demo teleservice on cardauth's Flask extension
(docs/teleservice.md). ``python -m examples.teleservice --help`` runs it."""

from examples.teleservice.app import create_app
from examples.teleservice.settings import Settings

__all__ = ["Settings", "create_app"]
