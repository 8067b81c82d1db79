"""Notifications: botctl's events, routed to the services people already use (through Apprise).

`setup.notifying` wires a Notifier to the Store of a running bot; `spec.notify` describes
notify.yaml. Nothing here is imported unless notify.yaml exists or `botctl notify` runs.
"""
