"""Slack: Bolt's AsyncApp over HTTP at `POST /slack/events`, and the notifier the outbox uses.

Same shape as every platform package: `commands` (the slash command), `actions` (buttons, selects,
modals), `events` (App Home), `renderers` (Block Kit) and `notifier` (outbox delivery); `app` builds
the Bolt app and registers each module's listeners explicitly; `client` and `errors` wrap the Web API;
`platform` is what the composition root wires in. Importing the package itself loads no Slack library
(`manifest` needs none).
"""
