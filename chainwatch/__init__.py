"""chainwatch: a daemon for real-time Ethereum events.

Data flows one way: provider -> ingest -> decode -> store -> fan-out -> subscriber.
"""

__version__ = "0.1.0"
