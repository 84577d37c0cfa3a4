"""Virtual CPS and Vitale cards, virtual readers, and a test PKI, so that cardauth
can be developed and tested without hardware."""
