"""The integration layer: the adapter inside a real Home Assistant the test harness starts.

Flows, entities, actions, Repairs and the media source; one snapshot file per platform.
"""
