"""The footer, with the keys one always needs (quit, help: the app's own) first, so that a
narrow terminal cuts the screen's least important keys, never `q` and `?`. Every key, shown or
not, is listed by `?`."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeyFooter(Footer):
    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        shown = [active for active in self.screen.active_bindings.values() if active.binding.show]
        app_first = [a for a in shown if a.node is self.app] + [a for a in shown if a.node is not self.app]
        one_per_action = {a.binding.action: a for a in reversed(app_first)}  # the first key of each action
        keys = [a for a in app_first if one_per_action[a.binding.action] is a]
        self.styles.grid_size_columns = len(keys)
        for active in keys:
            binding = active.binding
            yield FooterKey(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                            disabled=not active.enabled, tooltip=active.tooltip or binding.description,
                            ).data_bind(compact=Footer.compact)
