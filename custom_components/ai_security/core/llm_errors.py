"""The LLM client's errors: each tells the pipeline what to do next.

- LlmUnavailableError: no server can be reached (connection refused, DNS, every breaker is
  open); the pipeline falls back to the heuristic scorer.
- LlmRejectedError: the server answered 4xx (such as 400 for a prompt over its context); the
  same request will not succeed later, and the breaker does not count it (the server is up).
- AnalyzerError (the others): worth retrying later: a time-out, HTTP 5xx, an answer that is not
  a valid verdict. These, like unreachability, count towards opening the breaker.

Apart from the client so that the verdict's parser raises them without importing the client.
"""


class AnalyzerError(Exception):
    """The LLM did not give a usable verdict this time; worth retrying later."""

    def __init__(self, message: str, status: int | None = None) -> None:
        """Remember the HTTP status the server answered with, if it answered with an error."""
        super().__init__(message)
        self.status = status


class LlmUnavailableError(AnalyzerError):
    """The LLM server cannot be reached at all (or its breaker is open): use the heuristic."""


class LlmRejectedError(AnalyzerError):
    """The server refused the request with HTTP 4xx; retrying the same request will not help.

    The breaker counts it as an answer (the server is up), not as a failure.
    """

    def __init__(self, message: str, status: int) -> None:
        """Remember the HTTP status besides the message."""
        super().__init__(message, status)
        self.status: int = status


class AnswerCutOffError(AnalyzerError):
    """The answer stopped before the verdict was complete (max_tokens, or the context was full).

    With pictures in the prompt, the context is the likely cause: they are made fewer.
    """
