"""The Slack side of Sales Agent: listeners, Block Kit rendering, the durable inbox, operations.

Only this package knows Slack. It turns events into engine calls and suggestions into cards;
it never imports `storage` (app.py hands it an inbox store that fits `engine.inbox.InboxStore`).
"""
