"""The AI Security pipeline as a plain asyncio library: no Home Assistant imports allowed here.

Keeping the pipeline free of Home Assistant lets it be tested and reasoned about on its own; the
integration around it only wires configuration, entities and events to it.
"""
