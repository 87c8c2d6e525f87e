"""Microsoft Teams: the Bot Framework endpoint `POST /api/messages` and the Bot Connector client.

Same shape as `handlers/slack/`: `auth` checks inbound JWTs, `tokens` gets the bot's own token,
`connector` and `errors` wrap the Bot Connector REST API, `markup` renders the core's neutral text,
`cards` builds Adaptive Cards, `notifier` delivers the outbox's rows, and `platform` is what the
composition root wires in.
"""
