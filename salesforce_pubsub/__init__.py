"""Salesforce's Pub/Sub API protocol (``eventbus.v1.PubSub``): the proto and its generated stubs.

One copy, shared by the emulator's server (``emulator.pubsub``) and the product's subscriber
(``engine.cdc``); neither imports the other. Regenerate with the command in ``pubsub_api.proto``.
"""
