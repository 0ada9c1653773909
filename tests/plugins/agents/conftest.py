"""The agents tests serve the same app as the chat tests (chat + agents + a scripted provider)."""

from tests.plugins.chat.conftest import chat_server

__all__ = ["chat_server"]
