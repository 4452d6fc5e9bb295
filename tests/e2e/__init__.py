"""End to end: the whole system as a user meets it.

Home Assistant, the real reference detector, a phone, a browser and the demo.
"""
