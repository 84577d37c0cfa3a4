"""The local web bridge: web pages of teleservices ask the professional's own
workstation for a card assertion, over HTTP on 127.0.0.1 only.

The request flow, in the order of the modules: :mod:`webbridge.guards` (Host,
Origin, CORS, Private Network Access, body), :mod:`webbridge.consent` (which
origins the professional approved), :mod:`webbridge.cards` (the cards in the
readers, what is cached of them, the PIN state), :mod:`webbridge.interactions`
(the bridge's own consent and PIN page), :mod:`webbridge.app` (the HTTP API),
:mod:`webbridge.server` (the command and the WSGI server).
"""
