"""cardauth-oidc: an OpenID Connect provider on card login, answering like Pro Santé
Connect (docs/oidc.md). Built on Authlib's authorization server and on cardauth's
Flask extension (the card login: challenges, the verifier); everything a login
leaves behind is kept in a store that several processes share (Redis).

Modules, in the order a login flows: :mod:`settings`, :mod:`clients`, :mod:`keys`,
:mod:`store`, :mod:`sessions`, :mod:`app` (the endpoints and the login page),
:mod:`grants` (codes, PKCE, the ID token), :mod:`claims` (PSC's claims from the
certificate), :mod:`endpoints` (introspection, revocation, userinfo),
:mod:`logout`, :mod:`cli`.
"""
