"""Card applications: CPS and Vitale, recognised by ATR and application probe."""
