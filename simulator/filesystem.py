"""The card file system: dedicated files (folders, some of them applications) and
elementary files (transparent byte strings), as in ISO/IEC 7816-4 § 7.1.

The tree is built once from a card profile and is read-only at run time: our
virtual cards never write files (UPDATE BINARY is not among the commands a
CPS or Vitale card accepts from a workstation).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

MF_FID = 0x3F00


@dataclass(frozen=True, slots=True)
class ElementaryFile:
    """A transparent EF; ``sfi`` lets READ BINARY reach it without a SELECT."""

    fid: int
    data: bytes
    sfi: int | None = None

    def fcp(self) -> bytes:
        """File control parameters (ISO 7816-4 § 7.4.3): size, descriptor, id."""
        size = len(self.data).to_bytes(2, "big")
        body = b"\x80\x02" + size + b"\x82\x01\x01" + b"\x83\x02" + self.fid.to_bytes(2, "big")
        return b"\x62" + bytes((len(body),)) + body


@dataclass(frozen=True, slots=True)
class DedicatedFile:
    """A DF. With an ``aid`` it is an application, selectable by name."""

    fid: int
    aid: bytes | None = None
    children: tuple[ElementaryFile | DedicatedFile, ...] = field(default=())
    parent: DedicatedFile | None = field(default=None, compare=False, repr=False)

    def fcp(self) -> bytes:
        body = b"\x82\x01\x38" + b"\x83\x02" + self.fid.to_bytes(2, "big")
        if self.aid is not None:
            body += b"\x84" + bytes((len(self.aid),)) + self.aid
        return b"\x62" + bytes((len(body),)) + body

    def child(self, fid: int) -> ElementaryFile | DedicatedFile | None:
        return next((c for c in self.children if c.fid == fid), None)

    def by_sfi(self, sfi: int) -> ElementaryFile | None:
        return next(
            (c for c in self.children if isinstance(c, ElementaryFile) and c.sfi == sfi), None
        )

    def walk(self) -> Iterator[DedicatedFile]:
        yield self
        for c in self.children:
            if isinstance(c, DedicatedFile):
                yield from c.walk()


def build_tree(mf: DedicatedFile) -> DedicatedFile:
    """Return the same tree with every DF's ``parent`` link set."""

    def relink(df: DedicatedFile, parent: DedicatedFile | None) -> DedicatedFile:
        linked = DedicatedFile(df.fid, df.aid, (), parent)
        children = tuple(
            relink(c, linked) if isinstance(c, DedicatedFile) else c for c in df.children
        )
        object.__setattr__(linked, "children", children)
        return linked

    return relink(mf, None)


def find_application(mf: DedicatedFile, aid: bytes) -> DedicatedFile | None:
    """The application DF whose AID is ``aid`` (exact match), anywhere in the tree."""
    return next((df for df in mf.walk() if df.aid == aid), None)
