"""The one error type the library raises for a request it refuses, in words a person can read.

The library cannot know the user's language, and the Home Assistant layer should not have to know
why each check exists. So a refusal carries a translation key (the integration's translations
name the text: "exceptions" for actions, a form's "error" for zones) and the placeholders that
fill it in, all strings, as translations need; str() of it is the English text, for logs. The
layer turns every one into its translated error in one place (helpers.py), whatever module
raised it.
"""


class AiSecurityError(Exception):
    """A request the library refuses; translation_key and placeholders say why, translated."""

    translation_key: str
    placeholders: dict[str, str]

    def __init__(
        self, translation_key: str, message: str | None = None, /, **placeholders: str
    ) -> None:
        """Keep the key and placeholders; message is the English text for logs.

        Without a message, str() names the key and its placeholders, which still tells a log
        reader which refusal it was. The key and message are positional only, so a placeholder
        may be called "message" too.
        """
        super().__init__(message if message is not None else f"{translation_key}: {placeholders}")
        self.translation_key = translation_key
        self.placeholders = placeholders
