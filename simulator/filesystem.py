"""The card file system: dedicated files (folders, some of them applications with a
DF name) and elementary files (transparent byte strings), as in ISO/IEC 7816-4
§ 7.1.

The tree is built once from a card profile and is read-only at run time: our
virtual cards never write files (UPDATE BINARY is not among the commands a
CPS or Vitale card accepts from a workstation).

File control parameters are those real CPS3 cards return (docs/simulator.md):
size, descriptor, identifier, short identifier in tag 88 (SFI << 3), DF name,
security attributes A1 { 8C compact rules, 9C for the contactless interface }
and the life cycle status 8A 05 (operational, activated).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cardauth import tlv
from simulator.security import AccessRules

MF_FID = 0x3F00
LIFE_CYCLE_ACTIVATED = b"\x05"  # ISO 7816-4 § 7.4.10: operational state, activated

# Access rules of real CPS3 files (docs/simulator.md): read always, updates under
# secure messaging only (SE 5), everything else never; the contactless interface
# may only read.
PUBLIC_FILE = AccessRules(bytes.fromhex("7B45FFFFFF4500"), bytes.fromhex("7BFFFFFFFFFF00"))
READ_ONLY_FILE = AccessRules(bytes.fromhex("7BFFFFFFFFFF00"), bytes.fromhex("7BFFFFFFFFFF00"))
DEDICATED_FILE = AccessRules(bytes.fromhex("7AFFFFFFFF45"))


@dataclass(frozen=True, slots=True)
class ElementaryFile:
    """A transparent EF; ``sfi`` lets READ BINARY reach it without a SELECT."""

    fid: int
    data: bytes
    sfi: int | None = None
    access: AccessRules = PUBLIC_FILE

    def fcp(self) -> bytes:
        """File control parameters (ISO 7816-4 § 7.4.3)."""
        body = (
            tlv.encode(0x80, len(self.data).to_bytes(2, "big"))
            + tlv.encode(0x82, b"\x01")  # transparent working EF
            + tlv.encode(0x83, self.fid.to_bytes(2, "big"))
        )
        if self.sfi is not None:
            body += tlv.encode(0x88, bytes((self.sfi << 3,)))
        body += self.access.template() + tlv.encode(0x8A, LIFE_CYCLE_ACTIVATED)
        return tlv.encode(0x62, body)


@dataclass(frozen=True, slots=True)
class DedicatedFile:
    """A DF. With an ``aid`` (its DF name) it is an application, selectable by name."""

    fid: int
    aid: bytes | None = None
    children: tuple[ElementaryFile | DedicatedFile, ...] = field(default=())
    parent: DedicatedFile | None = field(default=None, compare=False, repr=False)
    access: AccessRules = DEDICATED_FILE

    def fcp(self) -> bytes:
        body = tlv.encode(0x82, b"\x38") + tlv.encode(0x83, self.fid.to_bytes(2, "big"))
        if self.aid is not None:
            body += tlv.encode(0x84, self.aid)
        body += self.access.template() + tlv.encode(0x8A, LIFE_CYCLE_ACTIVATED)
        return tlv.encode(0x62, body)

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
        linked = DedicatedFile(df.fid, df.aid, (), parent, df.access)
        children = tuple(
            relink(c, linked) if isinstance(c, DedicatedFile) else c for c in df.children
        )
        object.__setattr__(linked, "children", children)
        return linked

    return relink(mf, None)


def find_application(mf: DedicatedFile, aid: bytes) -> DedicatedFile | None:
    """The DF whose name is ``aid`` (exact match), anywhere in the tree."""
    return next((df for df in mf.walk() if df.aid == aid), None)
