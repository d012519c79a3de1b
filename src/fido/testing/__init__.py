"""fido.testing: fakes and conformance checks for adapter authors and for tests.

- `FakeDetector`, `StaticEnricher`, `RecordingResponder`: in-memory adapters that follow
  their protocols exactly, for testing pipelines and the code around them.
- `check_detector`, `check_enricher`, `check_responder`: call an adapter the way the
  pipeline does and raise one `AssertionError` listing every way it breaks its protocol
  (wrong types, unwrapped errors, hangs, secrets in reprs, errors, logs or results).
  They work from sync and async tests alike.

Example:
    ```python
    from fido.testing import check_enricher


    def test_my_feed_is_conformant() -> None:
        check_enricher(MyFeed(api_key="k-123"), secrets=["k-123"])
    ```
"""

from fido.testing._conformance import check_detector, check_enricher, check_responder
from fido.testing._fakes import FakeDetector, RecordingResponder, StaticEnricher

__all__ = [
    "FakeDetector",
    "RecordingResponder",
    "StaticEnricher",
    "check_detector",
    "check_enricher",
    "check_responder",
]
