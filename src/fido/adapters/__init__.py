"""fido's built-in adapters, one module per product.

They are found like any third-party adapter: by name, through the entry-point groups
`fido.detectors`, `fido.enrichers` and `fido.responders` (see the configuration
reference). The core never imports them.
"""
