"""Document signatures with the CPS card's non-repudiation key (``81``), on pyHanko
(docs/signing.md).

In the order the data flows:

- :mod:`.card_signer`: the card as a pyHanko ``Signer`` (the PIN asked for each
  signature, the hash computed on the host);
- :mod:`.trust`: the signer's chain, roots, CRLs and OCSP answers, from a trust
  directory (``cardauth-sim export-trust``);
- :mod:`.timestamps`: RFC 3161 time stamps from a time-stamping authority;
- :mod:`.pades`, :mod:`.cades`, :mod:`.smime`: the formats (PDF, detached CMS,
  multipart/signed);
- :mod:`.deferred`: prepare and finish for a teleservice with no card on its
  server (the card signs elsewhere, through the bridge);
- :mod:`.verification`: who signed, when, and whether it holds;
- :mod:`.levels`: the formats, levels and the card's algorithm;
- :mod:`.commands`: ``cardauth sign`` and ``cardauth verify-signature``;
- :mod:`.errors`: every refusal, with its stable code.

Only :mod:`.card_signer` needs the card stack; the rest imports no pyscard, so a
teleservice installs ``cardauth[signing]`` without ``cardauth[cards]``.
"""
