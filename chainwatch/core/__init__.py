"""The logic of chainwatch with no I/O: it imports no asyncio, websockets or sqlalchemy.

Values in, values out; tested without an event loop.
"""
